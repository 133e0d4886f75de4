"""report.html: one self-contained page with every section and figure of report.md and a summary on top."""

import base64
from html.parser import HTMLParser

import numpy as np
import pytest

from tfmodelsec.audit.html import write_html
from tfmodelsec.audit.section import AuditReport, Section
from tfmodelsec.audit.summary import headlines

# Section summaries shaped like the real sections' report.json entries (values from a digits demo).
SUMMARIES = {
    "victim": {"name": "lenet5", "parameters": 21386, "num_classes": 10, "dataset": "digits",
               "test_samples": 360, "test_accuracy": 0.96},
    "inversion": {"min_confidence": 0.91, "success_rate": 0.9, "nearest_mean_correct": 9},
    "stealing": {"setting": "random queries", "rows": [
        {"budget": 50, "accuracy": 0.70, "fidelity": 0.72, "transferability": 0.5},
        {"budget": 600, "accuracy": 0.93, "fidelity": 0.95, "transferability": 0.8}]},
    "membership": {"best_attack": "loss", "attacks": {
        "loss": {"attack": "loss", "auc": 0.62, "tpr_at_fpr_0.01": 0.031},
        "entropy": {"attack": "entropy", "auc": 0.55, "tpr_at_fpr_0.01": 0.01}}},
    "defenses": {"defender_acc": {"none": 0.96, "reverse_sigmoid": 0.96, "apgp_top1": 0.955},
                 "stealer_acc": {"none": {"kl@200": 0.8}, "reverse_sigmoid": {"kl@200": 0.6},
                                 "apgp_top1": {"kl@200": 0.1}}},
}
TITLES = {"victim": "Victim", "inversion": "Model inversion", "stealing": "Model stealing (distillation)",
          "membership": "Membership inference", "defenses": "Defenses against model stealing"}


class _Page(HTMLParser):
    """Collects what the checks need: headings, images, every URL-bearing attribute, tags, text."""

    def __init__(self):
        super().__init__()
        self.tags, self.h2, self.images, self.urls, self.text = [], [], [], [], []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        self._in_h2 = tag == "h2"
        if tag == "h2":
            self.h2.append("")
        if tag == "img":
            self.images.append(attrs)
        self.urls += [v for k, v in attrs.items() if k in ("src", "href", "action", "data", "poster") and v]

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_h2:
            self.h2[-1] += data


def _report(tmp_path, *, extra_markdown=""):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    sections = []
    for key, summary in SUMMARIES.items():
        figure = f"{key}.png"
        plt.imsave(tmp_path / figure, np.random.default_rng(0).random((4, 4)))
        table = f"| measure | value |\n|---|---|\n| {key} | 1 |\n{extra_markdown if key == 'victim' else ''}"
        sections.append(Section(key, TITLES[key], summary, table, [figure]))
    return AuditReport(sections, tmp_path)


def _parse(path):
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def test_every_section_and_figure_is_on_one_self_contained_page(tmp_path):
    report = _report(tmp_path, extra_markdown="\nName <script>alert(1)</script> and **bold**\n")
    report.markdown_path.write_text("# tfmodelsec audit report\n\n**Warning**: a note above the sections.\n\n"
                                    + report.to_markdown().split("\n", 2)[2])
    page = _parse(write_html(report))
    assert page.h2 == ["Summary", *TITLES.values()]  # summary first, then report.md's sections in order
    assert len(page.images) == len(SUMMARIES)
    for image in page.images:
        head, _, payload = image["src"].partition(",")
        assert head == "data:image/png;base64" and base64.b64decode(payload)[:8] == b"\x89PNG\r\n\x1a\n"
    # nothing to fetch: every URL is an embedded figure or an anchor on the page itself
    assert all(u.startswith(("data:image/", "#section-")) for u in page.urls), page.urls
    assert not {"script", "link", "iframe", "object", "embed", "base"} & set(page.tags)
    html = report.html_path.read_text()
    assert "url(" not in html and "@import" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<strong>bold</strong>" in html
    # the warning written above the sections in report.md stays above the summary
    assert html.index("a note above the sections") < html.index('id="summary"')


def test_summary_speaks_plain_words_with_the_numbers_of_the_sections():
    lines = {h.key: h for h in headlines(SUMMARIES)}
    assert list(lines) == list(SUMMARIES)
    assert lines["stealing"].text.startswith(
        "An attacker with 600 queries copies your model to 97% of its accuracy (the copy: 93% accurate")
    assert lines["stealing"].risk == "high"
    assert "AUC 0.62" in lines["membership"].text and "3.1% of your training records" in lines["membership"].text
    assert lines["membership"].risk == "medium"
    assert lines["inversion"].risk == "high" and "9 of 10" in lines["inversion"].text
    assert "apgp_top1" in lines["defenses"].text and "80%" in lines["defenses"].text
    assert lines["victim"].risk is None and "96.0% of 360 digits" in lines["victim"].text


@pytest.mark.parametrize("key", list(SUMMARIES))
def test_a_section_without_what_its_headline_needs_is_left_out_of_the_summary(key):
    broken = {**SUMMARIES, key: {"skipped_for_a_reason": True}}
    assert [h.key for h in headlines(broken)] == [k for k in SUMMARIES if k != key]


def test_a_missing_figure_becomes_text_not_a_reference(tmp_path):
    report = _report(tmp_path)
    (tmp_path / "stealing.png").unlink()
    page = _parse(write_html(report))
    assert len(page.images) == len(SUMMARIES) - 1 and "[figure not found: stealing.png]" in "".join(page.text)
    assert not any("stealing.png" in u for u in page.urls)

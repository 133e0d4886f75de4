"""``report.html``: the audit report as one self-contained file to send to a model's owner.

The page is ``report.md`` rendered to HTML (same sections, same tables), with a one-screen
summary on top (:mod:`tfmodelsec.audit.summary`) and every figure embedded as a base64
``data:`` URI. It loads nothing: no network, no external CSS or script, so it opens the same
offline, attached to an e-mail or from a CI artefact. Markdown is rendered by
``markdown-it-py`` (a dependency of Keras, through ``rich``) with raw HTML off, so text from
a model file or a dataset name is escaped, never interpreted.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

from tfmodelsec.audit.summary import headlines
from tfmodelsec.utils import _to_jsonable

__all__ = ["render_html", "write_html"]

_STYLE = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d232a;background:#fff;margin:0}
main{max-width:960px;margin:0 auto;padding:1.5rem}
h1{font-size:1.6rem;margin:.2rem 0 1rem}h2{font-size:1.25rem;border-bottom:1px solid #d8dee4;padding-bottom:.2rem;
margin-top:2rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:14px}th,td{border:1px solid #d8dee4;padding:.25rem .6rem;
text-align:left}th{background:#f3f5f7}tbody tr:nth-child(even){background:#fafbfc}
img{max-width:100%;height:auto;display:block;margin:.6rem 0}code{background:#f3f5f7;padding:0 .2rem;border-radius:3px}
.summary{border:1px solid #d8dee4;border-radius:6px;padding:.6rem 1rem;background:#fafbfc}
.summary h2{margin-top:.3rem;border:0}.summary ul{list-style:none;padding:0;margin:0}
.summary li{margin:.45rem 0}.badge{display:inline-block;min-width:4.2rem;text-align:center;border-radius:3px;
font-size:12px;font-weight:600;text-transform:uppercase;padding:0 .3rem;margin-right:.4rem;color:#fff}
.risk-high{background:#c62828}.risk-medium{background:#e08a00}.risk-low{background:#2e7d32}.risk-none{background:#607080}
footer{color:#607080;font-size:13px;margin-top:2.5rem;border-top:1px solid #d8dee4;padding-top:.5rem}
""".strip()

_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
         ".webp": "image/webp", ".svg": "image/svg+xml"}


def _markdown():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table")


def _data_uri(path: Path) -> str | None:
    mime = _MIME.get(path.suffix.lower())
    if mime is None or not path.is_file():
        return None
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _embed_and_anchor(tokens, out_dir: Path, titles: dict) -> None:
    """Figures become data: URIs (a missing one becomes its name in text); section headings get ids."""
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag == "h2" and i + 1 < len(tokens):
            key = titles.get(tokens[i + 1].content.strip())
            if key:
                token.attrSet("id", f"section-{key}")
        for child in token.children or ():
            if child.type != "image":
                continue
            src = child.attrGet("src") or ""
            target = (out_dir / src).resolve()
            inside = out_dir.resolve() in target.parents
            uri = _data_uri(target) if inside and "://" not in src else None
            if uri is None:  # never leave a reference to a file or a server behind
                child.type, child.tag, child.content = "text", "", f"[figure not found: {src}]"
                child.attrs, child.children = {}, None
            else:
                child.attrSet("src", uri)


def _summary_html(report: dict) -> str:
    items = []
    for h in headlines(report):
        risk = h.risk or "none"
        label = f"{h.risk} risk" if h.risk else "note"
        items.append(f'<li><span class="badge risk-{risk}">{html.escape(label)}</span>'
                     f'<a href="#section-{html.escape(h.key)}"><strong>{html.escape(h.title)}</strong></a>: '
                     f"{html.escape(h.text)}</li>")
    if not items:
        return ""
    return ('<section class="summary" id="summary"><h2>Summary</h2>\n<ul>\n' + "\n".join(items)
            + "\n</ul></section>\n")


def render_html(markdown_text: str, report: dict, out_dir, *, title: str = "tfmodelsec audit report") -> str:
    """The HTML page for a report.

    Args:
        markdown_text: ``report.md``'s text (the page shows exactly its sections).
        report: ``report.json``'s content: section key -> summary (with ``title`` and ``figures``).
        out_dir: the report folder, where the figures named in the Markdown are read from.
        title: the page title.
    """
    out_dir = Path(out_dir)
    md = _markdown()
    env: dict = {}
    tokens = md.parse(markdown_text, env)
    titles = {str(s.get("title", "")).strip(): key for key, s in report.items() if isinstance(s, dict)}
    _embed_and_anchor(tokens, out_dir, titles)
    body = md.renderer.render(tokens, md.options, env)
    summary = _summary_html(report)
    # the summary goes after the title and any warning above the first section
    cut = body.find("<h2")
    body = body[:cut] + summary + body[cut:] if cut >= 0 else body + summary
    from tfmodelsec import __version__

    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title>\n<style>\n{_STYLE}\n</style>\n</head>\n<body>\n<main>\n"
            f"{body}<footer>Written by tfmodelsec {html.escape(__version__)}. This page is self-contained: "
            "figures are embedded and nothing is loaded from the network.</footer>\n</main>\n</body>\n</html>\n")


def write_html(report, markdown_text: str | None = None) -> Path:
    """Write ``report.html`` beside ``report.md`` for an :class:`~tfmodelsec.audit.AuditReport`.

    ``markdown_text`` defaults to the ``report.md`` on disk (so whatever the report writer put
    there, warnings included, is on the page), else the report's own Markdown.
    """
    if markdown_text is None:
        path = report.markdown_path
        markdown_text = path.read_text() if path.is_file() else report.to_markdown()
    data = _to_jsonable(report.to_dict())  # NumPy numbers as plain ones, as in report.json
    page = render_html(markdown_text, data, report.out_dir)
    target = report.html_path
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, target)
    return target

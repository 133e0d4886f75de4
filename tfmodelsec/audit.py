"""The audit report: one section per attack, written as JSON, Markdown and PNG figures.

Each capability contributes a section through a function ``audit_section(ctx) ->
Section`` in its own module (listed in :data:`SECTION_PROVIDERS`), so the report
grows as attacks land without this module knowing their details.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tfmodelsec.utils import write_json

__all__ = ["AuditContext", "Section", "AuditReport", "run_audit", "SECTION_PROVIDERS"]

#: Report sections in order, and the module whose ``audit_section`` builds each.
SECTION_PROVIDERS: dict[str, str] = {
    "victim": "tfmodelsec.audit",
    "inversion": "tfmodelsec.attacks.inversion",
    "stealing": "tfmodelsec.attacks.stealing",
    "membership": "tfmodelsec.attacks.membership",
    "defenses": "tfmodelsec.defenses.evaluate",
}


@dataclass
class AuditContext:
    """What every section gets: the victim, the data, where to write, how much time to take."""

    victim: object
    data: object
    out_dir: Path
    quick: bool = False
    seed: int = 0
    verbose: int = 1


@dataclass
class Section:
    """One part of the report: machine-readable summary, Markdown text, figure files."""

    key: str
    title: str
    summary: dict
    markdown: str
    figures: list = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"title": self.title, **self.summary, "figures": list(self.figures),
                "elapsed_seconds": round(self.seconds, 2)}


@dataclass
class AuditReport:
    sections: list
    out_dir: Path

    def to_dict(self) -> dict:
        return {s.key: s.to_dict() for s in self.sections}

    def to_markdown(self) -> str:
        parts = ["# tfmodelsec audit report", ""]
        for s in self.sections:
            parts += [f"## {s.title}", "", s.markdown.strip(), ""]
            parts += [f"![{s.key}]({fig})" for fig in s.figures]
            parts.append("")
        return "\n".join(parts)

    @property
    def json_path(self) -> Path:
        return self.out_dir / "report.json"

    @property
    def markdown_path(self) -> Path:
        return self.out_dir / "report.md"


def audit_section(ctx: AuditContext) -> Section:
    """The victim section: details, test accuracy, per-class accuracy, confusion matrix."""
    from sklearn.metrics import confusion_matrix

    from tfmodelsec import plotting

    victim, data = ctx.victim, ctx.data
    x, y = data.x_test, data.y_test
    if ctx.quick:
        x, y = x[:2000], y[:2000]
    pred = victim.predict_labels(x)
    acc = float(np.mean(pred == y))
    cm = confusion_matrix(y, pred, labels=np.arange(victim.num_classes))
    per_class = (np.diag(cm) / np.maximum(cm.sum(axis=1), 1)).tolist()
    fig = plotting.confusion_matrix_figure(cm, title=f"{data.name}: test accuracy {acc:.2%}")
    fig.savefig(ctx.out_dir / "confusion.png", dpi=100, bbox_inches="tight")
    plotting.close(fig)
    details = victim.describe()
    md = "\n".join(
        [
            "| property | value |",
            "|---|---|",
            *[f"| {k} | {v} |" for k, v in details.items()],
            f"| dataset | {data.name} ({len(x)} test samples) |",
            f"| test accuracy | {acc:.2%} |",
        ]
    )
    return Section(
        "victim", "Victim", {**details, "dataset": data.name, "test_samples": len(x),
                             "test_accuracy": acc, "per_class_accuracy": per_class},
        md, ["confusion.png"],
    )


def _provider(key: str):
    module_name = SECTION_PROVIDERS[key]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None  # capability not installed in this build
        raise
    return getattr(module, "audit_section", None)


def run_audit(victim, data, out_dir, *, quick: bool = False, sections=None, seed: int = 0,
              verbose: int = 1) -> AuditReport:
    """Run every available section on ``victim`` and write ``report.json`` / ``report.md``.

    Args:
        victim: a Victim (see :func:`tfmodelsec.load_victim`).
        data: a :class:`tfmodelsec.data.Dataset` whose images fit the victim.
        out_dir: the report folder (created).
        quick: small, fast settings in every section.
        sections: keys of :data:`SECTION_PROVIDERS` to run (default: all available).
        seed: passed to every section.
    """
    from tfmodelsec.models.io import as_victim

    victim = as_victim(victim)
    victim.check_input_shape(data.input_shape, what=f"dataset {data.name!r}")
    keys = list(SECTION_PROVIDERS) if sections is None else list(sections)
    unknown = [k for k in keys if k not in SECTION_PROVIDERS]
    if unknown:
        raise ValueError(f"`sections` must be among {list(SECTION_PROVIDERS)}. Received: {unknown}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = AuditContext(victim, data, out_dir, quick=quick, seed=seed, verbose=verbose)
    done = []
    for key in keys:
        build = _provider(key)
        if build is None:
            continue
        if verbose:
            print(f"[audit] {key} ...", flush=True)
        start = time.perf_counter()
        section = build(ctx)
        section.seconds = time.perf_counter() - start
        done.append(section)
        report = AuditReport(done, out_dir)
        # written after every section so an interrupted audit keeps what it finished
        write_json(report.json_path, report.to_dict())
        report.markdown_path.write_text(report.to_markdown())
    return AuditReport(done, out_dir)

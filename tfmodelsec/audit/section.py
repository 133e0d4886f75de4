"""What a report section is made of: the context every section gets, the section, the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["AuditContext", "AuditReport", "Section"]


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
    """The sections written so far, and warnings that belong above them (e.g. a victim near chance)."""

    sections: list
    out_dir: Path
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        head = {"warnings": list(self.warnings)} if self.warnings else {}
        return {**head, **{s.key: s.to_dict() for s in self.sections}}

    def to_markdown(self) -> str:
        parts = ["# tfmodelsec audit report", ""]
        parts += [f"> **Warning:** {w}\n" for w in self.warnings]
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

    @property
    def html_path(self) -> Path:
        """``report.html``: the same report as one self-contained page (:mod:`tfmodelsec.audit.html`)."""
        return self.out_dir / "report.html"


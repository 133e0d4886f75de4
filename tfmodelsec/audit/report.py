"""The audit report: one section per attack, written as JSON, Markdown and PNG figures.

Each section is a function ``audit_section(ctx) -> Section`` in a module of its own in this
package (``victim``, ``inversion``, ``stealing``, ``membership``, ``defenses``), importing the
attacks and defenses it reports on; :data:`SECTION_PROVIDERS` lists them in report order. Data
flows one way: the attacks, defenses and export never import the audit.
"""

from __future__ import annotations

import time
from pathlib import Path

from tfmodelsec.audit import defenses, inversion, membership, stealing, victim
from tfmodelsec.audit.html import write_html
from tfmodelsec.audit.section import AuditContext, AuditReport, Section
from tfmodelsec.utils import write_json

__all__ = ["AuditContext", "AuditReport", "SECTION_PROVIDERS", "Section", "run_audit"]

#: Report sections in order, and the function that builds each.
SECTION_PROVIDERS = {
    "victim": victim.audit_section,
    "inversion": inversion.audit_section,
    "stealing": stealing.audit_section,
    "membership": membership.audit_section,
    "defenses": defenses.audit_section,
}


def run_audit(victim, data, out_dir, *, quick: bool = False, sections=None, seed: int = 0,
              verbose: int = 1) -> AuditReport:
    """Run every available section on ``victim`` and write ``report.json``, ``report.md`` and ``report.html``.

    Args:
        victim: a Victim (see :func:`tfmodelsec.load_victim`).
        data: a :class:`tfmodelsec.data.Dataset` for the victim (fitted to it by
            :func:`tfmodelsec.models.align_data`: flat victims, input ranges).
        out_dir: the report folder (created).
        quick: small, fast settings in every section.
        sections: keys of :data:`SECTION_PROVIDERS` to run (default: all).
        seed: passed to every section.
    """
    from tfmodelsec.models.align import align_data
    from tfmodelsec.models.fit import check_fit

    victim, data = align_data(victim, data, verbose=verbose)  # reshaped / rescaled to fit, each change said
    warnings = [w for w in (check_fit(victim, data).warning,) if w]  # at the top of the report
    keys = list(SECTION_PROVIDERS) if sections is None else list(sections)
    unknown = [k for k in keys if k not in SECTION_PROVIDERS]
    if unknown:
        raise ValueError(f"`sections` must be among {list(SECTION_PROVIDERS)}. Received: {unknown}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = AuditContext(victim, data, out_dir, quick=quick, seed=seed, verbose=verbose)
    done = []
    for key in keys:
        build = SECTION_PROVIDERS[key]
        if verbose:
            print(f"[audit] {key} ...", flush=True)
        start = time.perf_counter()
        section = build(ctx)
        section.seconds = time.perf_counter() - start
        done.append(section)
        report = AuditReport(done, out_dir, warnings)
        # written after every section so an interrupted audit keeps what it finished
        write_json(report.json_path, report.to_dict())
        report.markdown_path.write_text(report.to_markdown())
        write_html(report)  # report.html: report.md as it is on disk, one page to share
    return AuditReport(done, out_dir, warnings)

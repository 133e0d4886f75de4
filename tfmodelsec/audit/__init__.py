"""The audit report: every attack on one victim, one report (``report.json``, ``report.md``, figures).

- :mod:`.report`: :func:`run_audit` and the section registry
- :mod:`.section`: the section and report types
- one module per section: :mod:`.victim`, :mod:`.inversion`, :mod:`.stealing`, :mod:`.membership`,
  :mod:`.defenses`
"""

from tfmodelsec.audit.report import SECTION_PROVIDERS, run_audit
from tfmodelsec.audit.section import AuditContext, AuditReport, Section

__all__ = ["SECTION_PROVIDERS", "AuditContext", "AuditReport", "Section", "run_audit"]

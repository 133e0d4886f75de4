"""``tfmodelsec audit``: run every available attack on a victim and write a report (JSON, Markdown, HTML)."""

from __future__ import annotations

from tfmodelsec.cli._common import (
    add_common_run_arguments,
    add_dataset_argument,
    add_parser,
    add_victim_argument,
    load_victim_and_data,
)

EXAMPLE = "tfmodelsec audit saved_models/lenet5_mnist.h5 --dataset mnist --out runs/audit --quick"


def register(sub) -> None:
    p = add_parser(sub, "audit", help="audit a victim: every attack, one report", example=EXAMPLE)
    add_victim_argument(p)
    add_dataset_argument(p)
    add_common_run_arguments(p)
    p.add_argument("--quick", action="store_true", help="small, fast settings")
    p.add_argument("--sections", default=None, help="comma-separated subset of report sections")
    p.set_defaults(func=run)


def run(args) -> int:
    from tfmodelsec.audit import run_audit

    victim, data = load_victim_and_data(args)
    sections = args.sections.split(",") if args.sections else None
    report = run_audit(victim, data, args.out, quick=args.quick, sections=sections, seed=args.seed,
                       verbose=0 if args.quiet else 1)
    print(f"report: {report.html_path} (one page to share; also {report.markdown_path.name} and "
          f"{report.json_path.name})")
    return 0

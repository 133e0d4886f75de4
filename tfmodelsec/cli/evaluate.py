"""``tfmodelsec evaluate``: Defender / Stealer accuracy of defenses (JSON, Markdown table, t-SNE)."""

from __future__ import annotations

from tfmodelsec.cli._common import (
    add_common_run_arguments,
    add_dataset_argument,
    add_parser,
    add_strategy_argument,
    add_victim_argument,
    parse_int_list,
    strategy_arg,
)

EXAMPLE = ("tfmodelsec evaluate saved_models/lenet5_mnist.h5 --defenses none,gaussian,reverse_sigmoid,apgp_top1,"
           "apmsa_cw --attacks kl,jacobian --queries 1000,5000 --out runs/defenses")


def register(sub) -> None:
    p = add_parser(sub, "evaluate", help="Stealer/Defender accuracy of defenses against model stealing",
                   example=EXAMPLE)
    add_victim_argument(p)
    add_dataset_argument(p)
    p.add_argument("--defenses", default="none,gaussian,reverse_sigmoid,apgp_all,apgp_top1,apmsa_fgsm",
                   help="comma-separated defense names (see 'tfmodelsec defend --help'); include none")
    p.add_argument("--attacks", default="kl", help="comma-separated among kl, hard, drmi, jacobian (default kl)")
    p.add_argument("--queries", default="1000,5000", help="query budgets (default 1000,5000)")
    p.add_argument("--epochs", type=int, default=10, help="student epochs (default 10)")
    p.add_argument("--test-samples", type=int, default=10000)
    p.add_argument("--tsne-samples", type=int, default=1000, help="points per t-SNE panel (0: no figure)")
    add_common_run_arguments(p)
    add_strategy_argument(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from tfmodelsec.cli._common import load_victim_and_data
    from tfmodelsec.defenses.evaluate import evaluate_defenses, tsne_plot
    from tfmodelsec.utils import write_json

    names = [n.strip() for n in args.defenses.split(",") if n.strip()]
    attacks = [a.strip() for a in args.attacks.split(",") if a.strip()]
    if not names or not attacks:
        raise ValueError(f"--defenses and --attacks must name at least one each. Received: {args.defenses!r}, "
                         f"{args.attacks!r}")
    from tfmodelsec.defenses.evaluate import ATTACKS
    from tfmodelsec.defenses.registry import DEFENSES

    bad = [n for n in names if n not in DEFENSES and not (n.startswith("apgp_top") and n[8:].isdigit())]
    if bad:
        raise ValueError(f"--defenses must be among {', '.join(DEFENSES)} or apgp_topK. Received: {bad}")
    bad = [a for a in attacks if a not in ATTACKS]
    if bad:
        raise ValueError(f"--attacks must be among {', '.join(ATTACKS)}. Received: {bad}")
    budgets = parse_int_list(args.queries, name="queries")
    victim, data = load_victim_and_data(args)
    report = evaluate_defenses(victim, names, data, attacks=attacks, budgets=budgets, seed=args.seed,
                               epochs=args.epochs, test_samples=args.test_samples, tsne_samples=args.tsne_samples,
                               tsne_defenses=[n for n in names if n in ("none", "apgp_top1", "apgp_all")] or names[:2],
                               strategy=strategy_arg(args), verbose=0 if args.quiet else 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"victim": victim.describe(), "dataset": data.name, "seed": args.seed, **report.to_dict()}
    if args.tsne_samples > 0:
        tsne_plot(report, out / "tsne.png", title=f"{data.name}: t-SNE of defended outputs")
        payload.pop("tsne", None)
    write_json(out / "defenses.json", payload)
    (out / "defenses.md").write_text(f"# Defenses on {data.name}\n\n" + report.to_markdown())
    print(report.to_markdown())
    print(f"wrote {out / 'defenses.json'}, {out / 'defenses.md'}" + (", tsne.png" if args.tsne_samples > 0 else ""))
    return 0

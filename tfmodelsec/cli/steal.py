"""``tfmodelsec steal``: steal a victim by distillation over a sweep of query budgets."""

from __future__ import annotations

from tfmodelsec.cli._common import (
    CliError,
    add_common_run_arguments,
    add_dataset_argument,
    add_parser,
    add_strategy_argument,
    add_victim_argument,
    load_victim_and_data,
    parse_int_list,
    strategy_arg,
)

EXAMPLE = """\
tfmodelsec steal saved_models/lenet5_mnist.h5 --dataset mnist --queries 50,150,200,300,600 --select drmi \\
    --loss kl --out runs/steal
# DRMI's MI matrix over 20000 candidates in 4 parts (one per machine), merged, then the attack reuses it:
tfmodelsec steal saved_models/lenet5_mnist.h5 --dataset mnist --candidates 20000 --part 3/4 --out runs/steal
tfmodelsec merge runs/steal/cache --out runs/steal/cache
tfmodelsec steal saved_models/lenet5_mnist.h5 --dataset mnist --candidates 20000 --out runs/steal"""


def register(sub) -> None:
    p = add_parser(sub, "steal", help="steal a victim by distillation (query budgets x selection x loss)",
                   example=EXAMPLE)
    add_victim_argument(p)
    add_dataset_argument(p)
    add_common_run_arguments(p)
    add_strategy_argument(p)
    p.add_argument("--queries", default="50,150,600", help="comma-separated query budgets (default: 50,150,600)")
    p.add_argument("--select", default="drmi",
                   help="comma-separated selection methods: random, drmi, neuron_trace, correlation, "
                        "class_probability (default: drmi)")
    p.add_argument("--loss", default="kl",
                   help="comma-separated losses: kl (Hinton: teacher and student softened by --temperature, x tau^2), "
                        "kl_seed (the seed lab's: only the teacher softened), mse, hard (default: kl)")
    p.add_argument("--student", default="auto",
                   help="student architecture from the zoo; auto: lenet5 for images, mlp for feature vectors "
                        "(default: auto)")
    p.add_argument("--temperature", type=float, default=4.0, help="KL temperature (default: 4)")
    p.add_argument("--epochs", type=int, default=20, help="distillation epochs (default: 20)")
    p.add_argument("--pool-size", type=int, default=None, metavar="N",
                   help="attacker pool: the first N of the dataset's x_pool, else of its training inputs, "
                        "labels unused (default: all)")
    p.add_argument("--candidates", type=int, default=2000,
                   help="pool samples DRMI / correlation / class_probability search (default: 2000)")
    p.add_argument("--restarts", type=int, default=None,
                   help="DRMI starting points drawn at random (Algorithm 1; default: every candidate, as in the paper)")
    p.add_argument("--active-share", type=float, default=0.5,
                   help="share of each budget queried by uncertainty after a first distillation; the rest is "
                        "chosen by --select (default: 0.5; 0 = --select only)")
    p.add_argument("--no-self-training", action="store_true",
                   help="plain distillation: do not use the unlabeled pool")
    p.add_argument("--eval-samples", type=int, default=None, metavar="N",
                   help="evaluate on the first N test images (default: all)")
    p.add_argument("--part", default=None, metavar="I/N",
                   help="compute only part I of N of DRMI's MI matrix into OUT/cache and stop (no queries); "
                        "join the parts with `tfmodelsec merge`, then rerun without --part")
    p.set_defaults(func=run)


def run(args) -> int:
    from tfmodelsec import plotting
    from tfmodelsec.attacks.stealing import LOSSES
    from tfmodelsec.attacks.stealing.selection import SELECTION_METHODS
    from tfmodelsec.attacks.stealing.sweep import PAPER_DRMI_LENET5, summarize, sweep
    from tfmodelsec.utils import Timer, check_choice, write_json

    budgets = parse_int_list(args.queries, name="queries")
    methods = [check_choice("select", m.strip(), SELECTION_METHODS) for m in args.select.split(",") if m.strip()]
    losses = [check_choice("loss", m.strip(), LOSSES) for m in args.loss.split(",") if m.strip()]
    if not methods or not losses:
        raise CliError(f"--select and --loss need at least one value. Received: {args.select!r}, {args.loss!r}")
    victim, data = load_victim_and_data(args)
    pool = data.pool if args.pool_size is None else data.pool[: args.pool_size]
    if max(budgets) > len(pool):
        raise CliError(f"--queries {max(budgets)} exceeds the pool of {len(pool)} records")
    n_eval = len(data.x_test) if args.eval_samples is None else args.eval_samples
    if not 0 < n_eval <= len(data.x_test):  # a number the user chose is not cut silently (steal.json records it)
        raise CliError(f"--eval-samples must be in [1, {len(data.x_test)}] (dataset {data.name!r} has "
                       f"{len(data.x_test)} test records). Received: {args.eval_samples}")
    from pathlib import Path

    out = Path(args.out)
    if args.part is not None:
        return _mi_part(args, pool, budgets, methods, out / "cache", victim.input_range)
    out.mkdir(parents=True, exist_ok=True)
    with Timer() as timer:
        rows = sweep(victim, pool, budgets, methods=methods, losses=losses, seeds=(args.seed,),
                     eval_data=(data.x_test[:n_eval], data.y_test[:n_eval]), student=args.student,
                     semi_supervised=not args.no_self_training, active_share=args.active_share,
                     selection={"candidates": args.candidates, "restarts": args.restarts},
                     steal_options={"epochs": args.epochs, "temperature": args.temperature,
                                    "strategy": strategy_arg(args)},
                     out_dir=out, verbose=0 if args.quiet else 1)
    payload = {"victim": victim.describe(), "dataset": data.name, "pool": len(pool), "eval_samples": n_eval,
               "self_training": not args.no_self_training, "active_share": args.active_share,
               "seed": args.seed, "seconds": round(timer.seconds, 2), "rows": rows, "summary": summarize(rows)}
    write_json(out / "steal.json", payload)
    ref = None
    if data.name == "mnist":
        ref = {"DRMI paper (LeNet-5)": {b: v[0] for b, v in PAPER_DRMI_LENET5.items()}}
    fig = plotting.steal_curves_figure(rows, reference=ref, title=f"stealing {victim.model.name} on {data.name}")
    fig.savefig(out / "steal.png", dpi=110, bbox_inches="tight")
    plotting.close(fig)
    for r in rows:
        print(f"{r['method']:>17} {r['loss']:>4} {r['budget']:>6} queries: accuracy {r['accuracy']:.4f}  "
              f"fidelity {r['fidelity']:.4f}  transferability {r['transferability'] or 0:.4f}")
    print(f"wrote {out / 'steal.json'}, {out / 'steal.png'} and {len(rows)} students")
    return 0


def _mi_part(args, pool, budgets, methods, cache, value_range) -> int:
    """``--part I/N``: this part's blocks of the MI matrices the sweep's DRMI runs will need."""
    import numpy as np

    from tfmodelsec.attacks.stealing.drmi import mutual_information_part
    from tfmodelsec.attacks.stealing.selection import candidate_indices, unit_scale
    from tfmodelsec.attacks.stealing.sweep import selected_queries
    from tfmodelsec.distribute import parse_part

    part = parse_part(args.part)
    if "drmi" not in methods:
        raise CliError(f"--part splits DRMI's MI matrix: --select must include drmi. Received: {args.select!r}")
    # one matrix per distinct candidate set (budgets above --candidates widen it)
    sets = {tuple(candidate_indices(len(pool), selected_queries(b, args.active_share), args.candidates, args.seed))
            for b in budgets}
    for cand in sorted(sets, key=len):
        path = mutual_information_part(unit_scale(pool[np.asarray(cand)], value_range), part, cache,
                                       verbose=0 if args.quiet else 1)
        print(f"MI part {part[0]}/{part[1]} over {len(cand)} candidates -> {path}")
    print(f"when every part is done: tfmodelsec merge {cache} --out {cache}, then rerun without --part")
    return 0

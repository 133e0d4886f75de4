"""``tfmodelsec membership``: membership-inference attacks on known members vs non-members."""

from __future__ import annotations

from pathlib import Path

from tfmodelsec.cli._common import (CliError, add_common_run_arguments, add_dataset_argument, add_parser,
                                    add_strategy_argument, add_victim_argument, load_data_arg,
                                    load_victim_arg, strategy_arg)

EXAMPLE = """\
tfmodelsec train --model lenet5 --dataset fashion_mnist --train-subset 5000 --epochs 40 --out runs/target.h5
tfmodelsec membership runs/target.h5 --dataset fashion_mnist --members first:5000 --out runs/mia \\
    --attacks loss,confidence,entropy,shadow,proxy,lira --lira-shadows 16 --shadow-epochs 40
# LiRA's shadows split over 4 machines, then merged and reused:
tfmodelsec membership runs/target.h5 --dataset fashion_mnist --members first:5000 --attacks lira \\
    --lira-shadows 16 --part 2/4 --out runs/lira_parts
tfmodelsec merge runs/lira_parts --out runs/lira
tfmodelsec membership runs/target.h5 --dataset fashion_mnist --members first:5000 --attacks lira \\
    --lira-shadows-from runs/lira/lira_shadows.npz --out runs/mia"""

CLI_ATTACKS = ("loss", "confidence", "entropy", "modified_entropy", "shadow", "proxy", "lira", "lira_offline")


def register(sub) -> None:
    p = add_parser(sub, "membership", help="membership inference: threshold, shadow, proxy and LiRA attacks",
                   example=EXAMPLE)
    add_victim_argument(p)
    add_dataset_argument(p)
    p.add_argument("--members", required=True, metavar="IDS",
                   help="training-set indices the victim was trained on: a file of integers, or first:N")
    p.add_argument("--non-members", default=None, metavar="IDS",
                   help="test-set indices (file or first:N; default: as many test records as members)")
    p.add_argument("--population", default="train-rest", choices=("train-rest", "test-rest", "none"),
                   help="attacker data for shadow/proxy/calibration: training records outside the members "
                        "(valid when the victim saw only the members) or test records outside the "
                        "non-members (default: train-rest)")
    p.add_argument("--attacks", default="loss,confidence,entropy,modified_entropy",
                   help=f"comma-separated, among {','.join(CLI_ATTACKS)} (default: the threshold attacks)")
    p.add_argument("--shadows", type=int, default=4, help="shadow models of the shadow attack (default: 4)")
    p.add_argument("--lira-shadows", type=int, default=16, help="LiRA reference models, >= 2 (default: 16)")
    p.add_argument("--shadow-epochs", type=int, default=20, help="epochs per shadow/proxy model (default: 20)")
    p.add_argument("--shadow-batch-size", type=int, default=128)
    p.add_argument("--shadow-lr", type=float, default=1e-3, help="Adam learning rate of shadows (default: 1e-3)")
    p.add_argument("--shadow-schedule", default="constant", choices=("constant", "cosine"))
    p.add_argument("--fixed-variance", action="store_true", help="LiRA with one global variance per side")
    p.add_argument("--logits", action="store_true",
                   help="score from pre-softmax outputs (float64 softmax) instead of float32 probabilities")
    p.add_argument("--part", default=None, metavar="I/N",
                   help="train only part I of N of the LiRA shadows into OUT/lira_shadows.part-I-of-N.npz and "
                        "stop (no scores); join the parts with `tfmodelsec merge`")
    p.add_argument("--lira-shadows-from", default=None, metavar="FILE",
                   help="reuse LiRA shadows (lira_shadows.npz from an earlier run or `tfmodelsec merge`)")
    add_common_run_arguments(p)
    add_strategy_argument(p)
    p.set_defaults(func=run)


def _read_ids(spec, name):
    from tfmodelsec.ids import read_ids

    return None if spec is None else read_ids(spec, name=name)


def run(args) -> int:
    import numpy as np

    from tfmodelsec.attacks.membership import (LiraShadows, ShadowTraining, membership_inference, membership_split,
                                               results_table)
    from tfmodelsec.plotting import close, roc_figure
    from tfmodelsec.utils import write_json

    attacks = [a.strip() for a in args.attacks.split(",") if a.strip()]
    bad = [a for a in attacks if a not in CLI_ATTACKS]
    if bad or not attacks:
        raise CliError(f"--attacks must be among {','.join(CLI_ATTACKS)}. Received: {args.attacks!r}")
    victim = load_victim_arg(args)
    data = load_data_arg(args, victim)
    split = membership_split(data, _read_ids(args.members, "--members"), _read_ids(args.non_members, "--non-members"),
                             population=args.population)
    training = ShadowTraining(epochs=args.shadow_epochs, batch_size=args.shadow_batch_size,
                              learning_rate=args.shadow_lr, schedule=args.shadow_schedule)
    verbose = 0 if args.quiet else 1
    if args.part is not None:
        return _train_part(args, victim, split, training, attacks, verbose)
    lira_shadows = None
    if args.lira_shadows_from is not None:
        lira_shadows = LiraShadows.load(args.lira_shadows_from)
    results = []
    for name in attacks:
        attack = "lira" if name.startswith("lira") else name
        result = membership_inference(
            victim, split.members, split.non_members, attack=attack, population=split.population,
            num_shadows=args.lira_shadows if attack == "lira" else args.shadows, online=name == "lira",
            fixed_variance=args.fixed_variance, logits=args.logits, training=training, shadows=lira_shadows, seed=args.seed,
            strategy=strategy_arg(args), verbose=verbose)
        lira_shadows = result.shadows or lira_shadows
        results.append(result)
        if verbose:
            print(result.summary(), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "membership.json", {
        "victim": args.victim, "dataset": data.name, "assumption": split.assumption, "seed": args.seed,
        "members": len(split.member_ids), "non_members": len(split.non_member_ids),
        "attacks": {r.attack: r.to_dict() for r in results}})
    arrays = {"member_ids": split.member_ids, "non_member_ids": split.non_member_ids}
    for r in results:
        arrays[f"{r.attack}_scores"] = r.scores
        arrays[f"{r.attack}_is_member"] = r.is_member
    np.savez_compressed(out / "scores.npz", **arrays)
    if lira_shadows is not None:
        lira_shadows.save(out / "lira_shadows.npz")  # reusable with --lira-shadows-from
    curves = {f"{r.attack} (AUC {r.get_auc():.3f})": r.roc_curve()[:2] for r in results}
    fig = roc_figure(curves, title=f"membership inference on {data.name}")
    fig.savefig(out / "roc.png", dpi=110, bbox_inches="tight")
    close(fig)
    print(results_table(results))
    print(f"wrote {out / 'membership.json'}, {out / 'scores.npz'}, {out / 'roc.png'}")
    return 0


def _train_part(args, victim, split, training, attacks, verbose) -> int:
    """``--part I/N``: train this part's LiRA shadows, write them, score nothing."""
    import numpy as np

    from tfmodelsec.attacks.membership import train_lira_shadows
    from tfmodelsec.distribute import parse_part, part_filename

    part = parse_part(args.part)
    if not any(a.startswith("lira") for a in attacks) or args.lira_shadows_from is not None:
        raise CliError("--part splits the training of LiRA shadows: --attacks must include lira or "
                       f"lira_offline, without --lira-shadows-from. Received: --attacks {args.attacks!r}")
    if args.lira_shadows < 2:
        raise CliError(f"--lira-shadows must be >= 2. Received: {args.lira_shadows}")
    x = np.concatenate([split.members[0], split.non_members[0]])
    y = np.concatenate([split.members[1], split.non_members[1]])
    shadows = train_lira_shadows(victim, x, y, num_shadows=args.lira_shadows, population=split.population,
                                 training=training, strategy=strategy_arg(args), seed=args.seed, part=part,
                                 verbose=verbose)
    path = shadows.save(Path(args.out) / part_filename("lira_shadows", part, ".npz"))
    ids = shadows.shadow_ids
    span = f"shadows {ids[0]}-{ids[-1]}" if len(ids) else "no shadows"
    print(f"part {part[0]}/{part[1]}: {span} of {args.lira_shadows} -> {path}")
    print("when every part is done: tfmodelsec merge DIR... --out DIR, then rerun with "
          "--lira-shadows-from DIR/lira_shadows.npz")
    return 0

"""``tfmodelsec membership``: membership-inference attacks on known members vs non-members."""

from __future__ import annotations

from pathlib import Path

from tfmodelsec.cli._common import (
    CliError,
    add_common_run_arguments,
    add_dataset_argument,
    add_parser,
    add_strategy_argument,
    add_victim_argument,
    load_victim_and_data,
    strategy_arg,
)

EXAMPLE = """\
tfmodelsec train --model lenet5 --dataset fashion_mnist --train-subset 5000 --epochs 40 --lr 5e-3 \\
    --schedule cosine --out runs/target.h5
tfmodelsec membership runs/target.h5 --dataset fashion_mnist --members first:5000 --out runs/mia \\
    --attacks loss,lira,rmia,rmia_offline --lira-shadows 16 --shadow-epochs 40 --shadow-lr 5e-3 \\
    --shadow-schedule cosine
# label-only attacks on the victim behind the `label` defense:
tfmodelsec membership runs/target.h5 --dataset fashion_mnist --members first:5000 --defense label \\
    --attacks gap,label_augment,label_noise --out runs/mia_label
# reference models split over 4 machines, then merged and reused by LiRA and RMIA:
tfmodelsec membership runs/target.h5 --dataset fashion_mnist --members first:5000 --attacks lira,rmia \\
    --lira-shadows 16 --part 2/4 --out runs/lira_parts
tfmodelsec merge runs/lira_parts --out runs/lira
tfmodelsec membership runs/target.h5 --dataset fashion_mnist --members first:5000 --attacks lira,rmia \\
    --lira-shadows-from runs/lira/lira_shadows.npz --out runs/mia"""

CLI_ATTACKS = ("loss", "confidence", "entropy", "modified_entropy", "shadow", "proxy", "lira", "lira_offline",
               "rmia", "rmia_offline", "gap", "label_augment", "label_noise")
_REFERENCE_ATTACKS = ("lira", "lira_offline", "rmia", "rmia_offline")


def _rmia_a(text):
    import argparse

    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1] or 'auto'. Received: {text!r}") from None


def register(sub) -> None:
    p = add_parser(sub, "membership", help="membership inference: threshold, shadow, proxy, LiRA, RMIA and "
                   "label-only attacks", example=EXAMPLE)
    add_victim_argument(p)
    add_dataset_argument(p)
    p.add_argument("--members", required=True, metavar="IDS",
                   help="training-set indices the victim was trained on: a file of integers, or first:N")
    p.add_argument("--non-members", default=None, metavar="IDS",
                   help="test-set indices (file or first:N; default: as many test records as members)")
    p.add_argument("--population", default="train-rest", choices=("train-rest", "test-rest", "none"),
                   help="attacker data for shadow/proxy/calibration and RMIA's z: training records outside the "
                        "members (valid when the victim saw only the members) or test records outside the "
                        "non-members (default: train-rest)")
    p.add_argument("--attacks", default="loss,confidence,entropy,modified_entropy",
                   help=f"comma-separated, among {','.join(CLI_ATTACKS)} (default: the threshold attacks)")
    p.add_argument("--defense", default=None, metavar="NAME",
                   help="attack the victim behind this output defense (e.g. label, rounding, gaussian); score "
                        "attacks refuse a victim that answers labels")
    p.add_argument("--shadows", type=int, default=4, help="shadow models of the shadow attack (default: 4)")
    p.add_argument("--lira-shadows", type=int, default=16,
                   help="reference models shared by LiRA and RMIA, >= 2 (default: 16)")
    p.add_argument("--shadow-model", default=None, metavar="NAME",
                   help="zoo architecture of shadow/reference models (default: the victim's own; an MLP of its "
                        "input size when it cannot be rebuilt)")
    p.add_argument("--shadow-epochs", type=int, default=20, help="epochs per shadow/proxy model (default: 20)")
    p.add_argument("--shadow-batch-size", type=int, default=128)
    p.add_argument("--shadow-lr", type=float, default=1e-3, help="Adam learning rate of shadows (default: 1e-3)")
    p.add_argument("--shadow-schedule", default="constant", choices=("constant", "cosine"))
    p.add_argument("--references-at-once", type=int, default=16, metavar="K",
                   help="reference models trained together in one graph (1: one by one; default: 16)")
    p.add_argument("--fixed-variance", action="store_true", help="LiRA with one global variance per side")
    p.add_argument("--rmia-references", type=int, default=None, metavar="K",
                   help="RMIA uses the first K reference models (default: all; an even K is balanced)")
    p.add_argument("--rmia-a", type=_rmia_a, default=0.3, metavar="A",
                   help="offline RMIA's a in [0, 1], or auto (tuned on a reference model; default: 0.3)")
    p.add_argument("--rmia-gamma", type=float, default=1.0, help="RMIA's likelihood-ratio threshold (default: 1)")
    p.add_argument("--population-size", type=int, default=None, metavar="N",
                   help="population records RMIA compares with (z; default: 5000 or all)")
    p.add_argument("--label-queries", type=int, default=16,
                   help="perturbed copies per record for label_noise (and label_augment on features; default: 16)")
    p.add_argument("--label-shift", type=int, default=1,
                   help="label_augment on images: translations up to this many pixels (default: 1)")
    p.add_argument("--label-noise", type=float, default=None,
                   help="label_noise scale (default: 0.1 of the range for images, 0.5 std for features)")
    p.add_argument("--logits", action="store_true",
                   help="score from pre-softmax outputs (float64 softmax) instead of float32 probabilities")
    p.add_argument("--part", default=None, metavar="I/N",
                   help="train only part I of N of the LiRA/RMIA reference models into "
                        "OUT/lira_shadows.part-I-of-N.npz and stop (no scores); join the parts with `tfmodelsec merge`")
    p.add_argument("--lira-shadows-from", default=None, metavar="FILE",
                   help="reuse reference models (lira_shadows.npz from an earlier run or `tfmodelsec merge`)")
    add_common_run_arguments(p)
    add_strategy_argument(p)
    p.set_defaults(func=run)


def _read_ids(spec, name):
    from tfmodelsec.ids import read_ids

    return None if spec is None else read_ids(spec, name=name)


def _training(args):
    from tfmodelsec.attacks.membership import ShadowTraining

    return ShadowTraining(model=args.shadow_model, epochs=args.shadow_epochs, batch_size=args.shadow_batch_size,
                          learning_rate=args.shadow_lr, schedule=args.shadow_schedule,
                          at_once=args.references_at_once)


def _oracle(args, victim, split):
    if args.defense is None:
        return victim
    from tfmodelsec.defenses import make_defense
    from tfmodelsec.oracle import BlackBox

    return BlackBox(victim, defense=make_defense(args.defense, victim, x=split.members[0], seed=args.seed))


def run(args) -> int:
    import numpy as np

    from tfmodelsec.attacks.membership import (
        LabelOnly,
        LiraShadows,
        membership_inference,
        membership_split,
        results_table,
    )
    from tfmodelsec.plotting import close, roc_figure
    from tfmodelsec.utils import write_json

    attacks = [a.strip() for a in args.attacks.split(",") if a.strip()]
    bad = [a for a in attacks if a not in CLI_ATTACKS]
    if bad or not attacks:
        raise CliError(f"--attacks must be among {','.join(CLI_ATTACKS)}. Received: {args.attacks!r}")
    victim, data = load_victim_and_data(args)
    split = membership_split(data, _read_ids(args.members, "--members"), _read_ids(args.non_members, "--non-members"),
                             population=args.population)
    training = _training(args)
    verbose = 0 if args.quiet else 1
    if args.part is not None:
        return _train_part(args, victim, split, training, attacks, verbose)
    target = _oracle(args, victim, split)
    label_only = LabelOnly(queries=args.label_queries, shift=args.label_shift, noise=args.label_noise)
    lira_shadows = None
    if args.lira_shadows_from is not None:
        lira_shadows = LiraShadows.load(args.lira_shadows_from)
    results = []
    for name in attacks:
        attack = name.replace("_offline", "")
        result = membership_inference(
            target, split.members, split.non_members, attack=attack, population=split.population,
            num_shadows=args.lira_shadows if attack in ("lira", "rmia") else args.shadows,
            online=not name.endswith("_offline"), fixed_variance=args.fixed_variance, logits=args.logits,
            training=training, shadows=lira_shadows, population_size=args.population_size, rmia_a=args.rmia_a,
            rmia_gamma=args.rmia_gamma, num_references=args.rmia_references, label_only=label_only,
            seed=args.seed, strategy=strategy_arg(args), verbose=verbose)
        lira_shadows = result.shadows or lira_shadows
        results.append(result)
        if verbose:
            print(result.summary(), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "membership.json", {
        "victim": args.victim, "dataset": data.name, "defense": args.defense, "assumption": split.assumption,
        "seed": args.seed, "members": len(split.member_ids), "non_members": len(split.non_member_ids),
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
    """``--part I/N``: train this part's LiRA/RMIA reference models, write them, score nothing."""
    import numpy as np

    from tfmodelsec.attacks.membership import train_lira_shadows
    from tfmodelsec.distribute import parse_part, part_filename

    part = parse_part(args.part)
    if not any(a in _REFERENCE_ATTACKS for a in attacks) or args.lira_shadows_from is not None:
        raise CliError("--part splits the training of LiRA/RMIA reference models: --attacks must include lira, "
                       "lira_offline, rmia or rmia_offline, without --lira-shadows-from. "
                       f"Received: --attacks {args.attacks!r}")
    if args.lira_shadows < 2:
        raise CliError(f"--lira-shadows must be >= 2. Received: {args.lira_shadows}")
    x = np.concatenate([split.members[0], split.non_members[0]])
    y = np.concatenate([split.members[1], split.non_members[1]])
    shadows = train_lira_shadows(victim, x, y, num_shadows=args.lira_shadows, population=split.population,
                                 population_size=args.population_size, training=training,
                                 strategy=strategy_arg(args), seed=args.seed, part=part, verbose=verbose)
    path = shadows.save(Path(args.out) / part_filename("lira_shadows", part, ".npz"))
    ids = shadows.shadow_ids
    span = f"reference models {ids[0]}-{ids[-1]}" if len(ids) else "no reference models"
    print(f"part {part[0]}/{part[1]}: {span} of {args.lira_shadows} -> {path}")
    print("when every part is done: tfmodelsec merge DIR... --out DIR, then rerun with "
          "--lira-shadows-from DIR/lira_shadows.npz")
    return 0

"""``tfmodelsec recover``: recover one input per class through a trained front-end (white-box)."""

from __future__ import annotations

from pathlib import Path

from tfmodelsec.cli._common import add_common_run_arguments, add_parser, add_victim_argument

EXAMPLE = "tfmodelsec recover saved_models/lenet5_mnist.h5 --target 9 --out runs/recover"


def register(sub) -> None:
    p = add_parser(sub, "recover", help="recover inputs per class by training a front-end before the frozen victim",
                   example=EXAMPLE)
    add_victim_argument(p)
    p.add_argument("--target", default=None, metavar="C[,C...]",
                   help="class(es) to recover, comma-separated (default: all classes)")
    p.add_argument("--epochs", type=int, default=30, help="training epochs of 10 Adam steps (default: 30)")
    p.add_argument("--lr", type=float, default=0.05, help="Adam learning rate (default: 0.05)")
    add_common_run_arguments(p)
    p.set_defaults(func=run)


def _targets(text):
    if text is None:
        return None
    try:
        return [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--target must be comma-separated class indices. Received: {text!r}") from None


def run(args) -> int:
    import numpy as np

    from tfmodelsec import plotting
    from tfmodelsec.attacks.recovery import recover_inputs
    from tfmodelsec.cli._common import load_victim_arg
    from tfmodelsec.utils import write_json

    victim = load_victim_arg(args)
    result = recover_inputs(victim, targets=_targets(args.target), epochs=args.epochs, lr=args.lr,
                            seed=args.seed, verbose=0 if args.quiet else 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result.save(out)
    np.save(out / "recovered.npy", result.images)
    fig = result.plot()
    fig.savefig(out / "recovered.png", dpi=100, bbox_inches="tight")
    plotting.close(fig)
    write_json(out / "recovery.json", {"victim": victim.describe(), "seed": args.seed, "lr": args.lr,
                                       **result.to_dict()})
    print(f"recovered {len(result.targets)} input(s); victim confidence min {result.confidence.min():.4f} "
          f"({result.seconds:.1f}s)")
    print(f"wrote {out}/recovery.json, recovered.npy, recovered.png, attack_model.h5, combined_model.h5")
    return 0

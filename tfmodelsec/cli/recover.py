"""``tfmodelsec recover``: recover one input per class through a trained front-end (white-box).

With ``--dataset`` the victim is fitted to the data (flat victims show their inputs as the
dataset's images, the data's range bounds an unbounded victim) and each recovered input is
scored against the real class means.
"""

from __future__ import annotations

from pathlib import Path

from tfmodelsec.cli._common import add_common_run_arguments, add_dataset_argument, add_parser, add_victim_argument

EXAMPLE = """tfmodelsec recover saved_models/lenet5_mnist.h5 --target 9 --out runs/recover
tfmodelsec recover flat_mlp.h5 --dataset mnist --out runs/recover_flat   # Input(784): shown as 28x28 images"""


def register(sub) -> None:
    p = add_parser(sub, "recover", help="recover inputs per class by training a front-end before the frozen victim",
                   example=EXAMPLE)
    add_victim_argument(p)
    p.add_argument("--target", default=None, metavar="C[,C...]",
                   help="class(es) to recover, comma-separated (default: all classes)")
    p.add_argument("--epochs", type=int, default=30, help="training epochs of 10 Adam steps (default: 30)")
    p.add_argument("--lr", type=float, default=0.05, help="Adam learning rate (default: 0.05)")
    add_dataset_argument(p, default=None)
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
    from tfmodelsec.cli._common import load_victim_and_data, load_victim_arg
    from tfmodelsec.metrics import class_means
    from tfmodelsec.models.ranges import input_bounds
    from tfmodelsec.utils import write_json

    data = bounds = None
    if args.dataset is None:
        victim = load_victim_arg(args)
        if victim.input_range is None:
            raise ValueError("the victim's input range is unbounded: pass --dataset (its range bounds the search) "
                             "or --input-range LO,HI")
    else:
        victim, data = load_victim_and_data(args)
        bounds = input_bounds(victim, data.x_train)
    result = recover_inputs(victim, targets=_targets(args.target), epochs=args.epochs, lr=args.lr,
                            seed=args.seed, verbose=0 if args.quiet else 1, bounds=bounds)
    if data is not None:
        result.evaluate(class_means(data.x_train, data.y_train, victim.num_classes))
    elif result.image_shape is None and len(victim.input_shape) == 1:
        print(f"the victim takes flat inputs {tuple(victim.input_shape)}: shown as feature vectors (pass --dataset "
              "to show them as the dataset's images and score them against its class means)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result.save(out)
    np.save(out / "recovered.npy", result.shown())
    fig = result.plot()
    fig.savefig(out / "recovered.png", dpi=100, bbox_inches="tight")
    plotting.close(fig)
    write_json(out / "recovery.json", {"victim": victim.describe(), "dataset": None if data is None else data.name,
                                       "seed": args.seed, "lr": args.lr, **result.to_dict()})
    score = ""
    if result.metrics:
        score = (f", mean Pearson with class mean {result.metrics['mean_pearson']:.3f}, nearest class mean = "
                 f"target {result.metrics['nearest_mean_correct']}/{len(result.targets)}")
    print(f"recovered {len(result.targets)} input(s); victim confidence min {result.confidence.min():.4f}{score} "
          f"({result.seconds:.1f}s)")
    print(f"wrote {out}/recovery.json, recovered.npy, recovered.png, attack_model.h5, combined_model.h5")
    return 0

"""``tfmodelsec invert``: TV-regularised model inversion of every class (white-box).

Images come out at the dataset's shape (also for a flat-input victim) and in the victim's input
range; feature-vector victims get one vector per class, scored by correlation with the class mean.
"""

from __future__ import annotations

from pathlib import Path

from tfmodelsec.cli._common import (
    add_common_run_arguments,
    add_dataset_argument,
    add_parser,
    add_victim_argument,
)

EXAMPLE = ("tfmodelsec invert saved_models/lenet5_mnist.h5 --dataset mnist --out runs/invert\n"
           "tfmodelsec invert saved_models/lenet5_mnist.h5 --tv-weight 0,0.3,1,3 --out runs/sweep")


def register(sub) -> None:
    p = add_parser(sub, "invert", help="invert every class of a victim (TV + image priors), compare with class means",
                   example=EXAMPLE)
    add_victim_argument(p)
    add_dataset_argument(p)
    p.add_argument("--classes", default=None, metavar="C[,C...]", help="classes to invert (default: all)")
    p.add_argument("--tv-weight", default="1.0", metavar="L[,L...]",
                   help="TV weight λ; several comma-separated values run a sweep (default: 1.0)")
    p.add_argument("--l2-weight", type=float, default=3.0, help="L2 decay weight (default: 3.0)")
    p.add_argument("--loss", default="logit", choices=["ce", "logit", "mse"], help="class loss (default: logit)")
    p.add_argument("--init", default="noise", choices=["zeros", "uniform", "noise", "mean"],
                   help="starting images (default: noise)")
    p.add_argument("--steps", type=int, default=600, help="Adam steps (default: 600)")
    p.add_argument("--lr", type=float, default=0.05, help="Adam learning rate (default: 0.05)")
    p.add_argument("--jitter", type=int, default=None,
                   help="random shift in pixels per step, 0 = off (default: a tenth of the image side)")
    p.add_argument("--blur-sigma", type=float, default=0.7, help="Gaussian blur sigma, 0 = off (default: 0.7)")
    add_common_run_arguments(p)
    p.set_defaults(func=run)


def _floats(text, name):
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--{name} must be comma-separated numbers. Received: {text!r}") from None
    if not values:
        raise ValueError(f"--{name} must name at least one value. Received: {text!r}")
    return values


def run(args) -> int:
    import numpy as np

    from tfmodelsec import plotting
    from tfmodelsec.attacks.inversion import tv_sweep
    from tfmodelsec.cli._common import load_victim_and_data
    from tfmodelsec.metrics import class_means
    from tfmodelsec.models.ranges import input_bounds
    from tfmodelsec.utils import write_json

    victim, data = load_victim_and_data(args)
    classes = None if args.classes is None else [int(v) for v in args.classes.split(",") if v.strip()]
    means = class_means(data.x_train, data.y_train, victim.num_classes)
    bounds = input_bounds(victim, data.x_train)  # the data's range where the victim's is unbounded
    if len(victim.input_shape) == 1 and victim.image_shape is None:
        print(f"feature-vector victim: each class's {victim.input_shape[0]} features are searched within "
              "their bounds (no image priors), scored by correlation with the class mean", flush=True)
    sweep = tv_sweep(victim, _floats(args.tv_weight, "tv-weight"), classes=classes, class_means=means,
                     seed=args.seed, verbose=0 if args.quiet else 1, l2_weight=args.l2_weight, loss=args.loss,
                     init=args.init, steps=args.steps, lr=args.lr, jitter=args.jitter, blur_sigma=args.blur_sigma,
                     bounds=bounds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images = np.concatenate([r.shown() for r in sweep.results]).astype(np.float32)
    labels = np.concatenate([r.labels for r in sweep.results]).astype(np.int64)
    np.save(out / "inverted.npy", images)
    np.save(out / "labels.npy", labels)
    fig = sweep.plot() if len(sweep.results) > 1 else sweep.results[0].plot(title="model inversion")
    fig.savefig(out / "inversion.png", dpi=100, bbox_inches="tight")
    plotting.close(fig)
    payload = {"victim": victim.describe(), "dataset": data.name, "seed": args.seed,
               "runs": [{"tv_weight": lam, **r.to_dict()}
                        for lam, r in zip(sweep.tv_weights, sweep.results, strict=True)],
               **({"trade_off": sweep.to_dict()["trade_off"]} if len(sweep.results) > 1 else {})}
    write_json(out / "inversion.json", payload)
    for lam, r in zip(sweep.tv_weights, sweep.results, strict=True):
        m = r.metrics
        print(f"tv_weight={lam:g}: min confidence {r.confidence.min():.4f}, mean Pearson with class mean "
              f"{m['mean_pearson']:.3f}, nearest class mean = target {m['nearest_mean_correct']}/{len(r.labels)}, "
              f"{r.seconds:.1f}s")
    print(f"wrote {out}/inversion.json, inverted.npy, labels.npy, inversion.png")
    return 0

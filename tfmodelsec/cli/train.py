"""``tfmodelsec train``: train a zoo model on a dataset and save it with its test accuracy."""

from __future__ import annotations

from tfmodelsec.cli._common import (
    add_dataset_argument,
    add_parser,
    add_strategy_argument,
    dataset_options,
    strategy_arg,
)

EXAMPLE = """\
tfmodelsec train --model lenet5 --dataset mnist --epochs 5 --out saved_models/lenet5_mnist.h5
# an overfit membership-inference target (train accuracy >= 99%; the membership benchmark's target):
tfmodelsec train --model lenet5 --dataset fashion_mnist --train-subset 5000 --epochs 40 --lr 5e-3 \\
    --schedule cosine --out runs/target.h5"""


def register(sub) -> None:
    from tfmodelsec.models.zoo import MODELS

    p = add_parser(sub, "train", help="train a victim model from the zoo", example=EXAMPLE)
    p.add_argument("--model", default="auto", choices=["auto", *sorted(MODELS)],
                   help="architecture; auto: lenet5 for images, mlp for feature vectors (default: auto)")
    add_dataset_argument(p)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    p.add_argument("--schedule", default="constant", choices=("constant", "cosine"),
                   help="learning rate: constant, or cosine decay to 0 over all steps (default: constant)")
    p.add_argument("--train-subset", type=int, default=None, metavar="N",
                   help="train on the first N training records only (e.g. an overfit membership target)")
    p.add_argument("--out", required=True, help="model file to write (.h5 or .keras); metrics go to a .json beside it")
    add_strategy_argument(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from tfmodelsec.data import load_dataset
    from tfmodelsec.models.io import save_model
    from tfmodelsec.models.train import train_classifier

    data = load_dataset(args.dataset, **dataset_options(args))
    if args.train_subset is not None:
        data = data.subset(n_train=args.train_subset)
    if args.model == "auto":
        from tfmodelsec.models.zoo import default_architecture

        args.model = default_architecture(data.input_shape)
    result = train_classifier(args.model, data, epochs=args.epochs, batch_size=args.batch_size,
                              learning_rate=args.lr, schedule=args.schedule, seed=args.seed,
                              strategy=strategy_arg(args),
                              verbose=0 if args.quiet else 2)
    meta = {"model": args.model, "dataset": data.name, "train_samples": len(data.x_train),
            "seed": args.seed, "batch_size": args.batch_size, "learning_rate": args.lr, "schedule": args.schedule,
            **result.to_dict()}
    path = save_model(result.model, args.out, metadata=meta)
    print(f"test accuracy: {result.test_accuracy:.4f}  (train {result.train_accuracy:.4f}, "
          f"{result.seconds:.1f}s)")
    print(f"saved {path} and {path.with_suffix('.json')}")
    return 0

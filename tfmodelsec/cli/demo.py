"""``tfmodelsec demo``: train (or reuse) a small MNIST victim and audit it."""

from __future__ import annotations

import sys
from pathlib import Path

from tfmodelsec.cli._common import add_parser

EXAMPLE = "tfmodelsec demo --quick --out runs/demo"
# Quick mode trains on a slice of MNIST: enough for ~97% accuracy in seconds.
_QUICK_TRAIN = 10_000


def register(sub) -> None:
    p = add_parser(sub, "demo", help="train a small victim and audit it end to end", example=EXAMPLE)
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--quick", action="store_true", help="small, fast settings (under 2 minutes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from tfmodelsec.audit import run_audit
    from tfmodelsec.data import load_dataset
    from tfmodelsec.errors import DatasetUnavailable
    from tfmodelsec.models.io import load_victim, save_model
    from tfmodelsec.models.train import train_classifier

    out = Path(args.out)
    try:
        data = load_dataset("mnist")
    except DatasetUnavailable:
        print("tfmodelsec demo: MNIST is neither cached nor downloadable here; using scikit-learn's "
              "digits instead", file=sys.stderr)
        data = load_dataset("digits")
    victim_path = out / f"victim_{data.name}{'_quick' if args.quick else ''}.h5"
    if victim_path.exists():
        print(f"reusing victim {victim_path}")
    else:
        train = data.subset(n_train=min(_QUICK_TRAIN, len(data.x_train))) if args.quick else data
        epochs = 2 if args.quick else 5
        print(f"training lenet5 on {train.name} ({len(train.x_train)} images, {epochs} epochs) ...")
        result = train_classifier("lenet5", train, epochs=epochs, seed=args.seed,
                                  verbose=0 if args.quiet else 2)
        save_model(result.model, victim_path, metadata={"model": "lenet5", **result.to_dict()})
        print(f"victim test accuracy {result.test_accuracy:.4f}, saved {victim_path}")
    victim = load_victim(victim_path)
    report = run_audit(victim, data, out / "audit", quick=args.quick, seed=args.seed,
                       verbose=0 if args.quiet else 1)
    print(f"\nThe audit report is in {report.markdown_path} (machine-readable: {report.json_path})")
    return 0

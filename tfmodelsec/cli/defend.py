"""``tfmodelsec defend``: build (and train) a defense for a victim and save it."""

from __future__ import annotations

from tfmodelsec.cli._common import (
    add_common_run_arguments,
    add_dataset_argument,
    add_parser,
    add_strategy_argument,
    add_victim_argument,
    strategy_arg,
)

EXAMPLE = "tfmodelsec defend saved_models/lenet5_mnist.h5 --defense apgp_top1 --epochs 10 --out runs/apgp"


def register(sub) -> None:
    from tfmodelsec.defenses.registry import DEFENSES

    p = add_parser(sub, "defend", help="train / build a defense layer and save it (.keras + .json)",
                   example=EXAMPLE)
    add_victim_argument(p)
    p.add_argument("--defense", required=True,
                   help=f"one of {', '.join(d for d in DEFENSES if d != 'none')}, apgp (= apgp_all) or apgp_topK")
    add_dataset_argument(p)
    p.add_argument("--epochs", type=int, default=None, help="APGP training epochs (default 10)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a layer option, e.g. stddev=0.2, beta=0.7, k=2, eps=0.3, steps=8 (repeatable)")
    add_strategy_argument(p)
    add_common_run_arguments(p)
    p.set_defaults(func=run)


def _parse_params(items) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--param must be KEY=VALUE. Received: {item!r}")
        for cast in (int, float):
            try:
                out[key] = cast(value)
                break
            except ValueError:
                continue
        else:
            out[key] = {"true": True, "false": False}.get(value.lower(), value)
    return out


def run(args) -> int:
    from pathlib import Path

    from tfmodelsec.cli._common import load_victim_and_data
    from tfmodelsec.defenses.apgp import mean_distance
    from tfmodelsec.defenses.evaluate import _defended
    from tfmodelsec.defenses.registry import make_defense, save_defense
    from tfmodelsec.utils import write_json

    name = "apgp_all" if args.defense == "apgp" else args.defense
    if name == "none":
        raise ValueError("--defense must name a defense, not 'none'")
    params = _parse_params(args.param)
    if args.epochs is not None:
        params["epochs"] = args.epochs
    victim, data = load_victim_and_data(args)
    layer = make_defense(name, victim, x=data.x_train, seed=args.seed, strategy=strategy_arg(args),
                         verbose=0 if args.quiet else 1, **params)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x, y = data.x_test[:5000], data.y_test[:5000]
    plain = victim.probabilities(x)
    answers = _defended(victim, layer, x)
    metrics = {"defense": name, "victim": victim.describe(), "dataset": data.name, "seed": args.seed,
               "strategy": args.strategy,
               "params": {k: v for k, v in params.items() if isinstance(v, (int, float, str, bool))},
               "test_samples": len(x), "victim_accuracy": float((plain.argmax(1) == y).mean()),
               "defender_accuracy": float((answers.argmax(1) == y).mean()),
               "label_kept": float((answers.argmax(1) == plain.argmax(1)).mean())}
    if name.startswith("apgp"):
        metrics["training"] = getattr(layer, "training_summary", {})
        metrics["test_distance"] = mean_distance(layer, plain)
    path = save_defense(layer, out / "defense.keras", num_classes=victim.num_classes, metadata=metrics)
    write_json(out / "defend.json", metrics)
    print(f"{name}: defender accuracy {metrics['defender_accuracy']:.4f} (victim {metrics['victim_accuracy']:.4f}), "
          f"label kept {metrics['label_kept']:.2%}")
    print(f"saved {path} and {out / 'defend.json'}")
    return 0

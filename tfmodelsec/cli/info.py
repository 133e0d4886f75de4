"""``tfmodelsec info``: what a model file holds (shape, classes, output kind, parameters)."""

from __future__ import annotations

import json

from tfmodelsec.cli._common import add_parser, add_victim_argument, load_victim_arg

EXAMPLE = "tfmodelsec info saved_models/lenet5_mnist.h5"


def register(sub) -> None:
    p = add_parser(sub, "info", help="describe a model file", example=EXAMPLE)
    add_victim_argument(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=run)


def run(args) -> int:
    victim = load_victim_arg(args)
    details = victim.describe()
    if args.json:
        print(json.dumps(details, indent=2))
    else:
        width = max(map(len, details))
        for key, value in details.items():
            print(f"{key:<{width}}  {value}")
    return 0

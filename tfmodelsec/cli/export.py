"""``tfmodelsec export``: the defended victim as a TF Serving SavedModel; ``--check`` reads one back."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tfmodelsec.cli._common import DATASET_HELP, CliError, add_data_options, add_input_range_argument, add_parser

EXAMPLE = """\
tfmodelsec export saved_models/lenet5_mnist.h5 --defense rounding --param decimals=2 --out saved_models/defended
tfmodelsec export saved_models/lenet5_mnist.h5 --defense apgp_top1 --defense-path runs/apgp/defense.keras \\
    --out saved_models/defended --version 2
tfmodelsec export --check saved_models/defended"""

NO_DEFENSE = "none"


def register(sub) -> None:
    p = add_parser(sub, "export", help="export the defended victim for TF Serving (or --check an export)",
                   example=EXAMPLE)
    p.add_argument("victim", metavar="VICTIM", nargs="?",
                   help="model file (.h5, .keras) or SavedModel directory (optional with --check)")
    p.add_argument("--unsafe", action="store_true",
                   help="allow model files that run stored code (Lambda/custom layers); trusted files only")
    add_input_range_argument(p)
    p.add_argument("--defense", metavar="NAME",
                   help=f"defense from tfmodelsec.defenses' registry, or '{NO_DEFENSE}' for an undefended export")
    p.add_argument("--defense-path", metavar="DEF", help="a saved (trained) defense, e.g. from 'tfmodelsec defend'")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="defense parameter (repeatable), e.g. --param decimals=2; values are JSON or strings")
    p.add_argument("--dataset", default=None, metavar="NAME|PATH",
                   help="train an apgp_* defense on this dataset's training inputs (instead of --defense-path); "
                        "it also settles the victim's input range where the model does not fix it: "
                        + DATASET_HELP)
    add_data_options(p)
    p.add_argument("--out", metavar="DIR", help="export folder TF Serving is pointed at; writes DIR/VERSION/")
    p.add_argument("--version", type=int, default=1, help="version folder to write (default: 1)")
    p.add_argument("--overwrite", action="store_true", help="replace DIR/VERSION if it exists (other versions stay)")
    p.add_argument("--check", metavar="DIR",
                   help="load an export as a server would, list its signatures, run a sample batch; with "
                        "VICTIM and --defense, compare with the in-process defended model")
    p.add_argument("--report", metavar="FILE", help="also write the check as JSON to FILE")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of random defenses, APGP training and the check's sample batch (default: 0)")
    p.set_defaults(func=run)


def parse_params(items) -> dict:
    """``["k=v", ...]`` -> dict; values parsed as JSON (numbers, booleans, lists) or kept as strings."""
    params = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise CliError(f"--param must be KEY=VALUE. Received: {item!r}")
        try:
            params[key.strip()] = json.loads(value)
        except ValueError:
            params[key.strip()] = value
    return params


def build_defense(name, victim, *, path=None, params=None, dataset=None, seed=0):
    """The defense layer for ``--defense NAME [--defense-path DEF] [--param ...]`` (None for 'none').

    Names come from ``tfmodelsec.defenses.DEFENSES`` (the defenses registry). APGP must be
    trained: pass its saved layer with ``--defense-path`` or a ``--dataset`` to train it on
    (``dataset``: a :class:`~tfmodelsec.data.Dataset` already fitted to the victim).
    """
    params = dict(params or {})
    if name is None:
        raise CliError(f"--defense is required: a registered defense name or '{NO_DEFENSE}'")
    if name == NO_DEFENSE:
        if path or params:
            raise CliError(f"--defense {NO_DEFENSE} takes no --defense-path or --param")
        return None
    try:
        from tfmodelsec.defenses import DEFENSES, load_defense, make_defense
    except ImportError:
        raise CliError(
            f"--defense {name!r}: the defense registry (tfmodelsec.defenses.make_defense) is not part of this "
            f"build; only --defense {NO_DEFENSE} is available"
        ) from None
    key = str(name).strip().lower()
    apgp_top = key.startswith("apgp_top") and key[len("apgp_top"):].isdigit()
    if key not in DEFENSES and not apgp_top:
        raise CliError(f"--defense must be one of {', '.join(DEFENSES)} (or apgp_topK). Received: {name!r}")
    if path is not None:
        if params:
            raise CliError("--param cannot change a saved defense (--defense-path); pass one or the other")
        if not Path(path).exists():
            raise FileNotFoundError(f"--defense-path not found: {path}")
        return load_defense(path)
    x = None
    if key.startswith("apgp_"):
        if dataset is None:
            raise CliError(f"--defense {name} is trained: pass its saved layer with --defense-path "
                           "(from 'tfmodelsec defend') or --dataset NAME to train it now")
        x = dataset.x_train
    return make_defense(key, victim, x=x, seed=seed, **params)


def _victim_and_data(args):
    """The victim, fitted to ``--dataset`` when one is given (its range, the data as it takes it)."""
    from tfmodelsec.cli._common import load_victim_and_data, load_victim_arg

    if args.dataset is None:
        return load_victim_arg(args), None
    return load_victim_and_data(args)


def _check(args) -> int:
    from tfmodelsec.export import check_export

    for flag, value in (("--out", args.out), ("--overwrite", args.overwrite)):
        if value:
            raise CliError(f"{flag} is for exporting; --check only reads DIR. Received: {flag} with --check")
    victim = defense = None
    if args.victim is not None:
        victim, data = _victim_and_data(args)
        defense = build_defense(args.defense, victim, path=args.defense_path, params=parse_params(args.param),
                                dataset=data, seed=args.seed)
    elif args.defense or args.defense_path:
        raise CliError("--defense needs VICTIM with --check (to compare the export with the in-process model)")
    report = check_export(args.check, victim, defense, seed=args.seed)
    print(report.summary())
    if args.report:
        from tfmodelsec.utils import write_json

        write_json(args.report, report.to_dict())
    return 0 if report.ok else 1


def run(args) -> int:
    if args.check is not None:
        return _check(args)
    from tfmodelsec.export import check_export, export_defended

    if args.victim is None:
        raise CliError("VICTIM is required to export (or pass --check DIR to read an export back)")
    if args.out is None:
        raise CliError("--out is required: the export folder TF Serving is pointed at")
    victim, data = _victim_and_data(args)
    defense = build_defense(args.defense, victim, path=args.defense_path, params=parse_params(args.param),
                            dataset=data, seed=args.seed)
    path = export_defended(victim, defense, args.out, version=args.version, overwrite=args.overwrite)
    print(f"wrote {path}")
    if defense is None:
        print("tfmodelsec export: warning: --defense none: clients will see the victim's raw outputs",
              file=sys.stderr)
    report = check_export(path, victim, defense, seed=args.seed)
    print(report.summary())
    if args.report:
        from tfmodelsec.utils import write_json

        write_json(args.report, report.to_dict())
    return 0 if report.ok else 1

"""Helpers shared by the subcommands: victim/dataset arguments, error handling."""

from __future__ import annotations

import argparse
import sys
import textwrap

from tfmodelsec.errors import TfmsError

__all__ = ["add_parser", "add_victim_argument", "add_strategy_argument", "strategy_arg", "add_dataset_argument", "add_common_run_arguments",
           "load_victim_arg", "load_data_arg", "load_victim_and_data", "run_command", "parse_int_list", "CliError",
           "add_input_range_argument", "input_range_arg"]

EXIT_USER_ERROR = 2


class CliError(TfmsError, ValueError):
    """A bad command-line argument combination."""


def add_parser(sub, name: str, *, help: str, example: str, description: str | None = None):
    """Add a subcommand whose ``--help`` ends with an example."""
    return sub.add_parser(
        name,
        help=help,
        description=description or help,
        epilog="example:\n" + textwrap.indent(example.strip(), "  "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_victim_argument(parser) -> None:
    parser.add_argument("victim", metavar="VICTIM", help="model file (.h5, .keras) or SavedModel directory")
    parser.add_argument("--unsafe", action="store_true",
                        help="allow model files that run stored code (Lambda/custom layers); trusted files only")
    add_input_range_argument(parser)


def add_input_range_argument(parser) -> None:
    parser.add_argument("--input-range", default="auto", metavar="LO,HI|none|auto",
                        help="the victim's valid input values: LO,HI (e.g. 0,255), none (unbounded, e.g. "
                             "standardised features) or auto (default: a Rescaling/Normalization layer at the "
                             "model's input says, else the data's range)")


def input_range_arg(args):
    """``--input-range`` parsed: ``"auto"``, ``(lo, hi)`` or ``None``; a CliError names the flag."""
    from tfmodelsec.models.ranges import parse_input_range

    text = getattr(args, "input_range", "auto")
    try:
        return parse_input_range(text, allow_auto=True)
    except ValueError:
        raise CliError(f"--input-range must be LO,HI with LO < HI (e.g. 0,255), none or auto. "
                       f"Received: {text!r}") from None


def add_dataset_argument(parser, *, default: str = "mnist") -> None:
    parser.add_argument("--dataset", default=default,
                        help=f"mnist, fashion_mnist, cifar10, digits or tfds:NAME (default: {default})")


def add_common_run_arguments(parser, *, out_required: bool = True, out_default: str | None = None) -> None:
    parser.add_argument("--out", required=out_required, default=out_default, metavar="DIR",
                        help="output folder" + (f" (default: {out_default})" if out_default else ""))
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_strategy_argument(parser) -> None:
    parser.add_argument("--strategy", default="default", choices=("default", "mirrored", "multiworker"),
                        help="tf.distribute strategy for training (multiworker reads TF_CONFIG; default: default)")


def strategy_arg(args):
    from tfmodelsec.distribute import make_strategy

    return make_strategy(getattr(args, "strategy", "default"))


def load_victim_arg(args):
    from tfmodelsec.models.io import load_victim

    input_range = input_range_arg(args)
    if args.unsafe:
        print("tfmodelsec: warning: --unsafe: code stored in the model file may run", file=sys.stderr)
    return load_victim(args.victim, safe_mode=not args.unsafe, input_range=input_range)


def load_victim_and_data(args, *, verbose: int = 1):
    """The victim and ``--dataset``, fitted to each other (:func:`tfmodelsec.models.align_data`):
    reshaped for a flat victim, rescaled to its input range; each change said in one line."""
    from tfmodelsec.models.align import align_data

    victim = load_victim_arg(args)
    return align_data(victim, load_data_arg(args), verbose=verbose)


def load_data_arg(args, victim=None):
    from tfmodelsec.data import load_dataset

    data = load_dataset(args.dataset)
    if victim is not None:
        victim.check_input_shape(data.input_shape, what=f"dataset {data.name!r}")
    return data


def parse_int_list(text: str, *, name: str) -> list[int]:
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise CliError(f"--{name} must be comma-separated integers. Received: {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise CliError(f"--{name} must be positive integers. Received: {text!r}")
    return values


def run_command(args) -> int:
    """Run ``args.func(args)``; turn user errors into one line on stderr and exit 2."""
    try:
        return int(args.func(args) or 0)
    except (TfmsError, ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
            PermissionError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"tfmodelsec {args.command}: error: {msg}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"tfmodelsec {args.command}: interrupted", file=sys.stderr)
        return 130

"""Helpers shared by the subcommands: victim/dataset arguments, error handling."""

from __future__ import annotations

import argparse
import sys
import textwrap

from tfmodelsec.errors import TfmsError

__all__ = [
    "add_parser",
    "add_victim_argument",
    "add_strategy_argument",
    "strategy_arg",
    "add_dataset_argument",
    "add_common_run_arguments",
    "add_data_options",
    "dataset_options",
    "load_victim_arg",
    "load_data_arg",
    "load_victim_and_data",
    "add_input_range_argument",
    "input_range_arg",
    "warn_if_near_chance",
    "run_command",
    "parse_int_list",
    "CliError",
]

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


DATASET_HELP = ("mnist, fashion_mnist, cifar10, digits, tfds:NAME, or your own data: FILE.npz (x_train, y_train, "
                "x_test, y_test), FILE.csv (numeric features + a label column), a folder with train.csv and "
                "test.csv, or an image folder (train/<class>/, test/<class>/)")


def add_dataset_argument(parser, *, default: str = "mnist") -> None:
    parser.add_argument("--dataset", default=default, metavar="NAME|PATH",
                        help=f"{DATASET_HELP} (default: {default})")
    add_data_options(parser)


def add_data_options(parser) -> None:
    """``--image-size`` and ``--label-column``: how to read the user's own data files."""
    parser.add_argument("--image-size", default=None, metavar="H,W",
                        help="resize an image folder's images to H x W pixels (default: keep their common size)")
    parser.add_argument("--label-column", default="label", metavar="NAME",
                        help="the label column of a CSV dataset (default: label)")


def _image_size(text):
    if text is None:
        return None
    try:
        size = [int(v) for v in str(text).split(",")]
    except ValueError:
        size = []
    if len(size) == 1:
        size *= 2
    if len(size) != 2 or min(size) <= 0:
        raise CliError(f"--image-size must be H,W (two positive integers) or one integer. Received: {text!r}")
    return tuple(size)


def dataset_options(args) -> dict:
    """``load_dataset`` keyword arguments from ``--image-size`` / ``--label-column``.

    The CSV split and an image folder's record order use load_dataset's fixed default seed, not
    ``--seed``: every command then sees the same train/test split of the same file.
    """
    return {"image_size": _image_size(getattr(args, "image_size", None)),
            "label_column": getattr(args, "label_column", None) or "label"}


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
    reshaped for a flat victim, rescaled to its input range; each change said in one line, then
    the near-chance warning when the victim does no better than chance on the fitted data."""
    from tfmodelsec.models.align import align_data

    victim, data = align_data(load_victim_arg(args), load_data_arg(args), verbose=verbose)
    warn_if_near_chance(getattr(args, "command", ""), victim, data)
    return victim, data


def load_data_arg(args, victim=None):
    from tfmodelsec.data import load_dataset

    data = load_dataset(args.dataset, **dataset_options(args))
    if victim is not None:
        victim.check_input_shape(data.input_shape, what=f"dataset {data.name!r}")
        warn_if_near_chance(getattr(args, "command", ""), victim, data)
    return data


def warn_if_near_chance(command: str, victim, data):
    """Print a warning (stderr) when ``victim`` is near chance on ``data``; returns the check.

    Called right after the data is loaded, so the warning comes before the command's output.
    """
    from tfmodelsec.models.fit import check_fit

    fit = check_fit(victim, data)
    if fit.warning:
        print(f"tfmodelsec {command}: warning: {fit.warning}", file=sys.stderr, flush=True)
    return fit


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

"""The ``tfmodelsec`` command: a thin shell over the Python API.

Each subcommand lives in its own module of this package with a ``register(subparsers)``
function. User errors print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

__all__ = ["main", "COMMANDS"]

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS = (
    "train", "info", "audit", "demo",
    "recover", "invert", "steal", "membership",
    "defend", "evaluate", "export", "chain", "unlearn", "merge",
)


def build_parser() -> argparse.ArgumentParser:
    from tfmodelsec import __version__

    parser = argparse.ArgumentParser(
        prog="tfmodelsec",
        description="Security audits for Keras models: what can an attacker get from yours?",
        epilog="Run 'tfmodelsec COMMAND --help' for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"tfmodelsec {__version__}")
    parser.add_argument("--verbose", action="store_true", help=_VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        module_name = f"tfmodelsec.cli.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # that capability is not part of this build yet
                continue
            raise
        module.register(sub)
    for command_parser in sub.choices.values():  # also accepted after the command
        if "--verbose" not in command_parser._option_string_actions:
            command_parser.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                                        help=_VERBOSE_HELP)
    return parser


_VERBOSE_HELP = "also show TensorFlow's and Keras' own log lines and warnings"


def _quiet_library_logs() -> None:
    """Keep TensorFlow's, absl's and Python's warnings (legacy-HDF5 notice, retracing hints) off the terminal.

    TensorFlow's C++ start-up lines are dealt with earlier, while the package is imported
    (:mod:`tfmodelsec._quiet`): by the time ``main`` runs, TensorFlow is loaded.
    """
    import logging
    import warnings

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # absl comes with TensorFlow; nothing to quiet without it
        pass
    # library warnings address the library's author, not the command's user
    for module in ("keras", "tensorflow", "tf_keras", "absl", "h5py", "sklearn", "numpy", "matplotlib"):
        warnings.filterwarnings("ignore", module=module)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if not getattr(args, "verbose", False):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        _quiet_library_logs()
    from tfmodelsec.cli._common import run_command

    return run_command(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

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
    return parser


def _quiet_library_logs() -> None:
    """Keep TensorFlow's and absl's warnings (legacy-HDF5 notice, retracing hints) off the terminal."""
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # absl comes with TensorFlow; nothing to quiet without it
        pass


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _quiet_library_logs()
    from tfmodelsec.cli._common import run_command

    args = build_parser().parse_args(argv)
    return run_command(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

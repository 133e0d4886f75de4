"""Keeps TensorFlow's start-up notices out of the ``tfmodelsec`` command's output.

TensorFlow 2.21 writes these lines on stderr while it is imported, from C++ static
initialisers that run before absl logging is initialised, so ``TF_CPP_MIN_LOG_LEVEL`` does
not reach them (measured: they appear at every level, 0 to 3)::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 ... port.cc:153] oneDNN custom operations are on. ...
    I0000 ... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.

(twice: ``libtensorflow_framework.so.2`` and the profiler plugin each hold a copy), and on
the first device query of a machine without a CUDA driver, at ERROR severity::

    E0000 ... cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: ...

The command imports TensorFlow with file descriptor 2 sent through a small filter process
that drops those notices (absl lines below the wanted level, and the cuInit failure when the
same start-up said there is no CUDA driver) and passes every other byte on at once. Because
the filter is a process of its own, a crash during the import still reaches the terminal.
``tfmodelsec --verbose`` or ``TF_CPP_MIN_LOG_LEVEL=0`` in the environment turn all of this off.
Importing :mod:`tfmodelsec` as a library changes nothing: only the command does this.
"""

from __future__ import annotations

import os
import sys

__all__ = ["running_as_command", "import_tensorflow_quietly", "command_log_level"]

#: TF_CPP_MIN_LOG_LEVEL the command uses when the user set none: INFO and WARNING off.
DEFAULT_LEVEL = 2

# The filter, run as ``python -I -S -c _FILTER LEVEL``: reads stdin line by line, writes the
# kept lines to stdout (the real stderr). Ignores Ctrl-C so it outlives a parent stopped
# mid-import and still forwards what came before.
_FILTER = r"""
import re, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
level = int(sys.argv[1])
absl = re.compile(rb"^([IWEF])\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] ")
rank = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}
no_driver = dropped = False
out = sys.stdout.buffer
for line in iter(sys.stdin.buffer.readline, b""):
    m = absl.match(line)
    if line.startswith(b"WARNING: All log messages before absl::InitializeLog()"):
        drop = level > 0
    elif m:
        no_driver = no_driver or b"Could not find cuda drivers" in line
        drop = rank[m.group(1)] < level or (level > 0 and no_driver and b"failed call to cuInit" in line)
    else:  # a continuation of the absl message just dropped (cpu_feature_guard's second line)
        drop = dropped and line.startswith(b"To enable the following instructions")
    dropped = drop
    if not drop:
        out.write(line)
        out.flush()
"""


def running_as_command(argv=None, orig_argv=None) -> bool:
    """Whether this process is the ``tfmodelsec`` command (console script or ``python -m tfmodelsec``).

    Called while :mod:`tfmodelsec` is being imported, before the command's ``main`` runs:
    under ``-m``, ``sys.argv[0]`` is ``"-m"`` until the module is found, so the original
    command line (``sys.orig_argv``, Python >= 3.10) tells which module runs.
    """
    argv = sys.argv if argv is None else argv
    orig = list(getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv)
    if argv and os.path.basename(str(argv[0])).split(".")[0] == "tfmodelsec":
        return True
    for i, token in enumerate(orig[:-1]):
        if token == "-m":
            return orig[i + 1] in ("tfmodelsec", "tfmodelsec.cli")
    return False


def command_log_level(argv=None, environ=None) -> int | None:
    """The TF log level the command filters start-up lines at, or ``None`` to leave TensorFlow be.

    ``None`` for ``--verbose`` or ``TF_CPP_MIN_LOG_LEVEL=0``; the user's own level otherwise,
    else :data:`DEFAULT_LEVEL`.
    """
    argv = sys.argv[1:] if argv is None else argv
    environ = os.environ if environ is None else environ
    options = argv[: argv.index("--")] if "--" in argv else argv
    if "--verbose" in options:
        return None
    raw = environ.get("TF_CPP_MIN_LOG_LEVEL")
    if raw is None:
        return DEFAULT_LEVEL
    try:
        level = int(raw)
    except ValueError:
        return DEFAULT_LEVEL
    return level if level > 0 else None


def import_tensorflow_quietly(level: int) -> None:
    """Import TensorFlow and query its devices with fd 2 filtered at ``level`` (see the module doc).

    Sets ``TF_CPP_MIN_LOG_LEVEL`` (when unset) so TensorFlow's own later C++ logging follows
    the same level. A no-op when TensorFlow is already imported; without a filter process
    (not POSIX, or it cannot start) TensorFlow is imported as usual.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", str(level))
    if "tensorflow" in sys.modules:
        return
    proc = saved = None
    if os.name == "posix":
        import subprocess

        try:
            sys.stderr.flush()
            saved = os.dup(2)
            proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _FILTER, str(int(level))],
                                    stdin=subprocess.PIPE, stdout=saved, stderr=saved)
            os.dup2(proc.stdin.fileno(), 2)
        except OSError:  # no filter: TensorFlow speaks as usual
            if proc is not None:
                proc.stdin.close()
                proc.wait()
            if saved is not None:
                os.close(saved)
            proc = saved = None
    try:
        import tensorflow as tf

        # the first device query is where a machine without a CUDA driver logs cuInit's failure
        tf.config.list_physical_devices()
    finally:
        if proc is not None:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # a process TensorFlow started still holds the pipe
                proc.kill()
                proc.wait()


def quiet_command_startup() -> None:
    """When this process is the ``tfmodelsec`` command, import TensorFlow quietly (see the module doc)."""
    if "tensorflow" in sys.modules or not running_as_command():
        return
    level = command_log_level()
    if level is not None:
        import_tensorflow_quietly(level)

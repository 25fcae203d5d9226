"""The ``edgecnn`` command line: thin commands over the Python API.

Each command module registers its commands on :data:`edgecnn.cli.app.app`. :func:`main` maps
user-facing errors (``EdgecnnError`` and click's usage errors) to one line on stderr and exit 2.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading

import typer

from edgecnn.cli import (  # noqa: F401  (imported for their command registrations)
    analyse_cmds,
    codesign_cmds,
    compress_cmds,
    demo_cmds,
    deploy_cmds,
    hardware_cmds,
    kernels_cmds,
    report_cmds,
    runtime_cmds,
    validate_cmds,
)
from edgecnn.cli.app import app
from edgecnn.errors import EdgecnnError

__all__ = ["app", "main"]


#: File-system conditions that are the user's to fix, not bugs: one line, exit 2.
USER_OS_ERRORS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.EISDIR,
        errno.ENOTDIR,
        errno.ENAMETOOLONG,
        errno.EFBIG,
        errno.EMFILE,
    }
)


REDELIVER_S = 10.0
"""Seconds after which an interrupt is delivered again while the command still runs (a library
that catches everything, as Torch-Pruning's tracing does with a bare ``except:``, can swallow
the first one)."""


class _Interrupts:
    """SIGINT and SIGTERM raise ``KeyboardInterrupt`` so the command unwinds (temporary files
    and directories are removed on the way out). If the command is still running
    :data:`REDELIVER_S` seconds later, the interrupt is delivered again, until :meth:`done`."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.received = False

    def handler(self, signum, _frame) -> None:
        self.received = True
        if self._thread is None:
            self._thread = threading.Thread(target=self._redeliver, args=(signum,), daemon=True)
            self._thread.start()
        raise KeyboardInterrupt

    def _redeliver(self, signum: int) -> None:
        while not self._done.wait(REDELIVER_S):
            os.kill(os.getpid(), signum)

    def done(self) -> None:
        self._done.set()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``edgecnn`` script (``argv`` None: the process's own arguments).

    Run as the process (``argv`` None), an interrupted command ends the process at once with
    exit code 130 once its clean-up has run while unwinding: interpreter shutdown would
    otherwise wait on helper threads of terminated worker pools, or re-raise the interrupt.
    """
    try:
        _main(argv)
    except SystemExit as e:
        if argv is None and e.code == 130:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        raise


def _main(argv: list[str] | None) -> None:
    interrupts = _Interrupts()
    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, interrupts.handler)
    try:
        rv = app(args=argv, prog_name="edgecnn", standalone_mode=False)
    except EdgecnnError as e:
        print(f"edgecnn: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except MemoryError:
        print(
            "edgecnn: error: out of memory: use a smaller input shape, batch or model",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    except OSError as e:
        if e.errno not in USER_OS_ERRORS:
            raise
        where = f" '{e.filename}'" if e.filename else ""
        print(f"edgecnn: error: cannot access{where}: {e.strerror}", file=sys.stderr)
        raise SystemExit(2) from None
    except typer.TyperException as e:  # typer's (vendored click) usage and parameter errors
        if type(e).__name__ == "NoArgsIsHelpError":
            e.show()  # type: ignore[attr-defined]
            raise SystemExit(2) from None
        msg = " ".join(e.format_message().split())
        ctx = getattr(e, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        print(f"edgecnn: error: {msg}{hint}", file=sys.stderr)
        raise SystemExit(2) from None
    except (typer.Abort, KeyboardInterrupt):
        print("edgecnn: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception:
        # A library can turn our KeyboardInterrupt into its own error (onnxruntime's native
        # import raises "ImportError: initialization failed" when interrupted mid-import).
        if not interrupts.received:
            raise
        print("edgecnn: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        interrupts.done()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if rv == 130:  # typer turns KeyboardInterrupt (Ctrl-C, or SIGTERM above) into Exit(130)
        print("edgecnn: interrupted", file=sys.stderr)
    if isinstance(rv, int) and rv != 0:
        raise SystemExit(rv)

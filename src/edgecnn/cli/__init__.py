"""The ``edgecnn`` command line: thin commands over the Python API.

Each command module registers its commands on :data:`edgecnn.cli.app.app`. :func:`main` maps
user-facing errors (``EdgecnnError`` and click's usage errors) to one line on stderr and exit 2.
"""

from __future__ import annotations

import errno
import signal
import sys
import threading

import typer

from edgecnn.cli import (  # noqa: F401  (imported for their command registrations)
    analyse_cmds,
    compress_cmds,
    demo_cmds,
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


def _interrupt(signum, _frame) -> None:
    """SIGTERM behaves like Ctrl-C: unwind (temporary files and directories are removed)."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``edgecnn`` script."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _interrupt)
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
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if rv == 130:  # typer turns KeyboardInterrupt (Ctrl-C, or SIGTERM above) into Exit(130)
        print("edgecnn: interrupted", file=sys.stderr)
    if isinstance(rv, int) and rv != 0:
        raise SystemExit(rv)

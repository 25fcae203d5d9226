"""Run the CLI in-process and capture its exit code, stdout and stderr."""

from edgecnn.cli import main


def run_cli(argv, capsys):
    """``(exit code, stdout, stderr)`` of ``edgecnn ARGV`` (0 when it returns normally)."""
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err

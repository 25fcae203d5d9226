"""Commands of the analysis group: ``profile``, ``zoo``, ``devices``."""

from edgecnn.cli.app import app


@app.command()
def version() -> None:
    """Print the edgecnn version.

    Example: edgecnn version
    """
    from edgecnn import __version__

    print(__version__)

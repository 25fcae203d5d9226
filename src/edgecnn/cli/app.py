"""The typer application object shared by the command modules."""

import typer

app = typer.Typer(
    name="edgecnn",
    help="Put convolutional networks on edge hardware: analyse, simulate, compress, deploy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

"""Commands of this group are registered here on edgecnn.cli.app.app."""

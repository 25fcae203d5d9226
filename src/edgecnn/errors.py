"""The one family of user-facing errors.

Every message says what is wrong and how to fix it. The CLI turns any ``EdgecnnError`` into one
line on stderr and exit code 2; anything else is a bug and keeps its traceback.
"""


class EdgecnnError(Exception):
    """Base of all user-facing errors (bad input, bad config, unsupported model)."""


class ConfigError(EdgecnnError):
    """An invalid configuration value (accelerator, recipe, option)."""


class ShapeError(EdgecnnError):
    """A shape that is missing, malformed or inconsistent."""


class UnsupportedOpError(EdgecnnError):
    """An operator the requested analysis cannot handle (raised only when strictness is asked)."""


class ModelLoadError(EdgecnnError):
    """A model file or name that cannot be loaded."""

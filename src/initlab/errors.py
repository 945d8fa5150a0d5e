"""The project's user-facing errors: each prints as one line naming the bad key/value and the fix."""

from collections.abc import Iterable


class InitLabError(Exception):
    """Bad input or a fault the user can fix; reported as one line, without a traceback."""


class ConfigError(InitLabError, ValueError):
    """A config value is out of range, of the wrong type, or names an unknown choice."""


class DataError(InitLabError):
    """Data files are missing, unreadable or corrupt."""


class CheckpointError(InitLabError):
    """A checkpoint is missing, unreadable, foreign, or conflicts with the command line."""


class OutputError(InitLabError):
    """The run dir cannot be written: full disk, gone, unwritable, or in use by another run."""


def check_choice(key: str, name: str, valid: Iterable[str]) -> None:
    """Raise ConfigError naming `key`, the bad `name` and the valid choices."""
    valid = sorted(valid)
    if name not in valid:
        raise ConfigError(f"{key}={name!r} is not a valid choice; choose one of: {', '.join(valid)}")

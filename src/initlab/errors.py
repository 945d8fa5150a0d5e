"""The project's user-facing errors: each prints as one line naming the bad key/value and the fix."""

import argparse
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


class OneLineParser(argparse.ArgumentParser):
    """argparse, whose usage errors raise ArgumentError (the caller prints one line, exit 1) instead of printing
    the usage and the message and exiting 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise argparse.ArgumentError(None, message)


def check_choice(key: str, name: str, valid: Iterable[str]) -> None:
    """Raise ConfigError naming `key`, the bad `name` and the valid choices."""
    valid = sorted(valid)
    if name not in valid:
        raise ConfigError(f"{key}={name!r} is not a valid choice; choose one of: {', '.join(valid)}")


def describe(e: BaseException, limit: int = 300) -> str:
    """An exception as one line: its type and its message's lines joined, cut at `limit` characters. Hydra puts
    the reason for "Error in call to target '...':" on the next line, so a first line alone would lose it."""
    lines = [line.strip() for line in str(e).strip().splitlines()]
    text = " ".join(line for line in lines if line and not line.startswith(("full_key:", "object_type=",
                                                                            "reference_type=")))  # fmt: skip
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__

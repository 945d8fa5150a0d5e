"""A Hydra callback that checks the output dir before Hydra creates it, so a bad one fails in one line."""

import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def unwritable_reason(path: Path) -> str | None:
    """Why `path` cannot be created or written, or None if it can."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{str(existing)!r} is a file"
    return None if os.access(existing, os.W_OK | os.X_OK) else f"{str(existing)!r} is not writable"


class CheckOutputDir(Callback):
    def _check(self, key: str, path: str) -> None:
        reason = unwritable_reason(Path(path).absolute())
        if reason:
            log.error("%s=%r cannot be created: %s; choose another with %s=...", key, path, reason, key)
            sys.exit(1)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check("hydra.run.dir", config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check("hydra.sweep.dir", config.hydra.sweep.dir)

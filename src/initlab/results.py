"""What a run leaves behind: metrics.json (written atomically) and the HParams record."""

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write JSON to a temp file beside `path`, then rename: readers never see half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_choices(cfg: DictConfig, choices: dict[str, str | None]) -> dict[str, Any]:
    """The run's identity: what was chosen for each swept group, plus the seed."""
    return {
        "init": cfg.init.name,
        "act": cfg.act.name,
        "optimizer": choices.get("optimizer") or cfg.optimizer._target_.rsplit(".", 1)[-1].lower(),
        "scheduler": choices.get("scheduler"),
        "seed": cfg.seed,
    }


def hparams(cfg: DictConfig, choices: dict[str, Any]) -> dict[str, Any]:
    """Flat, plain-valued hparams for TensorBoard's HParams tab."""
    return {
        **choices,
        "lr": cfg.optimizer.lr,
        "batch_size": cfg.data.batch_size,
        "hidden_dims": str(list(cfg.model.hidden_dims)),
        "max_epochs": cfg.trainer.max_epochs,
        "init_bias": cfg.init.get("bias", "zero"),
        "act_kwargs": str({k: v for k, v in OmegaConf.to_container(cfg.act).items() if k != "name"}),
    }

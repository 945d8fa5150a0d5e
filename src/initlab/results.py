"""What a run leaves behind: metrics.json (written atomically) and the HParams record."""

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

NOT_CHOICES = ("data.data_dir", "ckpt_path", "train", "num_threads", "trainer.accelerator", "experiment")


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write to a temp file beside `path`, then rename: readers never see half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _finite(obj: Any) -> Any:
    """NaN/inf -> None, so the file stays strict JSON (a diverged run's loss is NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    return [_finite(v) for v in obj] if isinstance(obj, list | tuple) else obj


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_atomic(path, json.dumps(_finite(obj), indent=2, sort_keys=True) + "\n")


def load_job(job_dir: Path) -> dict[str, Any]:
    """A job dir -> {"dir", "choices", "metrics", "status"}; a job that left no metrics.json counts as failed."""
    overrides = job_dir / ".hydra" / "overrides.yaml"
    choices: dict[str, Any] = {}
    for item in OmegaConf.load(overrides) if overrides.is_file() else []:
        key, _, value = str(item).lstrip("+~").partition("=")
        if key not in NOT_CHOICES and not key.startswith("hydra"):
            choices[key] = value
    metrics_file = job_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {"status": "failed"}
    choices |= {k: str(metrics[k]) for k in ("init", "act", "optimizer", "scheduler", "seed") if k in metrics}
    return {"dir": job_dir.name, "choices": choices, "metrics": metrics, "status": metrics.get("status", "failed")}


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

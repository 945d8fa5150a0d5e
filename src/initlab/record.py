"""What a run leaves behind: metrics.json and other files written whole (temp file + rename), and job records."""

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from initlab.errors import OutputError

RUN_KEYS = ("init", "act", "optimizer", "scheduler", "seed")  # what identifies a run in records and summaries


def identity(cfg: DictConfig, choices: dict[str, Any]) -> dict[str, Any]:
    """What identifies a run in its record: the choice of each studied group, plus the seed."""
    seed = cfg.get("seed")
    seed = OmegaConf.to_container(seed) if OmegaConf.is_config(seed) else seed  # plain, even when it is bad
    plain = {k: choices.get(k) for k in RUN_KEYS if k != "seed"}  # the config files' names
    return {k: v if v is None or isinstance(v, str) else str(v) for k, v in plain.items()} | {"seed": seed}


RESULTS = ("test/acc", "val/acc", "val/acc_best", "train/loss")  # the HParams tab's metrics


def hparams(cfg: DictConfig, record: dict[str, Any]) -> dict[str, Any]:
    """A few flat hyperparameters for TensorBoard's HParams tab; it ticks the first five in name order, and
    act and init are among them."""
    return {**{k: record.get(k) for k in RUN_KEYS}, "lr": cfg.optimizer.lr, "batch_size": cfg.data.batch_size}


def umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: the classic read-by-setting, restored at once
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write to a temp file beside `path`, then rename: readers never see half a file under the final name.

    mkstemp makes the file 0600 whatever the umask; it gets the mode any other file would (0666 & ~umask).
    Any failure (a full disk, a vanished dir) raises OutputError naming the file, and leaves no temp file.
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename: a crash leaves the old file or the new, never half
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except OSError as e:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"could not write {path}: {e.strerror or e}") from e


def _finite(obj: Any) -> Any:
    """NaN/inf -> None, so the file stays strict JSON (a diverged run's loss is NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    return [_finite(v) for v in obj] if isinstance(obj, list | tuple) else obj


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_atomic(path, json.dumps(_finite(obj), indent=2, sort_keys=True) + "\n")


def read_metrics(run_dir: Path) -> dict[str, Any] | None:
    """A run dir's metrics.json, or None when it has none or it is unreadable."""
    try:
        return json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None


def parse_overrides(items: list[str]) -> dict[str, str]:
    """["init=lecun", "+x.y=1", "~z"] -> {"init": "lecun", "x.y": "1"} (deletions dropped)."""
    pairs = (str(item).lstrip("+").partition("=") for item in items if not str(item).startswith("~"))
    return {key: value for key, sep, value in pairs if sep}


def load_job(job_dir: Path, not_choices: tuple[str, ...]) -> dict[str, Any]:
    """A job dir -> {"dir", "choices", "overrides", "metrics", "status"}; one that left no metrics.json failed."""
    overrides = job_dir / ".hydra" / "overrides.yaml"
    items = list(OmegaConf.load(overrides)) if overrides.is_file() else []
    given = {k: v for k, v in parse_overrides(items).items() if k not in not_choices and not k.startswith("hydra")}
    metrics = read_metrics(job_dir) or {"status": "failed"}
    choices = given | {k: str(metrics[k]) for k in RUN_KEYS if k in metrics}  # true names, even set via a combo
    return {"dir": job_dir.name, "choices": choices, "overrides": given, "metrics": metrics,
            "status": metrics.get("status", "failed")}  # fmt: skip

"""Checkpoints that are never half-written, and whose best score survives a resume into another directory."""

import logging
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from initlab.files import not_a_file, write_atomic

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save into memory, then a temp file + rename: a full disk leaves the previous checkpoint intact."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        import io

        buf = io.BytesIO()
        torch.save(checkpoint, buf)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, buf.getvalue())

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None) -> Any:
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)  # data, never code


class BestCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that, resumed into another directory, brings best.ckpt and its score along.

    Lightning keeps the best score only when the directory is unchanged; a run resumed elsewhere would
    otherwise forget it and report a lower val/acc_best.
    """

    source: Path | None = None  # the folder of the checkpoint this run resumes (set in setup, before the restore)

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self.source = Path(trainer.ckpt_path).resolve().parent if trainer.ckpt_path else None

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """The checkpoint's best score, with its paths mapped into this run's checkpoint dir. The best model comes
        along only from beside the resumed checkpoint, under the run's own name (best.ckpt): the paths are the
        checkpoint's to name, and it could name any file (Lightning also deletes a superseded best file)."""
        old_dir, best = state_dict.get("dirpath"), state_dict.get("best_model_path")
        new_best = str(Path(self.dirpath) / f"{self.filename}{self.FILE_EXTENSION}") if self.dirpath and best else ""
        moved = bool(self.dirpath and old_dir and Path(old_dir).resolve() != Path(self.dirpath).resolve())
        beside = bool(best) and self.source is not None and Path(best).parent.resolve() == self.source
        ours = beside and Path(best).name == Path(new_best).name and not not_a_file(best, follow=False)
        if moved and ours and not Path(new_best).exists():  # only the run's own best.ckpt, and only a plain file
            Path(self.dirpath).mkdir(parents=True, exist_ok=True)
            write_atomic(new_best, Path(best).read_bytes())
        elif moved and best and not ours:
            log.warning("resuming: %s is gone; the best score is kept, the best model is not", best)
        score = state_dict.get("best_model_score")
        state_dict = {**state_dict, "dirpath": self.dirpath, "best_model_path": new_best,
                      "kth_best_model_path": new_best, "best_k_models": {new_best: score} if new_best else {},
                      "last_model_path": ""}  # fmt: skip
        super().load_state_dict(state_dict)

"""The data module: MNIST-format data held in memory as tensors, a seeded validation split, batch loaders.

`prepare_data` makes sure the files exist (initlab.idx: decompress or download); `setup` reads them once
per process and splits off the validation set by the seed.
"""

import logging
from typing import Any

import lightning.pytorch as pl
import torch

from initlab.batches import BatchLoader, IndexBatches
from initlab.errors import DataError
from initlab.idx import ensure_mnist, float_splits, load_split, raw_dir

log = logging.getLogger(__name__)


class MNISTDataModule(pl.LightningDataModule):
    """MNIST, FashionMNIST or KMNIST (`dataset`, torchvision's name): the same IDX files and 1x28x28 images."""

    def __init__(self, data_dir: str = "data", batch_size: int = 100, eval_batch_size: int = 1000, val_size: int = 5000,
                 seed: int = 0, download: bool = True, dataset: str = "MNIST") -> None:  # fmt: skip
        super().__init__()
        self.save_hyperparameters(logger=False)  # in checkpoints: evaluation rebuilds the same validation split
        self.data_dir, self.batch_size, self.eval_batch_size = data_dir, batch_size, eval_batch_size
        self.val_size, self.seed, self.download, self.dataset = val_size, seed, download, dataset
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def prepare_data(self) -> None:
        ensure_mnist(self.data_dir, self.download, self.dataset)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        ensure_mnist(self.data_dir, download=False, dataset=self.dataset)
        x, y = load_split(self.data_dir, "train", self.dataset)
        if not 0 < self.val_size < len(x):
            raise DataError(f"data.val_size={self.val_size} must be in [1, {len(x)}) for {len(x)} training images")
        if self.batch_size > len(x) - self.val_size:
            n_train = len(x) - self.val_size
            raise DataError(f"data.batch_size={self.batch_size} is larger than the {n_train} training images")
        xt, yt = load_split(self.data_dir, "test", self.dataset)
        self.splits = dict(float_splits(x, y, xt, yt, self.seed, self.val_size))  # a copy: _loader may move tensors
        sizes = {k: len(v[1]) for k, v in self.splits.items()}
        log.info("%s from %s: %s", self.dataset, raw_dir(self.data_dir, self.dataset), sizes)

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> BatchLoader:
        x, y = self.splits[split]
        trainer = self.trainer
        if trainer is not None and trainer.strategy.root_device.type != "cpu":
            x, y = x.to(trainer.strategy.root_device), y.to(trainer.strategy.root_device)  # once, not per step
            self.splits[split] = (x, y)
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        return BatchLoader(x, y, IndexBatches(len(y), batch_size, shuffle, self.seed, rank, world))

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        if batch[0].device == device:  # the loader slices tensors that already live there: nothing to move
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def train_dataloader(self) -> BatchLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> BatchLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> BatchLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)

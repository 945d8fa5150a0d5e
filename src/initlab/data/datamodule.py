"""The data module for any image classification data set: a `load` function gives its tensors; this module checks
them against the data config, splits off a seeded validation set and serves batches from memory.

A data set is one YAML (conf/data/NAME.yaml) naming its `load` function, its `image_shape` and `num_classes`:
    load(data_dir=..., download=..., **its own args) -> (x_train, y_train, x_test, y_test)
with x uint8 (pixels 0..255) or float (finite) [N, C, H, W] and y integer labels [N]. `data_dir` and `download`
are passed when the function takes them. Models read `image_shape` and `num_classes` from the data config. What
the function raises is one line naming it (data.load=...).
"""

import functools
import inspect
import logging
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.utils import get_object, instantiate

from initlab.data.batches import BatchLoader, IndexBatches
from initlab.errors import DataError, InitLabError
from initlab.inits import USER_EXITS

log = logging.getLogger(__name__)
Tensors = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _as_unit(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float32).div_(255.0) if x.dtype == torch.uint8 else x.to(torch.float32)  # as ToTensor() gives


@functools.lru_cache(maxsize=2)
def float_splits(x: torch.Tensor, y: torch.Tensor, xt: torch.Tensor, yt: torch.Tensor, seed: int,
                 val_size: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:  # fmt: skip
    """-> {train, val, test}: (x float32, y int64), the validation set split off by `seed`.

    Cached per process (keyed by the loader's cached tensors): a sweep worker converts once, not per job.
    """
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    val, train = perm[:val_size], perm[val_size:]
    # split while still uint8 (4x less to copy), then convert once
    return {"train": (_as_unit(x[train]), y[train].long()), "val": (_as_unit(x[val]), y[val].long()),
            "test": (_as_unit(xt), yt.long())}  # fmt: skip


def check_tensors(tensors: Any, where: str, image_shape: tuple[int, ...], num_classes: int) -> Tensors:
    """The loader's result must be four tensors of the configured image shape and class count: one line if not."""
    if not isinstance(tensors, tuple | list) or len(tensors) != 4 or not all(torch.is_tensor(t) for t in tensors):
        raise DataError(f"{where} must return (x_train, y_train, x_test, y_test) tensors")
    x, y, xt, yt = tensors
    devices = sorted({t.device.type for t in tensors} - {"cpu"})
    if devices:  # the module moves the data itself (to the GPU when there is one); meta tensors hold no data
        raise DataError(f"{where} gave tensors on {', '.join(devices)}; return them on the CPU")
    for split, images, labels in (("training", x, y), ("test", xt, yt)):
        if labels.dim() != 1:
            raise DataError(f"{where} gave {split} labels of shape {list(labels.shape)}; labels are one integer an "
                            "image: shape [N]")  # fmt: skip
        if tuple(images.shape[1:]) != image_shape:
            found = "x".join(map(str, images.shape[1:]))
            raise DataError(f"{where} gave {split} images of shape {found}, but data.image_shape is "
                            f"{list(image_shape)}")  # fmt: skip
        if len(images) != len(labels) or len(images) == 0:
            raise DataError(f"{where} gave {len(images)} {split} images and {len(labels)} labels")
        _check_pixels(images, where, split)
        bad = ((labels < 0) | (labels >= num_classes)).nonzero().flatten()
        if labels.dtype.is_complex or labels.dtype == torch.bool:
            raise DataError(f"{where} gave {split} labels of dtype {str(labels.dtype).removeprefix('torch.')}; "
                            f"labels must be integers in 0..{num_classes - 1}")  # fmt: skip
        if labels.dtype.is_floating_point or bad.numel():
            i = int(bad[0]) if bad.numel() else 0
            raise DataError(f"{where} gave {split} label {labels[i].item()} at index {i}; labels must be integers in "
                            f"0..{num_classes - 1} (data.num_classes={num_classes})")  # fmt: skip
    return x, y, xt, yt


def _check_pixels(images: torch.Tensor, where: str, split: str) -> None:
    """Images are uint8 (pixels 0..255, scaled to [0, 1]) or float (used as they are, so finite), and plain data
    (not requiring grad): one line if not. Other dtypes would be cast to float unscaled (int64 pixels of 0..1000
    would train as they are)."""
    if images.requires_grad:  # a leaf of autograd's graph: the first backward would run through the data set too
        raise DataError(f"{where} gave {split} images that require grad (requires_grad=True); return plain data: "
                        "x.detach()")  # fmt: skip
    dtype = str(images.dtype).removeprefix("torch.")
    if images.dtype != torch.uint8 and not images.dtype.is_floating_point:
        values = ""
        if images.numel() and not images.dtype.is_complex:
            values = f" (values {images.min().item()}..{images.max().item()})"
        raise DataError(f"{where} gave {split} images of dtype {dtype}{values}; images must be uint8 (pixels 0..255) "
                        "or float")  # fmt: skip
    if images.dtype.is_floating_point:
        bad = (~torch.isfinite(images)).flatten(1).any(dim=1).nonzero().flatten()
        if bad.numel():
            i = int(bad[0])
            value = images[i][~torch.isfinite(images[i])].flatten()[0].item()
            raise DataError(f"{where} gave {split} image {i} with a pixel of {value}; float images must be finite")


class ImageData(pl.LightningDataModule):
    """Any data set `load` returns, held in memory as tensors; a seeded validation split; batch loaders."""

    def __init__(self, load: dict[str, Any], image_shape: list[int], num_classes: int, data_dir: str = "data",
                 download: bool = True, batch_size: int = 100, eval_batch_size: int = 1000, val_size: int = 5000,
                 seed: int = 0) -> None:  # fmt: skip
        super().__init__()
        self.save_hyperparameters(logger=False)  # in checkpoints: evaluation rebuilds the same validation split
        self.load, self.image_shape, self.num_classes = dict(load), tuple(image_shape), num_classes
        self.data_dir, self.download, self.seed = data_dir, download, seed
        self.batch_size, self.eval_batch_size, self.val_size = batch_size, eval_batch_size, val_size
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def _tensors(self, download: bool) -> Tensors:
        """Call the data set's load function with what it takes of data_dir and download."""
        target = self.load["_target_"]
        given = {"data_dir": self.data_dir, "download": download}
        try:
            params = inspect.signature(get_object(target)).parameters
            load = instantiate(self.load, _partial_=True)
            tensors = load(**{k: v for k, v in given.items() if k in params})
        except InitLabError:  # the shipped loaders' own lines name the file and the fix
            raise
        except (Exception, *USER_EXITS) as e:  # a user's load that raises or exits: name it (an OSError would
            first = (str(e).strip().splitlines() or [""])[0]  # blame the run dir; a SystemExit would end silently)
            why = f"{type(e).__name__}: {first}" if first else type(e).__name__  # KeyboardInterrupt() says nothing
            raise DataError(f"data.load={target} failed: {why}") from e
        return check_tensors(tensors, f"data.load ({target})", self.image_shape, self.num_classes)

    def prepare_data(self) -> None:
        self._tensors(self.download)  # downloads where allowed (rank 0 only, under DDP)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        x, y, xt, yt = self._tensors(download=False)
        if not 0 < self.val_size < len(x):
            raise DataError(f"data.val_size={self.val_size} must be in [1, {len(x)}) for {len(x)} training images")
        if self.batch_size > len(x) - self.val_size:
            n_train = len(x) - self.val_size
            raise DataError(f"data.batch_size={self.batch_size} is larger than the {n_train} training images")
        self.splits = dict(float_splits(x, y, xt, yt, self.seed, self.val_size))  # a copy: _loader may move them
        log.info("%s from %s: %s", self.load["_target_"], self.data_dir, {k: len(v[1]) for k, v in self.splits.items()})

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

"""MNIST-format files (IDX, torchvision's layout `<data_dir>/MNIST/raw/*-ubyte`): find, decompress, download,
read and check them. Any bad file ends in one DataError line naming it, the problem and the fix.
"""

import functools
import gzip
import logging
import math
import os
import shutil
import tempfile
import zlib
from pathlib import Path

import numpy as np
import torch

from initlab.checks import CLASSES, IMAGE
from initlab.errors import DataError

log = logging.getLogger(__name__)

FILES = {  # split -> (images, labels), as torchvision names them
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_MAGIC = {3: 2051, 1: 2049}  # ndim -> magic number (uint8 payload)
IMAGE_SHAPE = IMAGE[1:]  # (28, 28)
NUM_CLASSES = CLASSES  # labels are 0..NUM_CLASSES-1
REFETCH = "delete it to re-download (data.download=true)"


def raw_dir(data_dir: str | Path, dataset: str = "MNIST") -> Path:
    return Path(data_dir).expanduser() / dataset / "raw"


def _why(e: BaseException) -> str:
    """The reason in `e` as one short line: strerror for OS errors (the path is named by the caller)."""
    text = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return text.splitlines()[0]


def _is_a_directory(path: Path) -> DataError:
    return DataError(
        f"{path} is a directory where an MNIST data file belongs; remove it to re-download (data.download=true)"
    )


def _read_bytes(path: Path) -> bytearray:
    """The whole file as a writable buffer, so torch.from_numpy takes it without a warning."""
    try:
        if path.is_dir():  # else open() says only "Is a directory"
            raise _is_a_directory(path)
        with path.open("rb") as f:
            buf = bytearray(os.fstat(f.fileno()).st_size)
            del buf[f.readinto(buf) :]  # a file shrinking under us reads short; the size check reports it
    except OSError as e:
        raise DataError(
            f"cannot read {path}: {_why(e)}; check that it is a readable file, or point data.data_dir=... "
            "at a readable copy of MNIST"
        ) from e
    return buf


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an uncompressed IDX file of uint8 with `ndim` dims, checking magic number and size."""
    buf = _read_bytes(path)
    header = 4 * (1 + ndim)
    if not buf:
        raise DataError(f"{path} is empty (0 bytes); {REFETCH}")
    if len(buf) < header or int.from_bytes(buf[:4], "big") != IDX_MAGIC[ndim]:
        raise DataError(f"{path} is not an IDX file with {ndim} dims (bad magic number); {REFETCH}")
    shape = tuple(int.from_bytes(buf[4 * i : 4 * i + 4], "big") for i in range(1, ndim + 1))
    if len(buf) != header + math.prod(shape):  # math.prod: exact, where np.prod would overflow on garbage dims
        raise DataError(f"{path} is truncated or corrupt: {len(buf)} bytes for shape {shape}; {REFETCH}")
    if shape[0] == 0:
        raise DataError(f"{path} holds no items (shape {shape}); {REFETCH}")
    return np.frombuffer(buf, dtype=np.uint8, offset=header).reshape(shape)


def read_images(path: Path) -> np.ndarray:
    """-> [N, 1, 28, 28] uint8 pixels (the images' natural shape, one channel), checking they are 28x28."""
    x = read_idx(path, 3)
    if x.shape[1:] != IMAGE_SHAPE:
        found, expected = ("x".join(map(str, s)) for s in (x.shape[1:], IMAGE_SHAPE))
        raise DataError(f"{path} holds {found} images, expected {expected} (MNIST); {REFETCH}")
    return x[:, None]  # [N, 28, 28] -> [N, 1, 28, 28]


def read_labels(path: Path) -> np.ndarray:
    """-> [N] int64 labels, checking each is a class in 0..NUM_CLASSES-1."""
    y = read_idx(path, 1)
    bad = np.flatnonzero(y >= NUM_CLASSES)  # uint8: never negative
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{path} has label {y[i]} at index {i} ({bad.size} bad in all); labels must be in "
            f"0..{NUM_CLASSES - 1}; {REFETCH}"
        )
    return y.astype(np.int64)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        s = path.stat()
    except OSError:
        return None  # read_idx reports it, with the reason
    return s.st_size, s.st_mtime_ns


def load_split(data_dir: str | Path, split: str, dataset: str = "MNIST") -> tuple[torch.Tensor, torch.Tensor]:
    """-> (x [N, 1, 28, 28] uint8 pixels, y [N] int64); `to_unit` makes the pixels float32 in [0, 1].

    Cached per process (keyed by the files' size and mtime): a sweep worker reads MNIST once, not per job.
    """
    images, labels = (raw_dir(data_dir, dataset).resolve() / name for name in FILES[split])
    return _load_split(images, labels, (_stamp(images), _stamp(labels)))


@functools.lru_cache(maxsize=4)
def _load_split(images: Path, labels: Path, stamp: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(read_images(images))
    y = torch.from_numpy(read_labels(labels))
    if len(x) != len(y):
        raise DataError(
            f"{images} has {len(x)} images but {labels} has {len(y)} labels; delete both to re-download "
            "(data.download=true)"
        )
    return x, y


def to_unit(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float32).div_(255.0)  # uint8 -> float32 in [0, 1], as ToTensor() gives


@functools.lru_cache(maxsize=2)
def float_splits(x: torch.Tensor, y: torch.Tensor, xt: torch.Tensor, yt: torch.Tensor, seed: int,
                 val_size: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:  # fmt: skip
    """-> {train, val, test}: (x float32 in [0, 1], y), the validation set split off by `seed`.

    Cached per process (keyed by load_split's cached tensors): a sweep worker converts once, not per job.
    """
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    val, train = perm[:val_size], perm[val_size:]
    # split while still uint8 (4x less to copy), then convert once
    return {"train": (to_unit(x[train]), y[train]), "val": (to_unit(x[val]), y[val]), "test": (to_unit(xt), yt)}


def gunzip(gz: Path, dest: Path) -> None:
    """Decompress torchvision's archive `gz` to `dest` beside it, as torchvision does, but atomically.

    Writes a temp file in dest's folder then os.replace: a crash or a corrupt archive never leaves a
    half-written file under dest's name, and parallel sweep workers doing the same each replace it whole.
    """
    log.info("decompressing %s", gz)
    try:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    except OSError as e:
        raise DataError(f"cannot write into {dest.parent}: {_why(e)}; make it writable or gunzip {gz} there") from e
    try:
        with os.fdopen(fd, "wb") as out, gzip.open(gz, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
        shutil.copymode(gz, tmp)  # mkstemp makes it 0600; others who can read the archive can read this too
        os.replace(tmp, dest)
    except (OSError, EOFError, zlib.error) as e:  # gzip raises all three for corrupt or truncated archives
        raise DataError(f"cannot decompress {gz}: {_why(e)}; if it is corrupt, {REFETCH}") from e
    finally:
        Path(tmp).unlink(missing_ok=True)  # gone after os.replace; else the partial output


def _prepare_raw_file(path: Path) -> None:
    """Reject a directory at `path`; if the file is absent but its .gz is there, decompress it."""
    gz = path.with_name(path.name + ".gz")
    try:
        if path.is_dir():  # torchvision would fail on it with a confusing download error
            raise _is_a_directory(path)
        if not path.exists() and gz.exists():
            gunzip(gz, path)
    except OSError as e:  # e.g. an unreadable raw folder
        raise DataError(f"cannot read {path}: {_why(e)}; check the permissions of {path.parent}") from e


def ensure_mnist(data_dir: str | Path, download: bool = True, dataset: str = "MNIST") -> None:
    """Make sure the four raw files exist under data_dir, decompressing .gz archives or downloading if allowed."""
    root = Path(data_dir).expanduser()
    if root.exists() and not root.is_dir():
        raise DataError(f"data.data_dir={str(data_dir)!r} is a file, not a directory")
    names = [n for pair in FILES.values() for n in pair]
    for name in names:
        _prepare_raw_file(raw_dir(root, dataset) / name)
    missing = [n for n in names if not (raw_dir(root, dataset) / n).is_file()]
    if not missing:
        return
    reason = "download=false"
    if download:
        try:
            import torchvision.datasets  # heavy import, only when downloading

            for train in (True, False):
                getattr(torchvision.datasets, dataset)(str(root), train=train, download=True)
            return
        except Exception as e:  # no network, mirror down, disk full...
            reason = f"download failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    raise DataError(
        f"{dataset} not found in {raw_dir(root, dataset).resolve()} (missing {', '.join(missing)}) and {reason}; "
        f"point data.data_dir=... at a folder holding {dataset}/raw/*-ubyte"
    )

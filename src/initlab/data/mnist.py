"""The MNIST family (MNIST, FashionMNIST, KMNIST): IDX files in torchvision's layout `<data_dir>/<dataset>/raw/
*-ubyte`, found, decompressed, downloaded where allowed, read and checked. `load` is the data configs' function.
Any bad file ends in one DataError line naming it, the problem and the fix.
"""

import contextlib
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

from initlab.data import MNIST_FAMILY
from initlab.errors import DataError, describe
from initlab.files import not_a_file

log = logging.getLogger(__name__)

FILES = {  # split -> (images, labels), as torchvision names them
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_MAGIC = {3: 2051, 1: 2049}  # ndim -> magic number (uint8 payload)
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
    kind = not_a_file(path)
    if kind == "a directory":  # else open() says only "Is a directory"
        raise _is_a_directory(path)
    if kind not in (None, "missing"):  # a FIFO would block the open until a writer came; a device never ends
        raise DataError(f"{path} is {kind}, not a data file; point data.data_dir=... at a copy of the data set")
    try:
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
    """-> [N, 1, H, W] uint8 pixels (the images' natural shape, one channel)."""
    return read_idx(path, 3)[:, None]  # [N, H, W] -> [N, 1, H, W]


def read_labels(path: Path) -> np.ndarray:
    """-> [N] int64 labels (the data module checks them against data.num_classes)."""
    return read_idx(path, 1).astype(np.int64)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        s = path.stat()
    except OSError:
        return None  # read_idx reports it, with the reason
    return s.st_size, s.st_mtime_ns


def load_split(data_dir: str | Path, split: str, dataset: str = "MNIST") -> tuple[torch.Tensor, torch.Tensor]:
    """-> (x [N, 1, H, W] uint8 pixels, y [N] int64).

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
        if os.path.getsize(tmp) == 0:  # gzip reads an empty file as an empty archive, without an error
            raise DataError(f"cannot decompress {gz}: it holds nothing (an empty archive); {REFETCH}")
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
            if not_a_file(gz):
                raise DataError(f"{gz} is {not_a_file(gz)}, not an archive; {REFETCH}")
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
    missing = [n for n in names if not (raw_dir(root, dataset) / n).exists()]  # a FIFO is "there": read says what it is
    if not missing:
        return
    reason = "download=false"
    if download:
        absent = [d for d in (raw_dir(root, dataset), raw_dir(root, dataset).parent, root) if not d.exists()]
        try:
            import torchvision.datasets  # heavy import, only when downloading

            for train in (True, False):
                getattr(torchvision.datasets, dataset)(str(root), train=train, download=True)
            return
        except Exception as e:  # no network, mirror down, disk full...
            reason = f"download failed: {describe(e, limit=200)}"
            for d in absent:  # the empty folders torchvision made for it, innermost first
                with contextlib.suppress(OSError):
                    d.rmdir()
    raise DataError(
        f"{dataset} not found in {raw_dir(root, dataset).resolve()} (missing {', '.join(missing)}) and {reason}; "
        f"point data.data_dir=... at a folder holding {dataset}/raw/*-ubyte"
    )


def load(data_dir: str | Path = "data", download: bool = True, dataset: str = "MNIST") -> tuple[torch.Tensor, ...]:
    """-> (x_train, y_train, x_test, y_test): uint8 images [N, 1, H, W] and int64 labels [N] of `dataset`
    (torchvision's name and folder), decompressed or downloaded first where needed and allowed."""
    if dataset not in MNIST_FAMILY:  # EMNIST has splits and other files; any other name is not this layout
        raise DataError(f"data.load.dataset={dataset!r} is not allowed: one of {', '.join(MNIST_FAMILY)}")
    ensure_mnist(data_dir, download, dataset)
    return (*load_split(data_dir, "train", dataset), *load_split(data_dir, "test", dataset))

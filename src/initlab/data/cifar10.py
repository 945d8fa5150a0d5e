"""CIFAR-10 in torchvision's python layout: `<data_dir>/cifar-10-batches-py/{data_batch_1..5, test_batch}`, read
offline, downloaded by torchvision where allowed. `load` is conf/data/cifar10.yaml's function.

Each batch file is a pickle of a dict with byte-string keys (b"data": uint8 [N, 3072] in CHW order, b"labels").
`pickle.load` would run whatever a file says; this reader's unpickler builds only dicts, lists, strings, numbers
and numpy arrays, and refuses anything else in one line; what it built must then be a uint8 array and a list of
ints, checked by type before any conversion (a few KB of pickle can stand for a nested list of 1e12 items). Files
in this format load whether or not they are the official bytes (torchvision checks md5 sums; the tests write small
synthetic files).
"""

import functools
import io
import logging
import pickle
import reprlib
from pathlib import Path

import numpy as np
import torch

from initlab.errors import DataError
from initlab.files import not_a_file

log = logging.getLogger(__name__)
FOLDER = "cifar-10-batches-py"
TRAIN, TEST = [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]
SHAPE = (3, 32, 32)  # the format's: 3072 bytes a row, red plane, green plane, blue plane
SAFE = {  # what a CIFAR pickle may name: numpy's array reconstruction, and bytes as protocol 2 writes them
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"), ("numpy", "ndarray"),
    ("numpy", "dtype"), ("_codecs", "encode"),
}  # fmt: skip


class _DataOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) in SAFE:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it names {module}.{name}, which a data file has no use for")


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """-> (images uint8 [N, 3, 32, 32], labels int64 [N]) of one batch file; any problem is one DataError line."""
    kind = not_a_file(path)
    if kind:
        raise DataError(f"{path} is {kind}; point data.data_dir=... at a folder holding {FOLDER}/ (data.download=true "
                        "fetches it)")  # fmt: skip
    try:
        batch = _DataOnly(io.BytesIO(path.read_bytes()), encoding="bytes").load()
        problem = _not_a_batch(batch)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        problem = str(e) or type(e).__name__
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from e
    if problem:
        raise DataError(f"{path} is not a CIFAR-10 batch file: {problem}; delete it to re-download "
                        "(data.download=true)")  # fmt: skip
    images, labels = batch[b"data"], batch[b"labels"]
    if images.ndim != 2 or images.shape[1] != np.prod(SHAPE) or len(images) != len(labels):
        raise DataError(f"{path} holds data of shape {list(images.shape)} and {len(labels)} labels; a CIFAR-10 "
                        f"batch holds [N, 3072] and N labels")  # fmt: skip
    return images.reshape(-1, *SHAPE), np.asarray(labels, dtype=np.int64)  # checked: a copy of N ints at most


def _not_a_batch(batch: object) -> str | None:
    """What makes an unpickled object no CIFAR-10 batch, or None. Only types and sizes are looked at, before
    any conversion: a few KB of pickle memo references can stand for a nested list of 1e12 items, which
    np.asarray would walk for hours (a list is refused at its first element, not walked)."""
    if type(batch) is not dict:
        return f"it holds a {type(batch).__name__}, not a dict"
    missing = [repr(k) for k in (b"data", b"labels") if k not in batch]
    if missing:
        return f"it has no {' or '.join(missing)} entry"
    data, labels = batch[b"data"], batch[b"labels"]
    if type(data) is not np.ndarray or data.dtype != np.uint8:
        what = f"an array of {data.dtype}" if type(data) is np.ndarray else f"a {type(data).__name__}"
        return f"its b'data' is {what}; a CIFAR-10 batch holds a numpy array of uint8 pixels (0..255)"
    if type(labels) is np.ndarray:
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            return (f"its b'labels' is an array of {labels.dtype} of shape {list(labels.shape)}; a CIFAR-10 "
                    "batch holds a list of ints")  # fmt: skip
        return None
    if type(labels) is not list:
        return f"its b'labels' is a {type(labels).__name__}; a CIFAR-10 batch holds a list of ints"
    if len(labels) != len(data):
        return None  # the caller names both sizes
    bad = next((i for i, v in enumerate(labels) if type(v) is not int or not -(2**63) <= v < 2**63), None)
    if bad is not None:
        v = labels[bad]
        shown = reprlib.repr(v) if type(v) in (int, float, str, bytes, bool) else f"a {type(v).__name__}"
        return f"its b'labels'[{bad}] is {shown}; a CIFAR-10 batch holds a list of ints"
    return None


def _download(root: Path) -> None:
    try:
        import torchvision.datasets  # heavy import, only when downloading

        torchvision.datasets.CIFAR10(str(root), train=True, download=True)
    except Exception as e:  # no network, mirror down, disk full...
        raise DataError(f"CIFAR-10 not found in {root / FOLDER} and its download failed ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}); point data.data_dir=... at a folder holding "
                        f"{FOLDER}/") from e  # fmt: skip


@functools.lru_cache(maxsize=2)
def _read(folder: Path, stamp: tuple) -> tuple[torch.Tensor, ...]:
    parts = [[read_batch(folder / name) for name in names] for names in (TRAIN, TEST)]
    x, y = (torch.from_numpy(np.concatenate([p[i] for p in parts[0]])) for i in (0, 1))
    xt, yt = (torch.from_numpy(np.concatenate([p[i] for p in parts[1]])) for i in (0, 1))
    return x, y, xt, yt


def load(data_dir: str | Path = "data", download: bool = True) -> tuple[torch.Tensor, ...]:
    """-> (x_train uint8 [50000, 3, 32, 32], y_train, x_test [10000, 3, 32, 32], y_test); cached per process
    (keyed by the files' sizes and times): a sweep worker reads them once."""
    root = Path(data_dir).expanduser()
    folder = root / FOLDER
    missing = [n for n in (*TRAIN, *TEST) if not (folder / n).exists()]
    if missing and download:
        _download(root)
    elif missing:
        raise DataError(f"CIFAR-10 not found in {folder.resolve()} (missing {', '.join(missing)}) and "
                        f"download=false; point data.data_dir=... at a folder holding {FOLDER}/")  # fmt: skip
    stamp = tuple((s.st_size, s.st_mtime_ns) for s in ((folder / n).stat() for n in (*TRAIN, *TEST)))
    return _read(folder.resolve(), stamp)

"""CIFAR-10 in torchvision's python layout: `<data_dir>/cifar-10-batches-py/{data_batch_1..5, test_batch}`, read
offline, downloaded by torchvision where allowed. `load` is conf/data/cifar10.yaml's function.

Each batch file is a pickle of a dict with byte-string keys (b"data": uint8 [N, 3072] in CHW order, b"labels").
`pickle.load` would run whatever a file says; this reader's unpickler builds only dicts, lists, strings, numbers
and numpy arrays, and refuses anything else in one line. Files in this format load whether or not they are the
official bytes (torchvision checks md5 sums; the tests write small synthetic files).
"""

import functools
import io
import logging
import pickle
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
        images = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise DataError(f"{path} is not a CIFAR-10 batch file: {str(e) or type(e).__name__}; delete it to "
                        "re-download (data.download=true)") from e  # fmt: skip
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from e
    if images.ndim != 2 or images.shape[1] != np.prod(SHAPE) or len(images) != len(labels):
        raise DataError(f"{path} holds data of shape {list(images.shape)} and {len(labels)} labels; a CIFAR-10 "
                        f"batch holds [N, 3072] and N labels")  # fmt: skip
    return images.reshape(-1, *SHAPE), labels


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

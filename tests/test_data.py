"""The IDX reader, the in-memory batches and the missing/corrupt-data errors."""

import errno
import gzip
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from initlab.data.batches import BatchLoader, IndexBatches
from initlab.data.mnist import FILES, ensure_mnist, load_split
from initlab.errors import DataError
from tests.conftest import make_tiny_mnist, mnist_data, write_idx


def test_load_split_shapes_and_range(tiny_mnist: Path) -> None:
    x, y = load_split(tiny_mnist, "train")
    assert x.shape == (600, 1, 28, 28) and x.dtype == torch.uint8 and y.shape == (600,)  # the images' own shape
    dm = mnist_data(tiny_mnist, val_size=100)
    dm.setup()
    x, y = dm.splits["train"]
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min() >= 0.0 and 0.9 < x.max() <= 1.0 and set(y.tolist()) <= set(range(10))  # pixels / 255


def test_datamodule_splits_are_seeded_and_disjoint(tiny_mnist: Path) -> None:
    a, b = (mnist_data(tiny_mnist, val_size=100, seed=1) for _ in range(2))
    a.setup(), b.setup()
    assert torch.equal(a.splits["val"][0], b.splits["val"][0])
    assert {k: len(v[1]) for k, v in a.splits.items()} == {"train": 500, "val": 100, "test": 200}


def loader(x: torch.Tensor, y: torch.Tensor, batch_size: int, **kw: object) -> BatchLoader:
    return BatchLoader(x, y, IndexBatches(len(y), batch_size, **kw))


def test_batches_reshuffle_each_epoch_and_cover_everything() -> None:
    x, y = torch.arange(10.0).unsqueeze(1), torch.arange(10)
    dl = loader(x, y, 4, shuffle=True, seed=0)
    assert len(dl) == 3
    e1 = torch.cat([b[1] for b in dl])
    dl.sampler.set_epoch(1)  # as Lightning does before each epoch
    e2 = torch.cat([b[1] for b in dl])
    assert sorted(e1.tolist()) == list(range(10)) and not torch.equal(e1, e2)
    again = loader(x, y, 4, shuffle=True, seed=0)
    assert torch.equal(torch.cat([b[1] for b in again]), e1)  # same seed, same order
    assert torch.equal(torch.cat([b[0] for b in again]).squeeze(1), e1.float())  # images stay with their labels
    other = loader(x, y, 4, shuffle=True, seed=1)
    assert not torch.equal(torch.cat([b[1] for b in other]), e1)  # the seed decides the order
    plain = loader(x, y, 4)
    assert torch.cat([b[1] for b in plain]).tolist() == list(range(10))  # evaluation: in order


def test_state_dict_resumes_mid_epoch() -> None:
    x, y = torch.arange(10.0).unsqueeze(1), torch.arange(10)
    full = loader(x, y, 3, shuffle=True, seed=5)
    full.sampler.set_epoch(2)
    batches = [b[1] for b in full]
    it = iter(full)
    next(it), next(it)
    state = full.state_dict()
    resumed = loader(x, y, 3, shuffle=True, seed=5)
    resumed.load_state_dict(state)
    assert state == {"epoch": 2, "served": 2}
    assert [b[1].tolist() for b in resumed] == [b.tolist() for b in batches[2:]]
    assert len([*resumed]) == 4  # the next epoch is whole again
    at_end = loader(x, y, 3, shuffle=True, seed=5)
    at_end.load_state_dict({"epoch": 2, "served": 4})  # saved by the validation at the end of epoch 2
    at_end.sampler.set_epoch(3)  # Lightning moves on to epoch 3 ...
    assert len([*at_end]) == 4  # ... which must not skip what epoch 2 served


def test_eval_ranks_count_each_sample_once_and_train_ranks_take_equal_steps() -> None:
    x, y = torch.zeros(10, 1), torch.arange(10)
    evals = [torch.cat([b[1] for b in loader(x, y, 3, rank=r, world_size=3)]) for r in range(3)]
    assert sorted(torch.cat(evals).tolist()) == list(range(10))  # 4 + 3 + 3: no sample twice, none missed
    trains = [loader(x, y, 3, shuffle=True, rank=r, world_size=3) for r in range(3)]
    assert [len(t) for t in trains] == [2, 2, 2]  # 4 samples each (two padded): DDP steps stay in lockstep
    seen = torch.cat([torch.cat([b[1] for b in t]) for t in trains])
    assert len(seen) == 12 and set(seen.tolist()) == set(range(10))


def test_missing_data_without_download_names_path_and_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"MNIST not found in .*MNIST/raw.*data\.data_dir="):
        ensure_mnist(tmp_path / "nowhere", download=False)


def test_failed_download_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets

    def offline(root: str, **kwargs) -> None:
        (Path(root) / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)  # as torchvision does before it fetches
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://..., got URLError")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(DataError, match=r"download failed: RuntimeError: Error downloading .*: Tried .*URLError; "
                                        r"point data\.data_dir="):  # fmt: skip
        ensure_mnist(tmp_path / "data", download=True)
    assert not (tmp_path / "data").exists()  # the empty folders made for the download are gone


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(DataError, match="is a file"):
        ensure_mnist(f)


def tiny_raw(tmp_path: Path) -> Path:
    """A small, writable MNIST/raw folder of this test's own, to damage."""
    return make_tiny_mnist(tmp_path, n_train=20, n_test=10) / "MNIST" / "raw"


def one_line(e: pytest.ExceptionInfo) -> str:
    assert "\n" not in str(e.value)  # shown to the user as one line
    return str(e.value)


DAMAGE = {  # name: (new bytes from the old, what the message must say)
    "magic": (lambda b: b"\0\0\0\0" + b[4:], "is not an IDX file with 3 dims"),
    "truncate": (lambda b: b[:-5], r"is truncated or corrupt: \d+ bytes for shape \(20, 28, 28\)"),
    "empty": (lambda b: b"", r"is empty \(0 bytes\)"),
    "random": (lambda b: np.random.default_rng(0).bytes(len(b)), "is not an IDX file"),
    # valid magic, no pixels, dims whose product is 2**64: 0 where int64 arithmetic (np.prod) wraps around
    "huge dims": (lambda b: b[:4] + b"".join(d.to_bytes(4, "big") for d in (2**22, 2**21, 2**21)), "is truncated"),
    "no images": (lambda b: b[:4] + bytes(4) + b[8:16], r"holds no items \(shape \(0, 28, 28\)\)"),
    "extra bytes": (lambda b: b + bytes(5), r"is truncated or corrupt: \d+ bytes for shape \(20, 28, 28\)"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_corrupt_files_are_named(tmp_path: Path, damage: str) -> None:
    path = tiny_raw(tmp_path) / "train-images-idx3-ubyte"
    edit, problem = DAMAGE[damage]
    path.write_bytes(edit(path.read_bytes()))
    with pytest.raises(DataError, match=f"train-images-idx3-ubyte {problem}.*delete it to re-download") as e:
        load_split(tmp_path, "train")
    one_line(e)


@pytest.mark.parametrize("label", [10, 11, 255])  # 10: the first value past the classes
def test_label_out_of_range_names_value_and_range(tmp_path: Path, label: int) -> None:
    y = np.arange(20) % 10
    y[7] = label
    write_idx(tiny_raw(tmp_path) / "train-labels-idx1-ubyte", y)
    with pytest.raises(DataError, match=rf"training label {label} at index 7; labels must be integers in 0\.\.9") as e:
        mnist_data(tmp_path, val_size=5, batch_size=5).setup()
    one_line(e)
    write_idx(tiny_raw(tmp_path) / "train-labels-idx1-ubyte", np.arange(20) % 10)  # 9 is fine
    dm = mnist_data(tmp_path, val_size=5, batch_size=5)
    dm.setup()
    assert dm.splits["train"][1].max() == 9


@pytest.mark.parametrize(("h", "w"), [(20, 20), (14, 56), (28, 27)])  # 14x56: MNIST's pixel count, not its shape
def test_images_not_28x28(tmp_path: Path, h: int, w: int) -> None:
    write_idx(tiny_raw(tmp_path) / "train-images-idx3-ubyte", np.zeros((20, h, w)))  # valid header, 20 labels
    with pytest.raises(DataError, match=rf"training images of shape 1x{h}x{w}, but data.image_shape is \[1, 28, 28\]"
                       ) as e:  # fmt: skip
        mnist_data(tmp_path, val_size=5, batch_size=5).setup()
    one_line(e)


def test_image_and_label_counts_must_match(tmp_path: Path) -> None:
    write_idx(tiny_raw(tmp_path) / "train-labels-idx1-ubyte", np.zeros(19))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte has 20 images but .*idx1-ubyte has 19 labels"):
        load_split(tmp_path, "train")


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = (tiny_raw(tmp_path) / "train-labels-idx1-ubyte").resolve()
    path.chmod(0)
    if os.access(path, os.R_OK):  # root ignores file modes: refuse the open as the kernel would for others
        real_open = Path.open

        def deny(self: Path, *args, **kwargs):
            if self == path:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
            return real_open(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", deny)
    with pytest.raises(DataError, match=r"cannot read .*train-labels-idx1-ubyte: Permission denied; ") as e:
        load_split(tmp_path, "train")
    one_line(e)


def test_directory_where_a_file_belongs(tmp_path: Path) -> None:
    path = tiny_raw(tmp_path) / "train-images-idx3-ubyte"
    path.unlink()
    path.mkdir()
    for load in (lambda: ensure_mnist(tmp_path, download=False), lambda: load_split(tmp_path, "train")):
        with pytest.raises(DataError, match=r"train-images-idx3-ubyte is a directory where an MNIST data file") as e:
            load()
        one_line(e)


def gzip_all(raw: Path) -> dict[str, bytes]:
    """Leave only torchvision's .gz archives in raw, as a download leaves them; -> the original contents."""
    original = {}
    for name in (n for pair in FILES.values() for n in pair):
        original[name] = (raw / name).read_bytes()
        (raw / f"{name}.gz").write_bytes(gzip.compress(original[name]))
        (raw / name).unlink()
    return original


def test_gz_archives_are_decompressed(tmp_path: Path) -> None:
    raw = tiny_raw(tmp_path)
    original = gzip_all(raw)
    ensure_mnist(tmp_path, download=False)
    assert {n: (raw / n).read_bytes() for n in original} == original
    assert sorted(p.name for p in raw.iterdir()) == sorted([*original, *(f"{n}.gz" for n in original)])  # no temps
    assert len(load_split(tmp_path, "train")[1]) == 20


@pytest.mark.parametrize("damage", ["not gzip", "truncated", "empty"])
def test_corrupt_gz_is_named_and_leaves_nothing_half_written(tmp_path: Path, damage: str) -> None:
    raw = tiny_raw(tmp_path)
    gzip_all(raw)
    gz = raw / "train-images-idx3-ubyte.gz"
    data = gz.read_bytes()
    gz.write_bytes({"not gzip": b"garbage!" * 10, "truncated": data[: len(data) // 2], "empty": b""}[damage])
    with pytest.raises(DataError, match=r"cannot decompress .*train-images-idx3-ubyte\.gz: .*delete it") as e:
        ensure_mnist(tmp_path, download=False)
    one_line(e)
    names = {p.name for p in raw.iterdir()}
    assert "train-images-idx3-ubyte" not in names and not [n for n in names if n.endswith(".tmp")]


@pytest.mark.parametrize(("choice", "folder"), [("fashion_mnist", "FashionMNIST"), ("kmnist", "KMNIST")])
def test_the_other_idx_data_sets(make_cfg, tmp_path: Path, choice: str, folder: str) -> None:
    from tests.conftest import build, run

    root = make_tiny_mnist(tmp_path / "data", seed=3, dataset=folder)
    cfg = make_cfg(f"data={choice}", f"data.data_dir={root}", out=tmp_path / "run")
    dm = build(cfg)[0]
    dm.setup()
    assert dm.load["dataset"] == folder and dm.splits["train"][0].shape == (500, 1, 28, 28)
    assert 0.1 < run(cfg)["test/acc"] < 0.95  # trains on that folder's files
    with pytest.raises(DataError, match=rf"{folder} not found in .*{folder}/raw.*data\.data_dir="):
        ensure_mnist(tmp_path / "empty", download=False, dataset=folder)
    assert not (tmp_path / "data" / "MNIST").exists()  # nothing read or written under MNIST/


def test_cifar10_batches_load_as_tensors_of_their_shape(tiny_cifar10: Path) -> None:
    from initlab.data.cifar10 import load

    x, y, xt, yt = load(tiny_cifar10, download=False)
    assert x.shape == (300, 3, 32, 32) and x.dtype == torch.uint8 and y.shape == (300,) and y.dtype == torch.int64
    assert xt.shape == (100, 3, 32, 32) and yt.shape == (100,) and set(y.tolist()) <= set(range(10))
    raw = pickle.loads((tiny_cifar10 / "cifar-10-batches-py" / "data_batch_1").read_bytes(), encoding="bytes")
    assert torch.equal(x[:60].reshape(60, -1), torch.from_numpy(raw[b"data"]))  # rows in CHW order, as written
    assert y[:60].tolist() == raw[b"labels"]


class Exploit:
    """A pickle payload: unpickling calls os.system, as `pickle.load` of a crafted data file would."""

    def __reduce__(self) -> tuple:
        return (os.system, ("touch {victim}",))


class NumpyExploit:
    """A payload naming a numpy function that writes a file: numpy is allowed only for building arrays."""

    def __init__(self, victim: Path) -> None:
        self.victim = victim

    def __reduce__(self) -> tuple:
        return (np.save, (str(self.victim), np.zeros(1)))


@pytest.mark.parametrize("payload", ["code", "numpy code", "not a pickle", "a list", "wrong width"])
def test_a_cifar_file_is_data_and_a_bad_one_is_one_line(tmp_path: Path, payload: str) -> None:
    from initlab.data.cifar10 import load
    from tests.conftest import make_tiny_cifar10, write_cifar_batch

    root = make_tiny_cifar10(tmp_path / "c", n_per_batch=10, n_test=10)
    bad = root / "cifar-10-batches-py" / "data_batch_3"
    victim = tmp_path / "pwned"
    if payload == "code":
        bad.write_bytes(pickle.dumps({b"data": Exploit(), b"labels": [0]}, protocol=2).replace(
            b"{victim}", str(victim).encode()))  # fmt: skip
    elif payload == "numpy code":
        bad.write_bytes(pickle.dumps({b"data": NumpyExploit(victim), b"labels": [0]}, protocol=2))
    elif payload == "not a pickle":
        bad.write_bytes(b"garbage" * 100)
    elif payload == "a list":
        bad.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    else:
        write_cifar_batch(bad, np.zeros((10, 3, 16, 16), dtype=np.uint8), [0] * 10)
    with pytest.raises(DataError, match=r"data_batch_3 (is not a CIFAR-10 batch file|holds data of shape)") as e:
        load(root, download=False)
    one_line(e)
    assert not victim.exists() and not victim.with_suffix(".npy").exists()  # np.save appends .npy


def test_missing_cifar10_without_download_names_the_folder(tmp_path: Path) -> None:
    from initlab.data.cifar10 import load

    with pytest.raises(DataError, match=r"CIFAR-10 not found in .*cifar-10-batches-py \(missing data_batch_1.*"
                                        r"download=false; point data.data_dir="):  # fmt: skip
        load(tmp_path, download=False)


def memo_bomb(levels: int, width: int, top: int) -> list:
    """A nested list of top x width^(levels - 1) ints that holds only `levels` lists in memory: each level is
    `width` references to the one below, so pickle writes it as a few KB of memo references (BINGET)."""
    nest: list = [7] * width
    for _ in range(levels - 2):
        nest = [nest] * width
    return [nest] * top


def _read_batch_in_a_child(path: Path) -> tuple[float, str]:
    """(seconds read_batch took to refuse `path`, its line), in a child process: a reader that walks a bomb
    runs for hours in C, where no signal but SIGKILL (subprocess.run's timeout) stops it."""
    code = ("import sys, time; from pathlib import Path; from initlab.data.cifar10 import read_batch\n"
            "from initlab.errors import DataError\nt = time.perf_counter()\ntry:\n    read_batch(Path(sys.argv[1]))\n"
            "except DataError as e:\n    print(f'{time.perf_counter() - t:.3f} {e}')")  # fmt: skip
    child = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=30)
    seconds, _, line = child.stdout.strip().partition(" ")
    assert child.returncode == 0 and "\n" not in line, child.stdout + child.stderr
    return float(seconds), line


@pytest.mark.slow  # a child process
@pytest.mark.parametrize("where", ["data", "labels"])
def test_a_cifar_memo_bomb_is_refused_before_any_conversion(tmp_path: Path, where: str) -> None:
    """8 KB of pickle standing for a nested list of 1e12 ints (1000^4): refused by its type at once, not walked."""
    path = tmp_path / "test_batch"
    if where == "data":
        batch = {b"data": memo_bomb(4, 1000, 1000), b"labels": [0] * 1000}
    else:  # valid pixels; labels of the right count, each a list of 1e9 ints
        batch = {b"data": np.zeros((10, 3072), dtype=np.uint8), b"labels": memo_bomb(4, 1000, 10)}
    path.write_bytes(pickle.dumps(batch, protocol=2))
    assert path.stat().st_size < 40_000
    seconds, line = _read_batch_in_a_child(path)
    expected = "its b'data' is a list;" if where == "data" else r"its b'labels'\[0\] is a list;"
    assert re.search(rf"test_batch is not a CIFAR-10 batch file: {expected}", line), line
    assert seconds < 0.5, line


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda b: {**b, b"data": b[b"data"].astype(np.float64) + 300.7},
         r"its b'data' is an array of float64; .*uint8"),
        (lambda b: {**b, b"data": b[b"data"].astype(object)}, r"its b'data' is an array of object; .*uint8"),
        (lambda b: {**b, b"data": b[b"data"].astype(np.int64)}, r"its b'data' is an array of int64; .*uint8"),
        (lambda b: {**b, b"labels": np.array(b[b"labels"], dtype=object)}, r"its b'labels' is an array of object"),
        (lambda b: {**b, b"labels": [0.0] * 10}, r"its b'labels'\[0\] is 0\.0; .*list of ints"),
        (lambda b: {**b, b"labels": [0] * 9 + [True]}, r"its b'labels'\[9\] is True; .*list of ints"),
        (lambda b: {**b, b"labels": tuple(b[b"labels"])}, r"its b'labels' is a tuple; .*list of ints"),
        (lambda b: {b"data": b[b"data"]}, r"it has no b'labels' entry"),
    ],
    ids=["float pixels", "object pixels", "int64 pixels", "object labels", "float labels", "bool label", "tuple",
         "no labels"],
)  # fmt: skip
def test_a_cifar_batch_of_the_wrong_types_is_one_line(tmp_path: Path, edit, problem: str) -> None:
    from initlab.data.cifar10 import read_batch

    good = {b"data": np.full((10, 3072), 200, dtype=np.uint8), b"labels": [int(v) for v in np.arange(10) % 10]}
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(edit(good), protocol=2))
    with pytest.raises(DataError, match=rf"data_batch_1 is not a CIFAR-10 batch file: {problem}.*data.download=true"
                       ) as e:  # fmt: skip
        read_batch(path)
    one_line(e)
    path.write_bytes(pickle.dumps({**good, b"labels": np.arange(10) % 10}, protocol=2))  # an int array is fine too
    x, y = read_batch(path)
    assert x.shape == (10, 3, 32, 32) and x.dtype == np.uint8 and int(x.max()) == 200 and y.tolist() == list(range(10))


def _blobs_data(target: str) -> "ImageData":  # noqa: F821
    from initlab.data.datamodule import ImageData

    return ImageData({"_target_": target}, [2, 8, 8], 3, batch_size=50, eval_batch_size=100, val_size=100)


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("load_blobs_int64", r"gave training images of dtype int64 \(values 0\.\.1000\); images must be uint8 "
                             r"\(pixels 0\.\.255\) or float"),
        ("load_blobs_nan", r"gave test image 7 with a pixel of nan; float images must be finite"),
    ],
    ids=["int64", "nan"],
)  # fmt: skip
def test_a_users_images_must_be_uint8_or_finite_float(target: str, problem: str) -> None:
    with pytest.raises(DataError, match=rf"^data.load \(tests.user_models.{target}\) {problem}$") as e:
        _blobs_data(f"tests.user_models.{target}").setup()
    one_line(e)
    dm = _blobs_data("tests.user_models.load_blobs")  # the same images as float 0..1: fine
    dm.setup()
    assert dm.splits["train"][0].dtype == torch.float32


def test_a_users_load_that_raises_is_one_line_naming_it() -> None:
    """An OSError from the user's load is theirs, not the run dir's: the line names data.load and what it raised."""
    dm = _blobs_data("tests.user_models.load_missing")
    for call in (dm.prepare_data, dm.setup):
        with pytest.raises(DataError, match=r"^data.load=tests.user_models.load_missing failed: FileNotFoundError: "
                           r"no blobs.npz in data$") as e:  # fmt: skip
            call()
        one_line(e)
        assert not isinstance(e.value, OSError) and isinstance(e.value.__cause__, FileNotFoundError)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda t: (t[0], t[1][:, None], t[2], t[3]), "gave training labels of shape [6, 1]; labels are one integer"),
        (lambda t: (t[0].to("meta"), *t[1:]), "gave tensors on meta; return them on the CPU"),
        (lambda t: (t[0], t[1].bool(), t[2], t[3]), "gave training labels of dtype bool; labels must be"),
    ],
    ids=["2-D labels", "meta images", "bool labels"],
)
def test_a_loads_tensors_are_checked_before_any_use(change, said: str) -> None:
    from initlab.data.datamodule import check_tensors

    good = (torch.zeros(6, 1, 4, 4, dtype=torch.uint8), torch.arange(6) % 2, torch.zeros(2, 1, 4, 4), torch.zeros(2))
    check_tensors((*good[:3], good[3].long()), "data.load (mine)", (1, 4, 4), 2)  # fine as they are
    with pytest.raises(DataError) as e:
        check_tensors(change((*good[:3], good[3].long())), "data.load (mine)", (1, 4, 4), 2)
    assert str(e.value).startswith(f"data.load (mine) {said}"), str(e.value)

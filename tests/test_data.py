"""The IDX reader, the in-memory batches and the missing/corrupt-data errors."""

from pathlib import Path

import pytest
import torch

from initlab.data import InMemoryBatches, MNISTDataModule, ensure_mnist, load_split, to_unit
from initlab.errors import DataError
from tests.conftest import make_tiny_mnist


def test_load_split_shapes_and_range(tiny_mnist: Path) -> None:
    x, y = load_split(tiny_mnist, "train")
    assert x.shape == (600, 784) and x.dtype == torch.uint8 and y.shape == (600,)
    x = to_unit(x)
    assert x.dtype == torch.float32
    assert x.min() >= 0.0 and x.max() == 1.0 and set(y.tolist()) <= set(range(10))


def test_datamodule_splits_are_seeded_and_disjoint(tiny_mnist: Path) -> None:
    a, b = (MNISTDataModule(str(tiny_mnist), val_size=100, seed=1) for _ in range(2))
    a.setup(), b.setup()
    assert torch.equal(a.splits["val"][0], b.splits["val"][0])
    assert {k: len(v[1]) for k, v in a.splits.items()} == {"train": 500, "val": 100, "test": 200}


def test_batches_reshuffle_each_epoch_and_cover_everything() -> None:
    x, y = torch.arange(10.0).unsqueeze(1), torch.arange(10)
    loader = InMemoryBatches(x, y, batch_size=4, shuffle=True, seed=0)
    assert len(loader) == 3
    e1 = torch.cat([b[1] for b in loader])
    loader.sampler.set_epoch(1)  # as Lightning does before each epoch
    e2 = torch.cat([b[1] for b in loader])
    assert sorted(e1.tolist()) == list(range(10)) and not torch.equal(e1, e2)
    again = InMemoryBatches(x, y, batch_size=4, shuffle=True, seed=0)
    assert torch.equal(torch.cat([b[1] for b in again]), e1)  # same seed, same order


def test_state_dict_resumes_mid_epoch() -> None:
    x, y = torch.arange(10.0).unsqueeze(1), torch.arange(10)
    full = InMemoryBatches(x, y, batch_size=3, shuffle=True, seed=5)
    full.set_epoch(2)
    batches = [b[1] for b in full]
    it = iter(full)
    next(it), next(it)
    state = full.state_dict()
    resumed = InMemoryBatches(x, y, batch_size=3, shuffle=True, seed=5)
    resumed.load_state_dict(state)
    assert state == {"epoch": 2, "served": 2}
    assert [b[1].tolist() for b in resumed] == [b.tolist() for b in batches[2:]]
    assert len([*resumed]) == 4  # the next epoch is whole again


def test_ranks_split_the_data() -> None:
    x, y = torch.zeros(10, 1), torch.arange(10)
    seen = [torch.cat([b[1] for b in InMemoryBatches(x, y, 3, rank=r, world_size=2)]) for r in (0, 1)]
    assert sorted(torch.cat(seen).tolist()) == list(range(10))


def test_missing_data_without_download_names_path_and_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"MNIST not found in .*MNIST/raw.*data\.data_dir="):
        ensure_mnist(tmp_path / "nowhere", download=False)


def test_failed_download_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(DataError, match=r"download failed: RuntimeError.*data\.data_dir="):
        ensure_mnist(tmp_path, download=True)


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(DataError, match="is a file"):
        ensure_mnist(f)


@pytest.mark.parametrize("damage", ["magic", "truncate"])
def test_corrupt_files_are_named(tmp_path: Path, damage: str) -> None:
    root = make_tiny_mnist(tmp_path, n_train=20, n_test=10)
    path = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    data = bytearray(path.read_bytes())
    path.write_bytes(b"\0\0\0\0" + data[4:] if damage == "magic" else data[:-5])
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        load_split(root, "train")

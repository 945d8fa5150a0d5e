"""What a user brings from their own package: an activation, a model, an init and a data set the template has
never heard of, each named by one YAML file in tests/user_conf/ (the user's own config dir)."""

import math
import os
import signal

import torch
from torch import nn


class ScaledTanh(nn.Module):
    """scale * tanh(z / scale): tanh's shape, `scale` times its range."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.tanh(z / self.scale)


class TinyConvNet(nn.Module):
    """A model only the tests know: conv -> act -> global pool -> linear, built from the template's act factory."""

    def __init__(self, act, channels: int = 4, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, channels, kernel_size=3, stride=2), act())
        self.head = nn.Sequential(nn.Linear(channels * 13 * 13, 16), act(), nn.Linear(16, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))  # [B, 1, 28, 28] -> [B, C, 13, 13] -> [B, classes]


class DropoutMLP(nn.Sequential):
    """784 -> 100 -> dropout -> 10: a model whose training draws random numbers at every step."""

    def __init__(self, act, p: float = 0.3, num_classes: int = 10) -> None:
        super().__init__(nn.Flatten(), nn.Linear(784, 100), act(), nn.Dropout(p), nn.Linear(100, num_classes))


def fixup_normal_(tensor: torch.Tensor, name: str, index: int, depth: int) -> torch.Tensor:
    """Fixup-style (Zhang et al. 2019): N(0, 1/fan_in) scaled by depth^(-1/2) for hidden layers; the last
    layer (the logits) starts at zero. Asks for its layer's name, index and the net's depth."""
    with torch.no_grad():
        if index == depth - 1:
            return tensor.zero_()
        std = math.sqrt(1.0 / tensor.shape[1]) * depth**-0.5
        return tensor.normal_(0.0, std)


def raising_init_(tensor: torch.Tensor) -> torch.Tensor:
    """A user's init with a bug: it looks up a key that is not there."""
    return {}["gain"]


def killed_init_(tensor: torch.Tensor) -> torch.Tensor:
    """An init whose process is killed (the OOM killer, say): in a joblib sweep, its worker dies under the launcher."""
    os.kill(os.getpid(), signal.SIGKILL)
    return tensor


def load_blobs(n_train: int = 400, n_test: int = 100, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """A user's own data set: 2x8x8 'images' of 3 classes, each class a noisy blob in its own place (no files)."""
    g = torch.Generator().manual_seed(seed)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, 3, (n,), generator=g)
        x = torch.rand(n, 2, 8, 8, generator=g)
        for k in range(3):
            x[y == k, k % 2, 2 * k : 2 * k + 3, 2 * k : 2 * k + 3] += 0.4  # a faint blob over the noise
        return x.clamp(0, 1), y

    return (*split(n_train), *split(n_test))


def load_blobs_int64() -> tuple[torch.Tensor, ...]:
    """A user's load with a bug: the blobs as int64 'pixels' of 0..1000, neither uint8 (0..255) nor float."""
    x, y, xt, yt = load_blobs()
    return (x * 1000).long(), y, (xt * 1000).long(), yt


def load_blobs_nan() -> tuple[torch.Tensor, ...]:
    """A user's load with a bug: one test image holds a NaN pixel."""
    x, y, xt, yt = load_blobs()
    xt[7, 1, 2, 3] = float("nan")
    return x, y, xt, yt


def load_missing(data_dir: str) -> tuple[torch.Tensor, ...]:
    """A user's load whose files are not there: an OSError without a file name, as a user's code raises it."""
    raise FileNotFoundError(f"no blobs.npz in {data_dir}")


class NanAct(nn.Module):
    """A user's activation with a bug: NaN everywhere."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z * float("nan")


class HalvingAct(nn.Module):
    """A user's 'activation' that is not elementwise: it drops the last half of the features."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z[..., : z.shape[-1] // 2]


class CenteredTanh(nn.Module):
    """A user's 'activation' of the same shape that is still not elementwise: tanh(z - mean(z))."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z - z.mean())


class ExpAct(nn.Module):
    """exp(z): finite near 0, inf past z = 709.8 in float64, where the theory's wide Gaussians reach."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.exp(z)


class TwoOutputs(nn.Module):
    """A user's model that returns (logits, features), as some papers' code does: not the logits the loss needs."""

    def __init__(self, act, num_classes: int = 10) -> None:
        super().__init__()
        self.fc, self.act, self.out = nn.Linear(784, 32), act(), nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.act(self.fc(x.flatten(1)))
        return self.out(features), features


class DetachedOutput(TwoOutputs):
    """A user's model that detaches its logits (a stray .detach() or .item()): no gradient reaches its weights."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x)[0].detach()


class IntegerLogits(TwoOutputs):
    """A user's model that rounds its logits to integers: the loss's log-softmax needs floats."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x)[0].long()


class ExitingNet(TwoOutputs):
    """A user's model that calls sys.exit(0) a few steps into training (a stray exit in a debugging branch)."""

    calls = 0  # this net's forward calls

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        self.calls += 1
        if self.calls > 4:  # after the build's check and a few training steps
            raise SystemExit(0)
        return super().forward(x)[0]


class NoParameters(nn.Module):
    """A user's 'model' with nothing to train: the activation of the first pixels, one per class."""

    def __init__(self, act, num_classes: int = 10) -> None:
        super().__init__()
        self.act, self.num_classes = act(), num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x.flatten(1)[:, : self.num_classes])


class RecurrentNet(nn.Module):
    """An LSTM over the image's rows, a batch norm, a linear head and a learnt temperature of its own: only the
    Linear is an init's to fill; the others keep torch's init and are named."""

    def __init__(self, act, num_classes: int = 10, hidden: int = 16) -> None:
        super().__init__()
        self.rnn = nn.LSTM(28, hidden, batch_first=True)
        self.norm, self.act, self.out = nn.BatchNorm1d(hidden), act(), nn.Linear(hidden, num_classes)
        self.temperature = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, _ = self.rnn(x[:, 0])  # [B, 28 rows, 28 pixels] -> [B, 28, hidden]
        return self.out(self.act(self.norm(rows[:, -1]))) / self.temperature


def load_blobs_grad() -> tuple[torch.Tensor, ...]:
    """A user's load with a bug: training images that require grad (a leaf of autograd's graph)."""
    x, y, xt, yt = load_blobs()
    return x.requires_grad_(), y, xt, yt


def load_exit() -> tuple[torch.Tensor, ...]:
    """A user's load that calls sys.exit(3) (a script's habit) instead of raising."""
    raise SystemExit(3)


def load_ctrl_c() -> tuple[torch.Tensor, ...]:
    """A user's load that raises KeyboardInterrupt itself (no signal was sent)."""
    raise KeyboardInterrupt


def exit_calibration(net: nn.Module, x: torch.Tensor) -> None:
    """A user's data-dependent init that calls sys.exit(0) on the first batch instead of returning."""
    raise SystemExit(0)


class DiskFullAtTest:
    """A callback whose disk fills up as the test metrics are logged: Lightning wraps the OSError in a ValueError."""

    def __new__(cls) -> object:
        from lightning.pytorch.callbacks import Callback

        class _DiskFull(Callback):
            def on_test_start(self, trainer: object, pl_module: object) -> None:
                try:
                    raise OSError(28, "No space left on device", "/full/events.out.tfevents.x")
                except OSError as e:
                    raise ValueError("you tried to log -1 which is currently not supported") from e

        return _DiskFull()


def returned_init(tensor: torch.Tensor, value: float = 0.5) -> torch.Tensor:
    """A weight function that returns its values as a new tensor instead of filling the one it was given."""
    return torch.full_like(tensor, value)


def flat_init(tensor: torch.Tensor) -> torch.Tensor:
    """A weight function that returns a tensor of the wrong shape (flattened)."""
    return torch.zeros(tensor.numel())


def replacing_calibration(net: nn.Module, x: torch.Tensor) -> None:
    """A calibration that swaps a layer for a new one instead of rescaling its weights in place."""
    name, layer = next((n, m) for n, m in net.named_modules() if isinstance(m, nn.Linear))
    setattr(net, name.split(".")[-1], nn.Linear(layer.in_features, layer.out_features))


class ChattyTanh(nn.Tanh):
    """A user's activation that prints on every call (debugging left in)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        print("forward called")
        return super().forward(x)


def numpy_init(tensor: torch.Tensor) -> object:
    """A weight function that returns a numpy array (not a tensor) and leaves the tensor alone."""
    import numpy as np

    return np.full(tuple(tensor.shape), 0.5, dtype=np.float32)


class HardStep(nn.Module):
    """A step activation, (x > 0).float(): its output carries no gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > 0).float() if x.dtype == torch.float32 else (x > 0).to(x.dtype)


class Linear(nn.Module):
    """A user's identity activation that happens to be named Linear (no weight: it is no nn.Linear)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def double_calibration(net: nn.Module, x: torch.Tensor) -> None:
    """A calibration that turns a weight into float64 in place (the same Parameter object)."""
    layer = next(m for m in net.modules() if isinstance(m, nn.Linear))
    layer.weight.data = layer.weight.data.double()


def freezing_calibration(net: nn.Module, x: torch.Tensor) -> None:
    """A calibration that freezes every parameter: backward then has nothing to differentiate."""
    for p in net.parameters():
        p.requires_grad_(False)


class Cubic(nn.Module):
    """phi(z) = z^3: smooth, superlinear; its variance map 15 sigma_w2 q^3 + sigma_b2 has two fixed points."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x**3


class FailLate(nn.Tanh):
    """A user's activation whose own code fails mid-training, with a message of two lines."""

    calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and torch.is_grad_enabled():  # training steps (not probes, diagnostics or evaluation)
            FailLate.calls += 1
        if self.training and FailLate.calls > 5:
            raise RuntimeError("my activation broke\nsecond line of its message")
        return super().forward(x)


class FailInDiagnostics(nn.Tanh):
    """A user's activation that fails where the diagnostics run it (training mode, no gradient: the probe batch)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not torch.is_grad_enabled() and x.shape[0] > 2:  # not the build's 2-image check
            raise ValueError("no gradient here")
        return super().forward(x)

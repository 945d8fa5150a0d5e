"""Per-layer diagnostics of any model, the "why" behind a results table, logged to TensorBoard as `diag/...`.

At step 0 (before the first update: where the init story is told) and every `every_n_steps` after, the
model runs a fixed probe batch (the first training batch) with forward hooks on every activation module
(an instance of the act config's class), named by the model's own module names:
  diag/<act module>/preact_mean, preact_std, preact_var   its input z
  diag/<act module>/act_mean, act_std                     its output a
  one family statistic, by the module's own shape (initlab.activations.profile):
  diag/<act module>/saturated_frac    bounded (sigmoid, tanh): a within 1 % of a bound
  diag/<act module>/dead_frac         zero slope for z < 0 (relu): units (channels, for convs) whose z is
                                      never positive over the probe: stuck on the flat side
  diag/<act module>/flat_frac         the rest (leaky_relu, elu, selu, gelu, silu, ...): z where |act'(z)| < 0.01
  diag/<act module>/preact_var_theory step 0, where mean-field theory applies: its q^l (docs/theory.md)
and for every weight-bearing layer (Linear, Conv): weight_std, weight_std_init (the init's stated variance)
and grad_norm (the L2 norm of dLoss/dW on that step's batch). Histograms of weights and activations every
`histogram_every_n_steps` (TensorBoard only). `every_n_steps: 0` switches it all off.
"""

import logging
from collections.abc import Callable

import lightning.pytorch as pl
import torch
from hydra.utils import get_class
from torch import nn

from initlab.activations import family_stats, phi, profile
from initlab.errors import CheckpointError, InitLabError
from initlab.inits import bias_variance, expected_variance, fans, sigma_w2, weighted_layers

log = logging.getLogger(__name__)


def activations(net: nn.Module, act_cls: type[nn.Module]) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in net.named_modules() if isinstance(m, act_cls)]


@torch.no_grad()
def activation_stats(net: nn.Module, x: torch.Tensor, act_cls: type[nn.Module]) -> tuple[dict, dict]:
    """Run x through net with hooks on its activation modules; -> (stats, {module name: activation})."""
    seen: dict[str, tuple[nn.Module, torch.Tensor, torch.Tensor]] = {}

    def hook(name: str) -> Callable:
        def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:  # None: output unchanged
            seen.setdefault(name, (module, inputs[0], output))  # its first call, if a module is reused

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in activations(net, act_cls)]
    try:
        net(x)
    finally:
        for h in handles:
            h.remove()
    names, values = [], []
    for name, (act, z, a) in seen.items():
        parts = {"preact_mean": z.mean(), "preact_std": z.std(), "preact_var": z.var(), "act_mean": a.mean(),
                 "act_std": a.std(), **family_stats(profile(act), act, z, a)}  # fmt: skip
        names += [f"{name}/{k}" for k in parts]
        values += list(parts.values())
    flat = torch.stack(values).tolist() if values else []  # one sync, not one per stat
    return dict(zip(names, flat, strict=True)), {n: a for n, (_, _, a) in seen.items()}


@torch.no_grad()
def weight_stats(net: nn.Module, init: dict) -> dict[str, float]:
    """Each weight-bearing layer's weight std, beside the std its init's stated variance predicts."""
    out = {}
    for name, m in weighted_layers(net):
        out[f"{name}/weight_std"] = m.weight.std().item()
        var = expected_variance(init, *fans(m.weight))
        if var is not None:  # None: an init without a closed form (lsuv): nothing to compare against
            out[f"{name}/weight_std_init"] = var**0.5
    return out


def predicted_preact_var(net: nn.Module, init: dict, x: torch.Tensor, act_cls: type[nn.Module]) -> dict:
    """Mean-field q^l at each activation module of an MLP-like net (Linear -> act chains) from the probe's
    q0 = mean(x^2), for an init whose sigma_w2 and sigma_b2 are known and in the theory's range; else {}.
    Any activation module will do: phi comes from the module itself (initlab.activations.phi)."""
    from initlab import theory

    acts = activations(net, act_cls)
    s_w2, s_b2 = sigma_w2(init), bias_variance(init)
    mlp = all(type(m) is nn.Linear for _, m in weighted_layers(net))  # the theory's net: Linear -> act chains
    if not acts or not mlp or s_w2 is None or s_b2 is None or not theory.in_range(s_w2, s_b2):
        return {}
    qs = theory.layer_variances(phi(acts[0][1]), s_w2, s_b2, float(x.pow(2).mean()), len(acts))
    return {f"{n}/preact_var_theory": float(q) for (n, _), q in zip(acts, qs, strict=True)}


def grad_norms(net: nn.Module) -> dict[str, float]:
    return {f"{n}/grad_norm": m.weight.grad.norm().item() for n, m in weighted_layers(net) if m.weight.grad is not None}


MAX_PROBE = 2**16  # images in the probe batch (one training batch) a checkpoint may bring


class LayerDiagnostics(pl.Callback):
    """The statistics above, logged to every logger; those of step 0 are also kept in `step0` (the run's
    record carries them, so reports need no event files)."""

    def __init__(self, every_n_steps: int = 100, histogram_every_n_steps: int = 500) -> None:
        self.every, self.hist_every = every_n_steps, histogram_every_n_steps
        self.probe: torch.Tensor | None = None
        self.step0: dict[str, float] = {}  # {"act1/act_std": ..., "fc1/grad_norm": ...} before any update

    def state_dict(self) -> dict:
        return {"probe": self.probe, "step0": self.step0}  # in checkpoints: a resumed run probes the same batch

    def load_state_dict(self, state_dict: dict) -> None:
        step0 = state_dict.get("step0", {})
        if not isinstance(step0, dict) or not all(isinstance(v, int | float) for v in step0.values()):
            raise CheckpointError(f"the checkpoint's diagnostics state is malformed (step0 is {str(step0)[:40]!r}, "
                                  "not a dict of numbers)")  # fmt: skip
        probe = state_dict.get("probe")
        ok = probe is None or (isinstance(probe, torch.Tensor) and probe.is_floating_point() and probe.dim() >= 2
                               and 0 < len(probe) <= MAX_PROBE and bool(torch.isfinite(probe).all()))  # fmt: skip
        if not ok:
            shown = list(probe.shape) if isinstance(probe, torch.Tensor) else str(probe)[:40]
            raise CheckpointError(f"the checkpoint's diagnostics state is malformed (probe is {shown!r}, not a batch "
                                  f"of at most {MAX_PROBE} finite float images)")  # fmt: skip
        self.probe, self.step0 = probe, dict(step0)

    def _due(self, step: int, every: int) -> bool:
        return every > 0 and step % every == 0

    def _log(self, trainer: pl.Trainer, stats: dict[str, float]) -> None:
        if trainer.global_step == 0:
            self.step0.update(stats)
        for lg in trainer.loggers:
            lg.log_metrics({f"diag/{k}": v for k, v in stats.items()}, step=trainer.global_step)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if not self._due(step, self.every):
            return
        if self.probe is None:
            self.probe = batch[0].detach().clone()  # fixed from here on, so curves compare like with like
        if self.probe.shape[1:] != batch[0].shape[1:] or self.probe.dtype != batch[0].dtype:  # a checkpoint's
            raise CheckpointError(f"the checkpoint's diagnostics probe is {self.probe.dtype} images of shape "
                                  f"{list(self.probe.shape[1:])}; the data's are {batch[0].dtype}, "
                                  f"{list(batch[0].shape[1:])}")  # fmt: skip
        net, init, act_cls = pl_module.net, pl_module.hparams.init, get_class(pl_module.hparams.act["_target_"])
        try:
            stats, acts = activation_stats(net, self.probe, act_cls)
            theory = predicted_preact_var(net, init, self.probe, act_cls) if step == 0 else {}
        except InitLabError:
            raise
        except Exception as e:  # the model's or activation's own code, run on the probe batch
            raise pl_module.failed("the diagnostics", e) from e
        self._log(trainer, stats | weight_stats(net, init) | theory)
        if self._due(step, self.hist_every):
            for lg in trainer.loggers:
                if isinstance(lg, pl.loggers.TensorBoardLogger):
                    # 64 even bins: TensorBoard's default ~1500 log-spaced ones cost ~10 ms a histogram here
                    for tag, values in [(f"{n}/weight", m.weight) for n, m in weighted_layers(net)] + [
                        (f"{n}/activation", a) for n, a in acts.items()
                    ]:
                        if not torch.isfinite(values).all():  # inf/nan have no bins: the run is judged diverged
                            continue
                        try:
                            lg.experiment.add_histogram(f"diag/{tag}", values, step, bins=64)
                        except ValueError:  # numpy: "Too many bins for data range", a spread float64 cannot split
                            log.debug(
                                "diag/%s at step %d: no histogram (values %s to %s)",
                                tag,
                                step,
                                values.min().item(),
                                values.max().item(),
                            )  # softplus, beta 1e-30: all 6.9e29

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        if self._due(trainer.global_step, self.every):
            self._log(trainer, grad_norms(pl_module.net))

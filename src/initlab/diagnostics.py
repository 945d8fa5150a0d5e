"""Per-layer diagnostics, the "why" behind a results table, logged to TensorBoard as `diag/...`.

At step 0 (before the first update: where the init story is told) and every `every_n_steps` after,
for each hidden layer i of the MLP on a fixed probe batch (the first training batch):
  diag/layer{i}/preact_mean, preact_std   pre-activation z = W h + b
  diag/layer{i}/act_mean, act_std         activation a = act(z)
  diag/layer{i}/saturated_frac            tanh: |a| > 0.99; sigmoid: a < 0.01 or a > 0.99
  diag/layer{i}/dead_frac                 relu: units that are 0 for the whole probe batch
and for every Linear (layer{i}, then `out`): weight_std, weight_std_init (the init's theory) and grad_norm
(the L2 norm of dLoss/dW on that step's batch). Histograms of weights and activations every
`histogram_every_n_steps` (TensorBoard only). `every_n_steps: 0` switches it all off.
"""

import logging
from collections.abc import Callable

import lightning.pytorch as pl
import torch
from torch import nn

from initlab.inits import bias_variance, expected_variance, fans, sigma_w2

log = logging.getLogger(__name__)
SATURATED: dict[type[nn.Module], Callable[[torch.Tensor], torch.Tensor]] = {  # by the activation's class
    nn.Tanh: lambda a: a.abs() > 0.99,
    nn.Sigmoid: lambda a: (a < 0.01) | (a > 0.99),
}


def linear_names(net: nn.Module) -> list[tuple[str, nn.Linear]]:
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    return [(f"layer{i}" if i < len(linears) else "out", m) for i, m in enumerate(linears, start=1)]


@torch.no_grad()
def activation_stats(net: nn.Module, x: torch.Tensor) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """Forward x [B, 784] through the hidden layers; -> (stats, activations by layer name)."""
    names, values, acts = [], [], {}
    h = x.flatten(1)
    for i, (linear, act_fn) in enumerate(net.hidden, start=1):
        z = linear(h)  # [B, n_out] pre-activation
        h = act_fn(z)  # [B, n_out]
        acts[f"layer{i}"] = h
        parts = {"preact_mean": z.mean(), "preact_std": z.std(), "preact_var": z.var(), "act_mean": h.mean(),
                 "act_std": h.std()}  # fmt: skip
        if type(act_fn) in SATURATED:
            parts["saturated_frac"] = SATURATED[type(act_fn)](h).float().mean()
        if isinstance(act_fn, nn.ReLU):
            parts["dead_frac"] = (h == 0).all(dim=0).float().mean()  # a unit dead for every sample
        names += [f"layer{i}/{k}" for k in parts]
        values += list(parts.values())
    flat = torch.stack(values).tolist() if values else []  # one sync, not one per stat; [] without hidden layers
    return dict(zip(names, flat, strict=True)), acts


@torch.no_grad()
def weight_stats(net: nn.Module, init: dict) -> dict[str, float]:
    """Each Linear's weight std, beside the std its init's stated variance predicts."""
    out = {}
    for name, m in linear_names(net):
        out[f"{name}/weight_std"] = m.weight.std().item()
        out[f"{name}/weight_std_init"] = expected_variance(init, *fans(m.weight)) ** 0.5
    return out


def predicted_preact_var(net: nn.Module, init: dict, x: torch.Tensor) -> dict[str, float]:
    """Mean-field q^l of each hidden layer from the probe's q0 = mean(x^2), for an init whose sigma_w2 and
    sigma_b2 are known and an activation the theory knows; {} otherwise (initlab.theory, docs/theory.md)."""
    from initlab import theory

    hidden = net.hidden
    s_w2, s_b2 = sigma_w2(init), bias_variance(init)
    names = {theory.TORCH_NAMES.get(type(a).__name__) for _, a in hidden}
    if not hidden or s_w2 is None or s_b2 is None or len(names) != 1 or None in names:
        return {}
    act = hidden[0][1]
    kwargs = {k: float(getattr(act, k)) for k in ("negative_slope", "alpha") if hasattr(act, k)}
    q0 = float(x.flatten(1).pow(2).mean())
    qs = theory.layer_variances(theory.activation(names.pop(), **kwargs), s_w2, s_b2, q0, len(hidden))
    return {f"layer{i}/preact_var_theory": float(q) for i, q in enumerate(qs, start=1)}


def grad_norms(net: nn.Module) -> dict[str, float]:
    return {f"{n}/grad_norm": m.weight.grad.norm().item() for n, m in linear_names(net) if m.weight.grad is not None}


class LayerDiagnostics(pl.Callback):
    def __init__(self, every_n_steps: int = 100, histogram_every_n_steps: int = 500) -> None:
        self.every, self.hist_every = every_n_steps, histogram_every_n_steps
        self.probe: torch.Tensor | None = None

    def state_dict(self) -> dict[str, torch.Tensor | None]:
        return {"probe": self.probe}  # in checkpoints: a resumed run probes the same batch

    def load_state_dict(self, state_dict: dict[str, torch.Tensor | None]) -> None:
        self.probe = state_dict.get("probe")

    def _due(self, step: int, every: int) -> bool:
        return every > 0 and step % every == 0

    def _log(self, trainer: pl.Trainer, stats: dict[str, float]) -> None:
        for lg in trainer.loggers:
            lg.log_metrics({f"diag/{k}": v for k, v in stats.items()}, step=trainer.global_step)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if not self._due(step, self.every) or not hasattr(pl_module.net, "hidden"):
            return
        if self.probe is None:
            self.probe = batch[0].detach().clone()  # fixed from here on, so curves compare like with like
        hp = pl_module.hparams
        stats, acts = activation_stats(pl_module.net, self.probe)
        theory = predicted_preact_var(pl_module.net, hp.init, self.probe) if step == 0 else {}
        self._log(trainer, stats | weight_stats(pl_module.net, hp.init) | theory)
        if self._due(step, self.hist_every):
            for lg in trainer.loggers:
                if isinstance(lg, pl.loggers.TensorBoardLogger):
                    # 64 even bins: TensorBoard's default ~1500 log-spaced ones cost ~10 ms a histogram here
                    for name, m in linear_names(pl_module.net):
                        lg.experiment.add_histogram(f"diag/{name}/weight", m.weight, step, bins=64)
                    for name, a in acts.items():
                        lg.experiment.add_histogram(f"diag/{name}/activation", a, step, bins=64)

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        if self._due(trainer.global_step, self.every):
            self._log(trainer, grad_norms(pl_module.net))

"""A checkpoint's run state is input: every value the run will use (step and loop counters, random states,
optimizer buffers, accumulated gradients, val_history, wall time, the resumed list, choices, the config's depth)
is checked against what the run itself writes, before any of it is used; anything else is one CheckpointError
line naming the checkpoint and the field (a wrong-shaped momentum buffer crashed the process in C)."""

import math
import re
import reprlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from initlab.errors import CheckpointError, describe

CKPT_KEY = "initlab"  # the run's own record in every checkpoint (initlab.run.runstate.RunState)

DEPTH = 64  # deeper configs are refused before any recursive walk (3000 levels ended in a RecursionError)
GROUP = re.compile(r"[A-Za-z0-9_][\w-]*(/[A-Za-z0-9_][\w-]*)*")  # a config group: act, hydra/launcher
NAME = re.compile(r"[A-Za-z0-9_][\w.+-]{0,99}")  # a config file's name (no path, no line break): what choices hold
PARAM_SHAPED = (  # torch.optim's per-parameter buffers: exactly the parameter's shape
    "momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "square_avg", "grad_avg", "acc_delta", "sum",
    "exp_inf", "prev", "step_size", "ax",
)  # fmt: skip


class Malformed(Exception):
    """One field of a checkpoint that is not what the run writes: (where, what is wrong)."""


def _need(ok: bool, where: str, problem: str) -> None:
    if not ok:
        raise Malformed(where, problem)


def _count(v: Any, where: str, at_most: int | None = None) -> int:
    """An int >= 0 (and <= at_most): steps, epochs, loop counters."""
    _need(isinstance(v, int) and v >= 0, where, f"is {_show(v)}, not a count (an integer >= 0)")
    _need(at_most is None or v <= at_most, where, f"is {v}, beyond the checkpoint's step {at_most}")
    return v


def _real(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


SHORT = reprlib.Repr()  # never the whole of a value: a few levels and items of it
SHORT.maxlevel, SHORT.maxstring, SHORT.maxother, SHORT.maxlist, SHORT.maxdict = 2, 40, 40, 4, 4


def _show(v: Any) -> str:
    """A value for the one line: short (a few levels, however deep it is), and with no line break of its own."""
    text = SHORT.repr(v) if not hasattr(v, "shape") else f"a tensor of shape {list(v.shape)}"
    return text if len(text) <= 60 else text[:57] + "..."


def _deep(node: Any, limit: int = DEPTH) -> bool:
    """Whether containers nest deeper than `limit`; a walk with a stack, so depth itself cannot overflow it."""
    stack = [(node, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list | tuple):
            if depth >= limit:
                return True
            stack.extend((v, depth + 1) for v in (node.values() if isinstance(node, dict) else node))
    return False


def _one_line(text: str) -> bool:
    return "\n" not in text and "\r" not in text


def _overrides(v: Any, where: str) -> list[str]:
    ok = isinstance(v, list) and all(isinstance(o, str) and _one_line(o) for o in v)
    _need(ok, where, "is not a list of overrides (one-line strings)")
    return v


def _check_choices(choices: Any) -> None:
    """Group choices are config files' names: the record copies them, and a path or a line break has no place."""
    _need(isinstance(choices, dict), "initlab.choices", f"is {_show(choices)}, not a dict of group choices")
    for group, name in choices.items():
        _need(isinstance(group, str) and GROUP.fullmatch(group) is not None, "initlab.choices",
              f"has the key {_show(group)}, not a config group")  # fmt: skip
        plain = name is None or (isinstance(name, str) and NAME.fullmatch(name) is not None)
        _need(plain, f"initlab.choices.{group}",
              f"is {_show(name)}, not a config file's name (letters, digits, _ . + -; no path)")  # fmt: skip


def _check_resumed(resumed: Any, step: int) -> None:
    """Each resume as the run writes it: {from_step, overrides}, in order, none past the checkpoint's step."""
    _need(isinstance(resumed, list), "initlab.resumed", f"is {_show(resumed)}, not a list of resumes")
    last = 0
    for i, entry in enumerate(resumed):
        where = f"initlab.resumed[{i}]"
        _need(isinstance(entry, dict) and set(entry) == {"from_step", "overrides"}, where,
              f"is {_show(entry)}, not {{from_step, overrides}}")  # fmt: skip
        from_step = _count(entry["from_step"], f"{where}.from_step", at_most=step)
        _need(from_step >= last, f"{where}.from_step", f"is {from_step}, before the resume listed before it")
        last = from_step
        _overrides(entry["overrides"], f"{where}.overrides")


def _bytes(t: Any, size: int | None = None) -> bool:
    """A generator state: a flat uint8 tensor (of `size` bytes)."""
    import torch

    return isinstance(t, torch.Tensor) and t.dtype == torch.uint8 and t.dim() == 1 and size in (None, t.numel())


def _check_rng(rng: Any) -> None:
    """The generators' states as runstate.rng_states writes them; each is tried on a generator of its own."""
    import random

    import numpy as np
    import torch

    names = ("torch", "cuda", "numpy", "python")
    _need(isinstance(rng, dict) and all(k in rng for k in names), "initlab.rng", f"is {_show(rng)}, not the "
          "generators' states (torch, cuda, numpy, python)")  # fmt: skip
    _need(_bytes(rng["torch"], torch.get_rng_state().numel()), "initlab.rng.torch", "is not torch's generator state")
    cuda = rng["cuda"]
    _need(isinstance(cuda, list) and all(_bytes(s) for s in cuda), "initlab.rng.cuda", "is not a list of states")
    if cuda and torch.cuda.is_available():  # restored only where there is CUDA
        size = torch.cuda.get_rng_state().numel()
        _need(len(cuda) <= torch.cuda.device_count() and all(_bytes(s, size) for s in cuda), "initlab.rng.cuda",
              "does not fit this machine's CUDA generators")  # fmt: skip
    state, py = rng["numpy"], rng["python"]
    _need(isinstance(state, list) and len(state) == 5 and isinstance(state[1], torch.Tensor) and state[1].dim() == 1
          and state[1].dtype == torch.int64, "initlab.rng.numpy", "is not numpy's generator state")  # fmt: skip
    _need(isinstance(py, list) and len(py) == 3 and isinstance(py[1], list), "initlab.rng.python",
          "is not Python's generator state")  # fmt: skip
    keys = state[1]
    _need(bool(((keys >= 0) & (keys < 2**32)).all()), "initlab.rng.numpy", "holds keys outside 32 bits")
    for where, trial in (("torch", lambda: torch.Generator().set_state(rng["torch"])),
                         ("numpy", lambda: np.random.RandomState().set_state((state[0], keys.numpy().astype(np.uint32),
                                                                              *state[2:]))),
                         ("python", lambda: random.Random().setstate((py[0], tuple(py[1]), py[2])))):  # fmt: skip
        try:
            trial()
        except (TypeError, ValueError, OverflowError, RuntimeError) as e:
            raise Malformed(f"initlab.rng.{where}", f"is not a generator state ({describe(e, limit=80)})") from None


def _key(k: Any) -> str:
    """A key as the one line names it: itself when it is short printable text."""
    return k if isinstance(k, str) and k.isprintable() and len(k) <= 60 else _show(k)


def _leaves(node: Any, where: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, f"{where}.{_key(k)}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, f"{where}[{i}]")
    else:
        yield where, node


def _check_progress(saved: dict[str, Any]) -> int:
    """The Lightning that wrote it, global_step, epoch and the loops' counters: counts, and the step the loops
    say; -> the step."""
    version = saved.get("pytorch-lightning_version")
    major = str(version).split(".")[0]
    _need(isinstance(version, str) and major.isdigit() and int(major) >= 2, "pytorch-lightning_version",
          f"is {_show(version)}: a run writes it with Lightning 2 or later (an older checkpoint's loop state would "
          "be migrated, and fail)")  # fmt: skip
    step = _count(saved.get("global_step", 0), "global_step")
    _count(saved.get("epoch", 0), "epoch", at_most=step)  # every epoch trains at least one step
    loops = saved.get("loops", {})
    _need(isinstance(loops, dict) and not _deep(loops, 16), "loops", "is not Lightning's loop state")
    for where, v in _leaves(loops, "loops"):
        _count(v, where)
    fit = loops.get("fit_loop", {})
    done = _get(fit, "epoch_loop.automatic_optimization.optim_progress", "optimizer", "step", "total", "completed")
    _need(done in (None, step), "global_step", f"is {step}, but the loops count {done} optimizer steps")
    return step


def _get(node: Any, *keys: str) -> Any:
    for k in keys:
        node = node.get(k) if isinstance(node, dict) else None
    return node


def _check_history(saved: dict[str, Any], step: int) -> None:
    """val_history as the module writes it: [step, accuracy] pairs in order; losses are numbers or null."""
    history = saved.get("val_history", [])
    _need(isinstance(history, list), "val_history", f"is {_show(history)}, not a list")
    last = 0
    for i, pair in enumerate(history):
        ok = isinstance(pair, list | tuple) and len(pair) == 2 and isinstance(pair[0], int) and _real(pair[0])
        ok = ok and last <= pair[0] <= step and _real(pair[1]) and 0 <= pair[1] <= 1
        _need(ok, f"val_history[{i}]", f"is {_show(pair)}, not [step, accuracy]: a step from {last} to the "
              f"checkpoint's {step}, an accuracy in [0, 1]")  # fmt: skip
        last = pair[0]
    for key in ("first_loss", "last_loss"):  # cross-entropy: >= 0, or NaN/inf once a run diverged
        v = saved.get(key)
        ok = v is None or (_real(v) and v >= 0) or (isinstance(v, float) and (math.isnan(v) or v == math.inf))
        _need(ok, key, f"is {_show(v)}, not a loss (a number >= 0, NaN, inf or null: cross-entropy is never negative)")
        if isinstance(v, float) and not math.isfinite(v):  # the step that logged it took NaN gradients into the weights
            _need(not _finite_weights(saved), key, f"is {v}, but every weight is finite: a run whose loss became NaN "
                  "or inf took that step's gradients into its weights")  # fmt: skip


def _finite_weights(saved: dict[str, Any]) -> bool:
    import torch

    weights = saved.get("state_dict", {}).values() if isinstance(saved.get("state_dict"), dict) else []
    return all(bool(torch.isfinite(t).all()) for t in weights if isinstance(t, torch.Tensor) and t.is_floating_point())


def _check_grads(grads: Any, weights: Any) -> None:
    """Gradients of a window in progress: one for a parameter of the model, of its shape and dtype."""
    import torch

    _need(isinstance(grads, dict) and isinstance(weights, dict), "initlab.grads", "is not a dict of gradients")
    for name, g in grads.items():
        w = weights.get(name) if isinstance(name, str) else None
        ok = isinstance(g, torch.Tensor) and isinstance(w, torch.Tensor) and g.layout == torch.strided
        _need(ok and g.shape == w.shape and g.dtype == w.dtype, f"initlab.grads[{_show(name)}]",
              f"is {_show(g)}, not a gradient of the model's parameter of that name (its shape and dtype)")  # fmt: skip


def _check_record(run: Any, saved: dict[str, Any], step: int) -> None:
    """The run's own record (RunState.on_save_checkpoint): config, choices, overrides, time, resumes, rng, grads."""
    _need(isinstance(run, dict), "initlab", f"is {_show(run)}, not the run's record")
    config = run.get("config")
    whole = isinstance(config, dict) and all(k in config for k in ("data", "model", "init", "act"))
    _need(whole, "initlab.config", "is not a run's config")
    _need(not _deep(config), "initlab.config", f"nests deeper than {DEPTH} levels")
    _overrides(run.get("overrides"), "initlab.overrides")
    _check_choices(run.get("choices", {}))
    elapsed = run.get("elapsed_s", 0.0)
    _need(_real(elapsed) and elapsed >= 0, "initlab.elapsed_s", f"is {_show(elapsed)}, not a wall time (>= 0 s)")
    _check_resumed(run.get("resumed", []), step)
    if "rng" in run:  # checkpoints of earlier versions have none
        _check_rng(run["rng"])
    if "grads" in run:
        _check_grads(run["grads"], saved.get("state_dict"))


def _refused(path: Path, e: Malformed) -> CheckpointError:
    where, problem = e.args
    part = "run record" if where.startswith("initlab") else "training state"
    return CheckpointError(f"ckpt_path={str(path)!r} is refused: its {part} is malformed ({where} {problem}); a "
                           "checkpoint is read as data, and this is not what a run writes")  # fmt: skip


def check_saved(saved: dict[str, Any], path: Path) -> None:
    """Refuse, in one line, a checkpoint whose run state is not what a run writes: before any of it is used.

    The schema of what initlab itself writes (RunState, the module's val_history, Lightning's loop counters);
    the optimizer's state is checked against the model once it is built (`check_optimizer`).
    """
    try:
        step = _check_progress(saved)
        _check_record(saved[CKPT_KEY], saved, step)
        _check_history(saved, step)
        _check_scores(saved.get("callbacks", {}))
    except Malformed as e:
        raise _refused(path, e) from None


SCORES = ("best_model_score", "current_score", "kth_value")  # what ModelCheckpoint compares new scores with


def _check_scores(callbacks: Any) -> None:
    """The checkpoint callbacks' scores are numbers (a score 'high' was a 58-line traceback at the first save)."""
    import torch

    _need(isinstance(callbacks, dict), "callbacks", "is not a dict of the callbacks' states")
    for name, state in callbacks.items():
        if not isinstance(state, dict):
            continue
        scores = {k: state[k] for k in SCORES if k in state}
        best_k = state.get("best_k_models", {})
        _need(isinstance(best_k, dict), f"callbacks[{_show(name)}].best_k_models", "is not a dict of scores")
        low, high = (0.0, 1.0) if str(state.get("monitor", "")).endswith("acc") else (0.0, math.inf)  # val/acc
        for key, v in [*scores.items(), *((f"best_k_models[{_show(k)}]", v) for k, v in best_k.items())]:
            where = f"callbacks[{_show(name)}].{key}"
            tensor = isinstance(v, torch.Tensor) and v.numel() == 1 and v.is_floating_point()
            _need(v is None or _real(v) or tensor, where, f"is {_show(v)}, not a score")
            x = None if v is None else float(v)
            unset = key == "kth_value" and x in (math.inf, -math.inf)  # Lightning's start: the worst possible
            _need(x is None or unset or low <= x <= high, where, f"is {x}, not a score of {state.get('monitor')} "
                  f"(in [{low:g}, {high:g}])")  # fmt: skip


def _same_kind(v: Any, ref: Any, where: str) -> None:
    """`v` is a value of the kind the run's own optimizer or scheduler has at that place (`ref`)."""
    import torch

    if isinstance(ref, bool) or ref is None:
        _need(v is None or isinstance(v, bool | int | float | str), where, f"is {_show(v)}, not a plain value")
    elif isinstance(ref, int | float):
        _need(isinstance(v, int | float) and not isinstance(v, bool), where, f"is {_show(v)}, not a number")
    elif isinstance(ref, str):
        _need(isinstance(v, str), where, f"is {_show(v)}, not a string")
    elif isinstance(ref, list | tuple):
        _need(isinstance(v, list | tuple) and len(v) == len(ref), where, f"is {_show(v)}, not {len(ref)} values")
        for i, (a, b) in enumerate(zip(v, ref, strict=True)):
            _same_kind(a, b, f"{where}[{i}]")
    elif isinstance(ref, dict):
        _need(isinstance(v, dict) and not _deep(v, 8), where, f"is {_show(v)}, not a dict")
        for k, a in v.items():  # keys the run's own lacks (another torch, a scheduler's initial_lr): plain values
            _same_kind(a, ref.get(k), f"{where}.{_key(k)}")
    elif isinstance(ref, torch.Tensor):
        _need(isinstance(v, torch.Tensor) and v.shape == ref.shape, where, f"is {_show(v)}, not {_show(ref)}")


NON_NEGATIVE = ("exp_avg_sq", "max_exp_avg_sq", "square_avg", "sum")  # second moments and sums of squares


def _check_buffers(state: Any, params: list[tuple[str, Any]], ids: list[int], steps: int) -> None:
    """Each parameter's optimizer state has that parameter's shape (a fused kernel reads a buffer as long as its
    parameter, and a shorter one crashed the process: SIGSEGV) and values a run could have saved: finite, second
    moments >= 0, a step count from 0 to the run's steps."""
    import torch

    _need(isinstance(state, dict), "optimizer_states[0].state", "is not a dict of parameters' states")
    shapes = dict(zip(ids, params, strict=True))
    for i, buffers in state.items():
        where = f"optimizer_states[0].state[{_show(i)}]"
        _need(i in shapes and isinstance(buffers, dict), where, "is not the state of a parameter the run optimizes")
        name, shape = shapes[i]
        for key, t in buffers.items():
            at = f"{where}.{_key(key)}"
            if not isinstance(t, torch.Tensor):
                _need(_real(t), at, f"is {_show(t)}, not a tensor or a number")
                continue
            _need(t.layout == torch.strided and t.is_contiguous(), at, "is not a plain (dense, contiguous) tensor")
            if key in PARAM_SHAPED:
                ok = t.shape == shape
            else:  # a step count, or a factored moment (Adafactor's row and column variances)
                factored = t.dim() == len(shape) and all(a in (1, b) for a, b in zip(t.shape, shape, strict=True))
                ok = t.numel() == 1 or factored
            _need(ok, at, f"has shape {list(t.shape)}; its parameter {name} has {list(shape)}")
            _need(bool(torch.isfinite(t).all()), at, "holds NaN or inf (a diverged run's state: it cannot go on)")
            _need(key not in NON_NEGATIVE or bool((t >= 0).all()), at, "holds negative values (a sum of squares)")
            _need(key != "step" or 0 <= float(t.flatten()[0]) <= steps, at,
                  f"is {float(t.flatten()[0]):g}, not a step count from 0 to the checkpoint's {steps}")  # fmt: skip


def _reference(config: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The param group and scheduler states that the checkpoint's own config builds, on a stand-in parameter."""
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(config)
    optimizer = instantiate(cfg.optimizer, _partial_=True)([torch.nn.Parameter(torch.zeros(1))])
    sched = OmegaConf.select(cfg, "scheduler.scheduler", default=None)
    scheduler = instantiate(sched, _partial_=True)(optimizer) if sched else None
    return optimizer.param_groups[0], [scheduler.state_dict()] if scheduler is not None else []


MOVING = (
    "params",
    "lr",
    "last_epoch",
    "_step_count",
    "_last_lr",
    "_get_lr_called_within_step",
    "_is_initial",
    "best",
    "num_bad_epochs",
    "cooldown_counter",
    "foreach",
    "fused",
    "capturable",
    "differentiable",
)
# ^ what training moves (the lr, a scheduler's counters) or a machine chooses; the rest is what the config built


def _same_settings(v: dict[str, Any], ref: dict[str, Any], where: str) -> None:
    """A setting of the optimizer or scheduler state equals what the checkpoint's config builds (momentum=-3 or a
    StepLR gamma of 1e10 in the state would train otherwise than its record says); the lr is a finite number."""
    for k, want in ref.items():
        if k in MOVING or k not in v:
            continue
        got, want = (list(x) if isinstance(x, tuple) else x for x in (v[k], want))
        _need(type(got) is type(want) and got == want, f"{where}.{_key(k)}",
              f"is {_show(v[k])}; the checkpoint's own config builds {_show(ref[k])}")  # fmt: skip
    if "lr" in v:
        _need(_real(v["lr"]) and v["lr"] >= 0, f"{where}.lr", f"is {_show(v['lr'])}, not a learning rate")


def check_optimizer(saved: dict[str, Any], path: Path, module: Any) -> None:
    """Refuse, in one line, an optimizer or scheduler state that does not fit the run's model and optimizer:
    before Lightning restores it (the module's one optimizer has one group of all its parameters)."""
    params = [(name, p.shape) for name, p in module.named_parameters()]
    group, schedulers = _reference(saved[CKPT_KEY]["config"])  # checked already (check_saved, trust)
    try:  # resuming training (an evaluation needs neither the optimizer nor the generators)
        _need("rng" in saved[CKPT_KEY], "initlab.rng", "is missing: a resume restores every random generator's state "
              "(dropout would draw otherwise)")  # fmt: skip
        states = saved.get("optimizer_states")
        _need(isinstance(states, list) and len(states) == 1 and isinstance(states[0], dict), "optimizer_states",
              "is not the state of the run's one optimizer")  # fmt: skip
        groups = states[0].get("param_groups")
        _need(isinstance(groups, list) and len(groups) == 1 and isinstance(groups[0], dict),
              "optimizer_states[0].param_groups", "is not one group of parameters")  # fmt: skip
        ids = groups[0].get("params")
        ok = isinstance(ids, list) and len(ids) == len(params) and all(type(i) is int for i in ids)
        _need(ok and len(set(ids)) == len(ids), "optimizer_states[0].param_groups[0].params",
              f"is {_show(ids)}, not the ids of the model's {len(params)} parameters")  # fmt: skip
        _same_kind({k: v for k, v in groups[0].items() if k != "params"}, group, "optimizer_states[0].param_groups[0]")
        _same_settings(groups[0], group, "optimizer_states[0].param_groups[0]")
        _check_buffers(states[0].get("state"), params, ids, int(saved.get("global_step", 0)))
        _same_kind(saved.get("lr_schedulers", []), schedulers, "lr_schedulers")
        for i, (state, ref) in enumerate(zip(saved.get("lr_schedulers", []), schedulers, strict=True)):
            _same_settings(state, ref, f"lr_schedulers[{i}]")
    except Malformed as e:
        raise _refused(path, e) from None

"""Checks on a composed config before anything heavy is imported: each failure is one line naming the key, the
value and what is allowed.

`RULES` holds, once, what every setting of the shipped configs allows; a key absent from a config is not
checked. Keyword arguments that no shipped config has (`+optimizer.foo=1`) are checked against the target's
signature once the frameworks are imported (`check_arguments`, called by initlab.run.build).
"""

import inspect
import itertools
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from initlab.data import MNIST_FAMILY
from initlab.errors import ConfigError
from initlab.files import not_a_file
from initlab.inits import BIAS_RULES, INIT_KEYS, NONLINEARITIES, expected_variance
from initlab.run import overrides as parsed

Rule = Callable[[str, Any], None]


class Refused(ConfigError):
    """A value a rule refuses; `allowed` says what the rule allows (`either` joins those of its rules)."""

    def __init__(self, message: str, allowed: str) -> None:
        super().__init__(message)
        self.allowed = allowed


def fail(key: str, value: Any, allowed: str) -> None:
    shown = OmegaConf.to_container(value) if isinstance(value, DictConfig | ListConfig) else value
    raise Refused(f"{key}={shown!r} is not allowed: {allowed}", allowed)


def number(lo: float | None = None, hi: float | None = None, *, integer: bool = False, lo_open: bool = False,
           hi_open: bool = False, also: tuple = ()) -> Rule:  # fmt: skip
    """A finite int (or float, unless integer) in [lo, hi], bounds optionally open; `also` lists extra values."""
    kind = "an integer" if integer else "a finite number"
    span = f" in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}" if hi is not None else ""
    span = span or (f" {'>' if lo_open else '>='} {lo}" if lo is not None else "")
    allowed = kind + span + "".join(f" or {a!r}" for a in also)

    def rule(key: str, v: Any) -> None:
        if v in also and not isinstance(v, bool):
            return
        ok_type = isinstance(v, int) if integer else isinstance(v, int | float)
        if isinstance(v, bool) or not ok_type or not math.isfinite(v):
            fail(key, v, allowed)
        if (lo is not None and (v < lo or (lo_open and v == lo))) or (
            hi is not None and (v > hi or (hi_open and v == hi))
        ):
            fail(key, v, allowed)

    return rule


def one_of(*values: Any) -> Rule:
    def rule(key: str, v: Any) -> None:
        if not any(x == v and isinstance(x, bool) == isinstance(v, bool) for x in values):  # True is not 1
            fail(key, v, "one of " + ", ".join(repr(x) for x in values))

    return rule


def list_of(item: Rule, length: int | None = None, example: str = "[100]") -> Rule:
    def rule(key: str, v: Any) -> None:
        if not isinstance(v, ListConfig | list) or (length is not None and len(v) != length):
            fail(key, v, f"a list{f' of {length}' if length else ''}, e.g. {example}")
        for i, x in enumerate(v):
            item(f"{key}[{i}]", x)

    return rule


def either(*rules: Rule) -> Rule:
    def rule(key: str, v: Any) -> None:
        errors = []
        for r in rules:
            try:
                return r(key, v)
            except Refused as e:
                errors.append(e.allowed)
        fail(key, v, " or ".join(errors))

    return rule


def because(rule: Rule, why: str) -> Rule:
    """A rule whose refusal also says why the other values are not allowed."""

    def explained(key: str, v: Any) -> None:
        try:
            rule(key, v)
        except Refused as e:
            fail(key, v, f"{e.allowed} ({why})")

    return explained


def target(key: str, v: Any) -> None:
    if not isinstance(v, DictConfig | dict) or not isinstance(v.get("_target_"), str) or not v["_target_"]:
        fail(key, v, "a config with a _target_ (a class or function to instantiate)")


def text(key: str, v: Any) -> None:
    if not isinstance(v, str) or not v:
        fail(key, v, "a non-empty string")


def init_rule(key: str, v: Any) -> None:
    """weight: a _target_ or null; bias: a rule; variance: an expression in fan_in, fan_out, rows, cols and the weight
    function's numbers, or null (an init without a closed form, e.g. lsuv); calibrate: a _target_ or null."""
    if not isinstance(v, DictConfig) or "variance" not in v:
        fail(key, v, "a config with weight, bias and variance (see conf/init/kaiming.yaml)")
    either(one_of(None), target)(f"{key}.weight", v.get("weight"))
    either(one_of(*BIAS_RULES), target)(f"{key}.bias", v.get("bias", "zero"))
    either(one_of(None), target)(f"{key}.calibrate", v.get("calibrate"))
    if v.variance is None:
        return
    plain = OmegaConf.to_container(v, resolve=True)
    try:
        values = [expected_variance(plain, i, o) for i, o in ((100, 10), (9, 784), (4096, 4096))]  # wide: overflow
    except (ValueError, SyntaxError, ZeroDivisionError, TypeError, ArithmeticError, MemoryError, RecursionError) as e:
        fail(f"{key}.variance", v.variance,
             f"an expression in fan_in, fan_out, rows, cols and numbers, e.g. '2 / fan_in' ({e})")  # fmt: skip
    if not all(math.isfinite(x) and x >= 0 for x in values):
        fail(f"{key}.variance", v.variance, "a variance: finite and >= 0 for any fan_in and fan_out")


DURATION_UNITS = ("weeks", "days", "hours", "minutes", "seconds", "milliseconds", "microseconds")  # timedelta's


def duration(key: str, v: Any) -> None:
    """Lightning's max_time: "DD:HH:MM:SS" or a dict of timedelta units; longer than zero."""
    allowed = "a duration longer than 0: 'DD:HH:MM:SS' (e.g. '00:12:00:00') or a dict such as {hours: 12}"
    parts = v.split(":") if isinstance(v, str) else []
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        seconds = sum(int(p) * s for p, s in zip(parts, (86400, 3600, 60, 1), strict=True))
    elif (
        isinstance(v, DictConfig)
        and v
        and all(k in DURATION_UNITS for k in v)
        and all(isinstance(x, int | float) and not isinstance(x, bool) and 0 <= x < math.inf for x in v.values())
    ):
        seconds = sum(v.values())  # any unit: only whether it is above zero matters here
    else:
        seconds = 0
    if seconds <= 0:
        fail(key, v, allowed)


def store(key: str, v: Any) -> None:
    """A tracking URI; a SQLite one names a file (made if missing): a directory there would stall MLflow's retries."""
    text(key, v)
    if v.startswith("sqlite:///"):
        kind = not_a_file(v.removeprefix("sqlite:///"))
        if kind not in (None, "missing"):
            fail(key, v, f"a SQLite file, and {v.removeprefix('sqlite:///')} is {kind}")


def tunable(key: str, v: Any) -> None:
    text(key, v)
    if v == "seed":
        fail(key, v, "a swept setting other than the seed (each cell would keep its luckiest seed)")


SEED_MAX = 2**32 - 1  # what numpy (and Lightning's seed_everything) accept
PRECISIONS = (None, 64, 32, 16, "64", "32", "16", "bf16", "64-true", "32-true", "16-mixed", "bf16-mixed")
PRECISIONS += ("16-true", "bf16-true", "transformer-engine")  # Lightning's
POSITIVE_INT = number(1, integer=True)
FLAG = one_of(True, False)
PROB = number(0, 1, hi_open=True)
BATCHES = either(POSITIVE_INT, number(0, 1, lo_open=True))  # a count, or a fraction of the epoch
MAX_THREADS = 1024  # torch threads a process; num_threads=1000000 failed to allocate, or crashed (SIGSEGV)
FIT_METRICS = ("val/acc", "val/loss", "train/loss", "train/acc")  # what initlab.module logs while training
MONITOR = either(one_of(None), one_of(*FIT_METRICS))  # what a checkpoint or a scheduler can watch
RULES: dict[str, Rule] = {  # leaves first: a bad leaf is named before a rule that combines it (init's variance)
    "seed": number(0, SEED_MAX, integer=True),
    "num_threads": either(number(1, MAX_THREADS, integer=True), one_of("auto")),
    "train": FLAG,
    "ckpt_path": either(one_of(None), text),
    "optimizer.lr": number(0, lo_open=True),
    "optimizer.momentum": PROB,  # 1 would never forget a gradient
    "optimizer.dampening": number(0, 1),
    "optimizer.weight_decay": number(0),
    "optimizer.eps": number(0, lo_open=True),
    "optimizer.betas": list_of(PROB, 2, "[0.9, 0.999]"),
    "optimizer.nesterov": FLAG,
    "optimizer.fused": either(one_of(None), FLAG),
    "optimizer.foreach": either(one_of(None), FLAG),
    "optimizer.maximize": FLAG,
    "optimizer.amsgrad": FLAG,
    "scheduler.interval": one_of("epoch", "step"),
    "scheduler.scheduler.step_size": POSITIVE_INT,
    "scheduler.scheduler.gamma": number(0, lo_open=True),
    "scheduler.scheduler.T_max": POSITIVE_INT,
    "scheduler.scheduler.eta_min": number(0),
    "scheduler.scheduler.factor": number(0, 1, lo_open=True),  # 0: ConstantLR would hold the lr at 0
    "scheduler.scheduler.total_iters": number(0, integer=True),
    "scheduler.monitor": MONITOR,
    "scheduler.strict": FLAG,
    "scheduler.frequency": POSITIVE_INT,  # steps (or epochs) between the scheduler's steps
    "scheduler.name": either(one_of(None), text),  # the lr's name in the logs
    "data.data_dir": text,
    "data.batch_size": POSITIVE_INT,  # per process (Lightning's convention): DDP's effective batch is x devices
    "data.eval_batch_size": POSITIVE_INT,
    "data.val_size": POSITIVE_INT,
    "data.download": FLAG,
    "data.image_shape": list_of(POSITIVE_INT, 3, "[1, 28, 28] (channels, height, width)"),
    "data.num_classes": number(2, integer=True),
    "data.load": target,
    "model.hidden_dims": list_of(POSITIVE_INT, example="[100] (or [] for logistic regression)"),
    "model.channels": list_of(POSITIVE_INT, example="[6, 16] (a conv block each)"),
    "model.depth": either(one_of(None), number(0, integer=True)),
    "model.width": POSITIVE_INT,
    "model.num_classes": number(2, integer=True),  # the data's (${data.num_classes}), unless a model says otherwise
    "act.alpha": number(),
    "act.negative_slope": number(),
    "act.beta": number(0, lo_open=True),
    "act.threshold": number(0, lo_open=True),
    "init.sigma_w2": number(0),
    "init.sigma_b2": number(0),
    "init.weight.sigma_w2": number(0),
    "init.weight.gain": number(0),
    "init.weight.std": number(0),
    "init.weight.mean": number(),
    "init.weight.mode": one_of("fan_in", "fan_out"),  # torch's kaiming_*
    "init.weight.nonlinearity": one_of(*NONLINEARITIES),
    "init.weight.a": number(),  # the leaky_relu slope in kaiming's gain
    "init.bias.variance": number(0),
    "init.calibrate.tol": number(0, 1, lo_open=True, hi_open=True),
    "init.calibrate.max_iter": POSITIVE_INT,
    "init": init_rule,
    "act": target,
    "model": target,
    "data": target,
    "trainer.max_epochs": POSITIVE_INT,
    "trainer.max_steps": number(1, integer=True, also=(-1,)),
    "trainer.max_time": either(one_of(None), duration),
    "trainer.val_check_interval": either(POSITIVE_INT, number(0, 1, lo_open=True)),
    "trainer.check_val_every_n_epoch": either(one_of(None), POSITIVE_INT),
    "trainer.log_every_n_steps": POSITIVE_INT,
    "trainer.num_sanity_val_steps": number(-1, integer=True),
    "trainer.limit_train_batches": BATCHES,  # 0 would record an untrained model
    "trainer.overfit_batches": one_of(0, 0.0),  # it swaps the loader's sampler, which whole index batches have not
    "trainer.limit_val_batches": BATCHES,
    "trainer.limit_test_batches": BATCHES,
    "trainer.devices": either(
        POSITIVE_INT, one_of("auto", -1), list_of(number(0, integer=True), example="[0, 1]"), text
    ),
    "trainer.num_nodes": POSITIVE_INT,
    "trainer.accelerator": one_of("auto", "cpu", "gpu", "cuda", "mps", "tpu"),
    "trainer.precision": one_of(*PRECISIONS),
    "trainer.gradient_clip_val": either(one_of(None), number(0)),
    "trainer.accumulate_grad_batches": POSITIVE_INT,
    "trainer.deterministic": either(FLAG, one_of("warn")),
    "trainer.enable_progress_bar": FLAG,
    "trainer.benchmark": either(one_of(None), FLAG),
    "trainer.inference_mode": FLAG,
    "trainer.sync_batchnorm": FLAG,
    "trainer.detect_anomaly": FLAG,
    "trainer.use_distributed_sampler": FLAG,
    "trainer.barebones": because(one_of(False), "it turns off the loggers and checkpoints a run's record needs"),
    "trainer.enable_model_summary": FLAG,
    "trainer.enable_autolog_hparams": FLAG,
    "trainer.enable_checkpointing": because(one_of(None, True), "the run's checkpoints are its resume and its test"),
    "trainer.fast_dev_run": because(
        one_of(False, 0),
        "it turns off the checkpoints and loggers a record needs; shrink a run with trainer.limit_train_batches",
    ),
    "trainer.min_epochs": either(one_of(None), number(0, integer=True)),
    "trainer.min_steps": either(one_of(None), number(0, integer=True)),
    "trainer.gradient_clip_algorithm": one_of(None, "norm", "value"),
    "trainer.reload_dataloaders_every_n_epochs": number(0, integer=True),
    "trainer.model_registry": either(one_of(None), text),
    "callbacks.model_summary.max_depth": number(-1, integer=True),  # -1: all levels
    "callbacks.model_checkpoint.monitor": MONITOR,
    "callbacks.model_checkpoint.mode": one_of("min", "max"),
    "callbacks.model_checkpoint.save_on_train_epoch_end": either(one_of(None), FLAG),
    "callbacks.model_checkpoint.save_top_k": number(-1, integer=True),
    "callbacks.diagnostics.every_n_steps": number(0, integer=True),
    "callbacks.diagnostics.histogram_every_n_steps": number(0, integer=True),
    "callbacks.progress_bar.refresh_rate": number(0, integer=True),
    "callbacks.lr_monitor.logging_interval": one_of(None, "step", "epoch"),
    "summary.tune": either(one_of(None), tunable),
    "logger.mlflow.tracking_uri": either(one_of(None), store),
    "logger.wandb.offline": FLAG,
    "logger.tensorboard.log_graph": FLAG,
    "logger.csv.flush_logs_every_n_steps": POSITIVE_INT,  # 0: a ZeroDivisionError mid-run
}
REQUIRED = ("data._target_", "data.load", "data.image_shape", "data.num_classes", "data.batch_size", "model._target_",
            "init.weight", "init.variance", "act._target_", "optimizer._target_", "optimizer.lr", "scheduler",
            "trainer._target_", "trainer.max_epochs", "logger", "callbacks", "seed", "num_threads", "ckpt_path",
            "train")  # what the run reads without a default (present, even where null is allowed)  # fmt: skip
SETTINGS = {  # nodes without a _target_, and the keys read from them (others are read through an interpolation)
    "init": INIT_KEYS,
    "scheduler": ("scheduler", "interval", "frequency", "monitor", "strict", "name"),  # Lightning's scheduler dict
    "summary": ("tune",),
}
# train.yaml's own keys; your own group (+group=x) adds a dict
TOP_KEYS = ("data", "model", "init", "act", "optimizer", "scheduler", "trainer", "logger", "callbacks", "seed",
            "num_threads", "ckpt_path", "train", "summary")  # fmt: skip


def _leaves(node: Any, where: str = "") -> Iterable[tuple[str, Any]]:
    """(dotted key, raw value) of every leaf of a plain container; list items as key[i]."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, f"{where}.{k}" if where else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, f"{where}[{i}]")
    else:
        yield where, node


def resolvable(cfg: DictConfig) -> None:
    """Every interpolation resolves: `optimizer.lr=${oops}` or a recursive one is named in one line, not a
    traceback. Hydra's own `${hydra:...}` values are left to Hydra (set only once the job runs)."""
    raw = {k: v for k, v in OmegaConf.to_container(cfg, resolve=False).items() if k != "hydra"}
    for key, value in _leaves(raw):
        if not isinstance(value, str) or "${" not in value or "${hydra:" in value:
            continue
        try:
            OmegaConf.select(cfg, key)
        except (OmegaConfBaseException, RecursionError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ConfigError(f"{key}={value!r} cannot be resolved: {reason}") from None


def _structure(cfg: DictConfig) -> None:
    """Keys that must be there (`~optimizer.lr` deletes one) and a typo'd new top-level value."""
    for key in REQUIRED:  # present, even if null where that is allowed (init.variance, scheduler)
        if (
            OmegaConf.select(cfg, key, default=inspect.Parameter.empty, throw_on_missing=False)
            is inspect.Parameter.empty
        ):
            raise ConfigError(f"{key} is missing: the run needs it (was it deleted with ~{key}?)")
    for key, value in cfg.items():
        if key not in TOP_KEYS and key != "hydra" and not isinstance(value, DictConfig | ListConfig):
            raise ConfigError(f"{key}={value!r} is not a setting here (a typo?); top-level keys: {', '.join(TOP_KEYS)}")


def unread(cfg: DictConfig, overrides: Iterable[str]) -> None:
    """A key the command line adds where nothing reads it: `+init.calibarte=...` would be silently ignored."""
    raw = {k: v for k, v in OmegaConf.to_container(cfg, resolve=False).items() if k != "hydra"}
    interpolations = " ".join(v for _, v in _leaves(raw) if isinstance(v, str) and "${" in v)
    for key in parsed.added(overrides):
        node, _, name = key.rpartition(".")
        if node in SETTINGS and name not in SETTINGS[node] and "${" + key not in interpolations:
            raise ConfigError(f"{key} is not a setting of {node} (a typo?): it reads {', '.join(SETTINGS[node])}, "
                              "and keys its other values interpolate")  # fmt: skip


MERGED = ("logger", "callbacks")  # groups whose choices add up: logger=[tensorboard,mlflow] keeps both
GLOBAL_GROUPS = ("experiment", "hparams_search", "combo")  # groups with no node of their own (@package _global_)


def single_choices(cfg: DictConfig, overrides: Iterable[str]) -> None:
    """A group given a list (init=[a,b]) merges several configs into one: refuse it; a sweep takes -m init=a,b."""
    for key, value in parsed.given(o for o in overrides if o not in parsed.sweeps(overrides)).items():
        if key in MERGED:
            continue
        group = key in GLOBAL_GROUPS or key in (OmegaConf.select(cfg, "hydra.runtime.choices", default=None) or {})
        if isinstance(value, list) and (group or isinstance(OmegaConf.select(cfg, key, default=None), DictConfig)):
            raise ConfigError(f"{key}={value} is not allowed: one choice (to sweep, -m {key}={','.join(value)})")


def entries(cfg: DictConfig) -> None:
    """Each logger and callback is a config to build (`callbacks.model_summary=null` would reach Lightning)."""
    for group in MERGED:
        for name, node in (cfg.get(group) or {}).items():
            if not isinstance(node, DictConfig) or "_target_" not in node:
                shown = OmegaConf.to_container(node) if isinstance(node, DictConfig | ListConfig) else node
                fail(f"{group}.{name}", shown, f"a config with a _target_ (to leave it out: ~{group}.{name})")


MAX_WEIGHTS = 10**9  # 4 GB of float32 weights: a larger MLP fills this machine's memory before its first step


def mlp_size(cfg: DictConfig) -> None:
    """The shipped MLP's weight count, from its config before it is built: model.depth=1000000 would take minutes
    and all the memory to build, deaf to signals (a build is no safe point to stop at)."""
    if OmegaConf.select(cfg, "model._target_", default=None) != "initlab.models.MLP":
        return
    model, shape = cfg.model, OmegaConf.select(cfg, "data.image_shape", default=[1])
    depth = model.get("depth")
    hidden = [model.get("width", 100)] * depth if depth is not None else list(model.get("hidden_dims") or [])
    dims = [math.prod(shape), *hidden, OmegaConf.select(cfg, "data.num_classes", default=10)]
    weights = sum(a * b for a, b in itertools.pairwise(dims))
    if weights > MAX_WEIGHTS:
        key = "model.depth" if depth is not None else "model.hidden_dims"
        value = depth if depth is not None else hidden
        fail(key, value, f"an MLP of at most {MAX_WEIGHTS:.0e} weights (this one: {weights:.1e})")


def nesterov(cfg: DictConfig) -> None:
    """torch's SGD refuses Nesterov without momentum or with dampening: said before torch loads, naming the key."""
    opt = cfg.get("optimizer")
    if not isinstance(opt, DictConfig) or opt.get("_target_") != "torch.optim.SGD" or opt.get("nesterov") is not True:
        return
    if opt.get("momentum", 0) == 0:
        fail("optimizer.momentum", 0, "above 0 with optimizer.nesterov=true (or set optimizer.nesterov=false)")
    if opt.get("dampening", 0) != 0:
        fail("optimizer.dampening", opt.dampening, "0 with optimizer.nesterov=true (or set optimizer.nesterov=false)")


def minimums(cfg: DictConfig) -> None:
    """trainer.min_epochs / min_steps only keep a run from stopping early; above the maximum they would be ignored."""
    trainer = cfg.get("trainer")
    for least, most, unbounded in (("min_epochs", "max_epochs", None), ("min_steps", "max_steps", -1)):
        low, high = (trainer.get(k) if isinstance(trainer, DictConfig) else None for k in (least, most))
        if isinstance(low, int) and isinstance(high, int) and high != unbounded and low > high:
            fail(f"trainer.{least}", low, f"at most trainer.{most}={high} (the run ends there whatever the minimum)")


def mnist_family(cfg: DictConfig) -> None:
    """initlab.data.mnist.load reads torchvision's IDX layout of the MNIST family only (EMNIST has splits)."""
    if OmegaConf.select(cfg, "data.load._target_", default=None) == "initlab.data.mnist.load":
        dataset = OmegaConf.select(cfg, "data.load.dataset", default="MNIST")
        if dataset not in MNIST_FAMILY:
            fail("data.load.dataset", dataset, f"one of {', '.join(MNIST_FAMILY)} (initlab.data.mnist.load's layout)")


def plateau(cfg: DictConfig) -> None:
    """ReduceLROnPlateau steps on a metric: scheduler.monitor names it (Lightning's scheduler dict)."""
    target = OmegaConf.select(cfg, "scheduler.scheduler._target_", default=None)
    if str(target).endswith("ReduceLROnPlateau") and OmegaConf.select(cfg, "scheduler.monitor") is None:
        fail("scheduler.monitor", None, f"one of {', '.join(FIT_METRICS)} for {target}: +scheduler.monitor=val/loss")


RUN_DIR = "${hydra:runtime.output_dir}"
CHECKPOINTS = {"dirpath": f"{RUN_DIR}/checkpoints", "filename": "best", "save_weights_only": False,
               "enable_version_counter": False, "save_last": True}  # fmt: skip


def best_is_best(cfg: DictConfig) -> None:
    """The best checkpoint keeps the highest accuracy or the lowest loss: `mode=min` on val/acc keeps the worst."""
    pairs = (("callbacks.model_checkpoint.monitor", "callbacks.model_checkpoint.mode"),
             ("scheduler.monitor", "scheduler.scheduler.mode"))  # ReduceLROnPlateau's  # fmt: skip
    for watched, how in pairs:
        monitor, mode = (OmegaConf.select(cfg, k, default=None) for k in (watched, how))
        if isinstance(monitor, str) and mode is not None and monitor in FIT_METRICS:
            want = "max" if monitor.endswith("acc") else "min"
            if mode != want:
                fail(how, mode, f"{want!r} for {watched}={monitor} (the best is the "
                     f"{'highest accuracy' if want == 'max' else 'lowest loss'})")  # fmt: skip


def checkpoint_layout(cfg: DictConfig) -> None:
    """The run's checkpoints are whole, in its own dir, under the names resume and evaluation read (last.ckpt,
    best.ckpt): a dirpath elsewhere would let two runs share them; weights only could not resume."""
    node = OmegaConf.select(cfg, "callbacks.model_checkpoint", default=None)
    raw = OmegaConf.to_container(node, resolve=False) if isinstance(node, DictConfig) else {}
    for key, fixed in CHECKPOINTS.items():
        if key in raw and raw[key] != fixed:
            fail(f"callbacks.model_checkpoint.{key}", raw[key], f"{fixed!r}: resume and evaluation read the run "
                 "dir's checkpoints/last.ckpt and best.ckpt, whole")  # fmt: skip


def logger_layout(cfg: DictConfig) -> None:
    """A logger writes inside the run dir (save_dir under it, plain names for its subfolders): a shared save_dir
    would merge runs into one in TensorBoard, and `name=../..` would write outside any run."""
    for name, node in (cfg.get("logger") or {}).items():
        raw = OmegaConf.to_container(node, resolve=False) if isinstance(node, DictConfig) else {}
        where = raw.get("save_dir", RUN_DIR)
        if not isinstance(where, str) or not where.startswith(RUN_DIR) or ".." in Path(where).parts:
            fail(f"logger.{name}.save_dir", where, f"the run dir, {RUN_DIR}, or a folder inside it")
        for key in ("name", "version", "sub_dir", "prefix"):
            v = raw.get(key)
            if isinstance(v, str) and ("/" in v or v in (".", "..")):
                fail(f"logger.{name}.{key}", v, "a plain name (a folder inside the run dir), without '/'")


def validate(cfg: DictConfig, overrides: Iterable[str] = ()) -> None:
    """Raise ConfigError for the first value in `cfg` that its rule refuses (pure Python: no torch needed)."""
    single_choices(cfg, overrides)
    resolvable(cfg)
    _structure(cfg)
    unread(cfg, overrides)
    entries(cfg)
    shipped = str(OmegaConf.select(cfg, "model._target_", default="")).startswith("initlab.models.")
    for key, rule in RULES.items():
        if key.startswith("model.") and key != "model.num_classes" and not shipped:
            continue  # a model of the user's own reads its settings its own way (its signature is checked)
        node = OmegaConf.select(cfg, key, default=inspect.Parameter.empty, throw_on_missing=False)
        if node is not inspect.Parameter.empty:
            rule(key, node)
    mlp_size(cfg)
    nesterov(cfg)
    minimums(cfg)
    mnist_family(cfg)
    plateau(cfg)
    checkpoint_layout(cfg)
    best_is_best(cfg)
    logger_layout(cfg)
    interval = OmegaConf.select(cfg, "trainer.val_check_interval", default=None)
    if isinstance(interval, float) and OmegaConf.select(cfg, "trainer.check_val_every_n_epoch", default=1) is None:
        fail(
            "trainer.val_check_interval",
            interval,
            "a whole number of steps while trainer.check_val_every_n_epoch "
            "is null (validation counts global steps); a fraction of an epoch needs check_val_every_n_epoch=1",
        )
    if not cfg.train and not cfg.ckpt_path:
        raise ConfigError("train=false needs ckpt_path=PATH/TO/model.ckpt (or ckpt_path=last in its run dir)")


def inside_run_dir(config: DictConfig) -> None:
    """Hydra names files in the run dir after hydra.job.name (<name>.log) and hydra.output_subdir (.hydra/): a
    path there (`../../x`) would have it write outside the run dir."""
    name = OmegaConf.select(config, "hydra.job.name", default=None)
    if name is not None and (not str(name).strip() or "/" in str(name) or str(name) in (".", "..")):
        fail("hydra.job.name", name, "a plain name (it names the run's <name>.log), without '/'")
    sub = OmegaConf.select(config, "hydra.output_subdir", default=None)
    if sub is not None and (not str(sub) or Path(str(sub)).is_absolute() or ".." in Path(str(sub)).parts):
        fail("hydra.output_subdir", sub, "null or a folder inside the run dir (e.g. .hydra), without '..'")


def launch(config: DictConfig, multirun: bool) -> None:
    """What Hydra reads before any job starts: a search is a sweep (-m), over at least one trial; summary.tune a
    key the sweep sweeps."""
    search = config.hydra.runtime.choices.get("hparams_search")
    if search and not multirun:
        raise ConfigError(f"hparams_search={search} searches over many runs: add -m (python train.py -m "
                          f"hparams_search={search} ...)")  # fmt: skip
    for key in ("hydra.sweeper.n_trials", "hydra.sweeper.n_jobs"):  # Optuna's
        node = OmegaConf.select(config, key, default=None)
        if node is not None:
            POSITIVE_INT(key, node)
    inside_run_dir(config)
    task = parsed.listed(config.hydra.overrides.task)
    single_choices(config, task)  # experiment=[a,b] would merge two studies into one sweep
    tune = OmegaConf.select(config, "summary.tune", default=None)
    RULES["summary.tune"]("summary.tune", tune)
    if tune is not None and not multirun:  # a single run has no cells: the setting would be silently ignored
        raise ConfigError(f"summary.tune={tune} picks each cell's best {tune} in a sweep's summary: add -m and sweep "
                          f"it (python train.py -m {tune}=...,... summary.tune={tune})")  # fmt: skip
    if multirun and tune is not None and config.hydra.runtime.choices.get("hydra/sweeper") == "basic":
        params = config.hydra.sweeper.get("params")
        params = OmegaConf.to_container(params, resolve=False) if params else {}
        swept = parsed.swept([*(f"{k}={v}" for k, v in params.items()), *task])
        if tune not in swept:
            fail("summary.tune", tune, f"a key this sweep gives several values (swept: {', '.join(swept) or 'none'}),"
                                       f" e.g. -m {tune}=...,... summary.tune={tune}")  # fmt: skip


def check_arguments(key: str, target: Any, given: dict[str, Any], skip: tuple[str, ...] = ()) -> None:
    """Raise ConfigError if `given` has a keyword that `target`'s signature lacks (a misspelt +key=...)."""
    try:
        params = inspect.signature(target).parameters
    except (ValueError, TypeError):  # a builtin without a signature (torch.relu): nothing to check against
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    names = [n for n in params if n not in ("self", *skip)]
    for name in given:
        if not name.startswith("_") and name not in names:
            raise ConfigError(
                f"{key}.{name} is not an argument of {getattr(target, '__qualname__', target)}; "
                f"it takes: {', '.join(names)}"
            )

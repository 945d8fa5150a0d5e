"""The jobs of a sweep dir: the ones that ran (their records), and the ones the sweep meant to run, in its order.

A job's record is read defensively, never a traceback; each malformed part is named in one line (the file and
the field):
- a metrics.json that is not a JSON object, or whose status is not one a run writes: the job is listed as failed,
  with what was wrong as its error;
- a number that is not a number (or an accuracy outside [0, 1]), a seed that is not a seed, a choice that is not a
  name, a malformed val_history: left out (the seed and the choices then come from the job's overrides); an
  "ok" job whose test/acc is left out so is listed as failed (it has no result to show);
- a result that is NaN or inf (which the project's own records write as null, with status "diverged"): null, and
  a job that claimed "ok" or "stopped" is listed as diverged, as a run whose loss went NaN is.
"""

import logging
import math
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from initlab.errors import describe
from initlab.files import not_a_file, read_json
from initlab.run import overrides as parsed
from initlab.run.checks import SEED_MAX
from initlab.run.record import RUN_KEYS
from initlab.run.signals import failed_jobs

log = logging.getLogger(__name__)
NUMBERS = ("test/acc", "test/loss", "val/acc", "val/loss", "val/acc_best", "train/loss", "wall_time_s")
RESULTS = ("test/acc", "test/loss", "val/acc", "val/loss", "val/acc_best", "train/loss")  # NaN/inf: diverged
ACCURACIES = ("test/acc", "val/acc", "val/acc_best")  # fractions in [0, 1]
STATUSES = ("ok", "diverged", "stopped", "failed", "interrupted", "not run")  # what a run writes (run.record)


def valid_seed(seed: Any) -> bool:
    """A seed as the config allows it: an integer in [0, 2**32 - 1] (or its decimal digits, as a choice)."""
    if isinstance(seed, str):
        return seed.isascii() and seed.isdigit() and int(seed) <= SEED_MAX
    return isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= SEED_MAX


def sweep_config(sweep_dir: Path) -> DictConfig:
    """The sweep's multirun.yaml (Hydra writes it when the sweep starts), or an empty config."""
    path = sweep_dir / "multirun.yaml"
    try:
        return OmegaConf.load(path) if path.is_file() else OmegaConf.create()
    except (OSError, OmegaConfBaseException, ValueError, yaml.YAMLError) as e:
        if path not in _SAID:  # read by the table, the order and the study: said once, in one line
            _SAID.add(path)
            log.error("%s cannot be read (%s); the sweep's planned jobs are unknown", path, describe(e))
        return OmegaConf.create()


_SAID: set[Path] = set()  # multirun.yaml files already named as unreadable in this process


def excluded_keys(sweep: DictConfig) -> tuple[str, ...]:
    """Keys that do not name a job (train.yaml's hydra.job.config.override_dirname.exclude_keys)."""
    return tuple(OmegaConf.select(sweep, "hydra.job.config.override_dirname.exclude_keys", default=None) or ())


def swept_items(sweep: DictConfig) -> list[str]:
    """The sweep's `key=values` items: hydra.sweeper.params first, then the command line's (Hydra's order)."""
    node = OmegaConf.select(sweep, "hydra.sweeper.params", default=None)
    params = OmegaConf.to_container(node, resolve=False) if node is not None else {}
    return [f"{k}={v}" for k, v in params.items()] + parsed.listed(OmegaConf.select(sweep, "hydra.overrides.task"))


def _malformed(where: Path, key: str, value: Any, wanted: str) -> str:
    log.error("%s: %s is %r, not %s; left out", where, key, value, wanted)
    return f"{key} is {value!r}, not {wanted}"


def _clean(metrics: Any, where: Path) -> dict[str, Any]:
    """A job's metrics.json as a record the summary can use: malformed parts named in one line and dropped."""
    if metrics is None:
        return {"status": "failed", "error": "no metrics.json"}
    if not isinstance(metrics, dict):
        log.error("%s is not a JSON object; the job is listed as failed", where)
        return {"status": "failed", "error": "metrics.json is not a record"}
    clean, bad, not_finite = dict(metrics), {}, []
    for key in NUMBERS:  # null is a number JSON could not hold (NaN) or none taken: kept as such
        v = clean.get(key)
        if v is None:
            continue
        if not isinstance(v, int | float) or isinstance(v, bool):
            bad[key] = _malformed(where, key, clean.pop(key), "a number")
        elif not math.isfinite(v):  # JSON's NaN/Infinity: the run's own record would say null
            clean[key] = None
            if key in RESULTS:
                not_finite.append(f"{key}={v}")
            else:
                log.error("%s: %s is %r, not a finite number; left out", where, key, v)
        elif key in ACCURACIES and not 0.0 <= v <= 1.0:
            bad[key] = _malformed(where, key, clean.pop(key), "an accuracy in [0, 1]")
    seed = clean.get("seed")
    if seed is not None and not valid_seed(seed):
        bad["seed"] = _malformed(where, "seed", clean.pop("seed"), f"an integer in [0, {SEED_MAX}]")
    for key in RUN_KEYS:
        if key != "seed" and clean.get(key) is not None and not (isinstance(clean[key], str) and clean[key]):
            bad[key] = _malformed(where, key, clean.pop(key), "a name")
    history = clean.get("val_history")
    ok = isinstance(history, list) and all(
        isinstance(p, list)
        and len(p) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in p)
        for p in history
    )
    if history is not None and not ok:  # fmt: skip
        log.error("%s: val_history is malformed; left out", where)
        clean.pop("val_history")
    diag = clean.get("diagnostics")  # step 0's per-layer statistics: {"act1/act_std": 0.9, ...}
    if diag is not None and not (isinstance(diag, dict) and all(
            isinstance(k, str) and (v is None or (isinstance(v, int | float) and not isinstance(v, bool)))
            for k, v in diag.items())):  # fmt: skip
        log.error("%s: diagnostics is malformed (not a dict of numbers); left out", where)
        clean.pop("diagnostics")
    if isinstance(clean.get("wall_time_s"), int | float) and clean["wall_time_s"] < 0:
        bad["wall_time_s"] = _malformed(where, "wall_time_s", clean.pop("wall_time_s"), "seconds >= 0")
    status = clean.get("status")
    if status not in STATUSES:  # a list, a number, a word no run writes: no status to trust
        allowed = ", ".join(STATUSES)
        log.error("%s: status is %r, not one of %s; the job is listed as failed", where, status, allowed)
        why = f"status is {status!r}, not one of {allowed}"
        return clean | {"status": "failed", "error": "; ".join(["metrics.json is malformed: " + why, *bad.values()])}
    if "test/acc" in bad and status in ("ok", "stopped"):  # it claims a result it does not hold
        log.error("%s: the job is listed as failed (no test/acc to show)", where)
        return clean | {"status": "failed", "error": "metrics.json is malformed: " + "; ".join(bad.values())}
    if not_finite and status in ("ok", "stopped"):  # as the run itself judges a NaN/inf: diverged
        named = ", ".join(not_finite)
        log.error("%s: %s, not a finite number; the job is listed as diverged", where, named)
        return clean | {"status": "diverged", "reason": f"{named} in its metrics.json (not a finite number)"}
    if not_finite:
        log.error("%s: %s, not a finite number; left out", where, ", ".join(not_finite))
    return clean


def load_job(job_dir: Path, not_choices: tuple[str, ...]) -> dict[str, Any]:
    """A job dir -> {"dir", "choices", "overrides", "metrics", "status"}; one that left no metrics.json failed."""
    path = job_dir / "metrics.json"
    kind = not_a_file(path, follow=False)
    data = read_json(path) if kind is None else None
    if kind is None and data is None:
        log.error("%s is not valid JSON; the job is listed as failed", path)
        metrics = {"status": "failed", "error": "metrics.json is not valid JSON"}
    elif kind in (None, "missing"):
        metrics = _clean(data, path)
    else:  # its place is taken: the job could not write its record
        metrics = {"status": "failed", "error": f"metrics.json is {kind}: the job could not write its record"}
    overrides = read_overrides(job_dir / ".hydra" / "overrides.yaml")
    if overrides is None:  # gone or broken: the record holds the run's overrides too
        recorded = metrics.get("overrides")
        overrides = [str(o) for o in recorded] if isinstance(recorded, list) else []
    try:
        given = {k: str(v) for k, v in parsed.given(overrides).items()
                 if k not in not_choices and not k.startswith("hydra")}  # fmt: skip
    except Exception:  # a record's overrides that Hydra's grammar refuses: no swept values to match by
        given = {}
    choices = given | {k: str(metrics[k]) for k in RUN_KEYS if metrics.get(k) is not None}  # true names (a combo)
    return {"dir": job_dir.name, "choices": choices, "overrides": given, "metrics": metrics,
            "status": metrics["status"]}  # fmt: skip


def read_overrides(path: Path) -> list[str] | None:
    """A job's .hydra/overrides.yaml; None (said in a line) when it is missing or unreadable."""
    try:
        if path.is_file():
            return parsed.listed(OmegaConf.load(path))
        log.error("%s is missing; the job's swept values are taken from its record", path)
    except (OSError, OmegaConfBaseException, ValueError, TypeError, yaml.YAMLError):  # not YAML: PyYAML's own
        log.error("%s cannot be read; the job's swept values are taken from its record", path)
    return None


def expected_jobs(sweep: DictConfig) -> list[dict[str, str]]:
    """The swept values of every job the sweep meant to run (as Hydra's basic sweeper expands them)."""
    items = swept_items(sweep)
    if not items:  # no multirun.yaml: nothing to compare against
        return []
    try:
        jobs = [parsed.given(job) for job in parsed.expand(items)]
    except Exception:  # another sweeper's syntax (Optuna's intervals): nothing to compare against
        return []
    skip = excluded_keys(sweep)
    return [{k: str(v) for k, v in job.items() if k not in skip and not k.startswith("hydra.")} for job in jobs]


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One record per job dir (one holding .hydra/ or metrics.json), in the order the sweep listed the values;
    each job the sweep meant to run but that left no dir appears with status "not run" (matched one to one:
    a job that ran stands for one planned job only)."""
    sweep = sweep_config(sweep_dir)
    dirs = {p.parent.parent for p in sweep_dir.glob("*/.hydra/overrides.yaml")}
    dirs |= {p.parent for p in sweep_dir.glob("*/metrics.json")}
    skip = excluded_keys(sweep)
    jobs = [load_job(d, skip) for d in sorted(dirs)]
    failed = failed_jobs(sweep_dir)  # failed in the sweep's last run, whatever its dir holds
    for j in jobs:
        if j["dir"] in failed:
            j["metrics"], j["status"] = {"status": "failed", "error": failed[j["dir"]]}, "failed"
    unmatched = list(jobs)
    for want in expected_jobs(sweep):
        match = next((j for j in unmatched if want.items() <= j["overrides"].items()), None)
        if match is not None:  # one job that ran stands for one planned job only
            unmatched.remove(match)
            continue
        name = ",".join(f"{k}={v}" for k, v in sorted(want.items()))
        jobs.append({"dir": name, "choices": dict(want), "overrides": dict(want), "metrics": {"status": "not run"},
                     "status": "not run"})  # fmt: skip
    order = sweep_order(sweep)
    rank = {k: {v: i for i, v in enumerate(vs)} for k, vs in order.items()}
    return sorted(
        jobs, key=lambda j: [rank.get(k, {}).get(str(j["choices"].get(k)), len(vs)) for k, vs in order.items()]
    )


def sweep_order(sweep: DictConfig) -> dict[str, list[str]]:
    """{key: values in the order the sweep gave them} from the command line and hydra.sweeper.params."""
    order = {}
    try:
        for o in parsed.parse(swept_items(sweep)):
            if o.is_sweep_override():
                order[o.key_or_group] = [str(v) for v in o.sweep_string_iterator()]
    except Exception:  # another sweeper's syntax: the jobs keep their dirs' order
        return {}
    return order


def study(sweep_dir: Path) -> dict[str, Any] | None:
    """An Optuna sweep's study (hydra-optuna-sweeper, hparams_search=optuna): {name, storage, trials, best_value,
    best_params, best_trial}; None for other sweeps, or where optuna is not installed."""
    sweeper = OmegaConf.select(sweep_config(sweep_dir), "hydra.sweeper", default=None)
    if sweeper is None or "storage" not in sweeper or not sweeper.get("study_name"):
        return None
    raw = str(OmegaConf.to_container(sweeper, resolve=False)["storage"] or "")
    storage = raw.replace("${hydra.sweep.dir}", str(sweep_dir.absolute()))
    try:
        import optuna  # the optuna extra

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        found = optuna.load_study(study_name=str(sweeper.study_name), storage=storage)
        done = [t for t in found.trials if t.value is not None]
        best = (
            max(done, key=lambda t: t.value) if found.direction.name == "MAXIMIZE" else min(done, key=lambda t: t.value)
        )
    except Exception as e:  # not installed, no such study yet, or no finished trial: the table still stands
        log.warning("the sweep's Optuna study (%s) cannot be read: %s", storage, e)
        return None
    return {"name": found.study_name, "storage": storage, "trials": len(found.trials), "best_value": best.value,
            "best_params": dict(best.params), "best_trial": best.number}  # fmt: skip

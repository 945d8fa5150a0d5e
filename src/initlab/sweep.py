"""The jobs of a sweep dir: the ones that ran (their records), the ones the sweep meant to run, in its order."""

import itertools
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from initlab.record import load_job


def sweep_config(sweep_dir: Path) -> DictConfig:
    """The sweep's multirun.yaml (Hydra writes it when the sweep starts), or an empty config."""
    path = sweep_dir / "multirun.yaml"
    return OmegaConf.load(path) if path.is_file() else OmegaConf.create()


def excluded_keys(sweep: DictConfig) -> tuple[str, ...]:
    """Keys that do not name a job (train.yaml's hydra.job.config.override_dirname.exclude_keys)."""
    return tuple(OmegaConf.select(sweep, "hydra.job.config.override_dirname.exclude_keys", default=None) or ())


def _swept(sweep: DictConfig) -> list[str]:
    """The sweep's `key=values` items: from the command line and from hydra.sweeper.params."""
    items = [str(o) for o in OmegaConf.select(sweep, "hydra.overrides.task", default=None) or []]
    params = OmegaConf.select(sweep, "hydra.sweeper.params", default=None) or {}
    return items + [f"{k}={v}" for k, v in params.items()]


def expected_jobs(sweep: DictConfig) -> list[dict[str, str]]:
    """The swept values of every job the sweep meant to run (as Hydra's basic sweeper expands them)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    items = _swept(sweep)
    if not items:  # no multirun.yaml: nothing to compare against
        return []
    try:
        parsed = OverridesParser.create().parse_overrides(items)
        axes = [[(o.get_key_element().lstrip("+~"), v) for v in o.sweep_string_iterator()] if o.is_sweep_override()
                else [(o.get_key_element().lstrip("+~"), o.get_value_element_as_str())] for o in parsed]  # fmt: skip
    except Exception:  # another sweeper's syntax (Optuna's intervals): nothing to compare against
        return []
    skip = excluded_keys(sweep)
    return [
        {k: v for k, v in combo if k not in skip and not k.startswith("hydra.")} for combo in itertools.product(*axes)
    ]


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One record per job dir (one holding .hydra/ or metrics.json), in the order the sweep listed the values;
    jobs the sweep meant to run but never started appear with status "not run"."""
    sweep = sweep_config(sweep_dir)
    dirs = {p.parent.parent for p in sweep_dir.glob("*/.hydra/overrides.yaml")}
    dirs |= {p.parent for p in sweep_dir.glob("*/metrics.json")}
    skip = excluded_keys(sweep)
    jobs = [load_job(d, skip) for d in sorted(dirs)]
    for want in expected_jobs(sweep):
        if not any(want.items() <= j["overrides"].items() for j in jobs):
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
    for item in _swept(sweep):
        key, _, values = item.lstrip("+~").partition("=")
        if "," in values:
            order[key] = [v.strip() for v in values.split(",")]
    return order

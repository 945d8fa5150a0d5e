"""The jobs of a sweep dir: the ones that ran (their records), the ones the sweep meant to run, in its order."""

import itertools
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from initlab.record import load_job, parse_overrides


def excluded_keys(multirun_yaml: Path) -> tuple[str, ...]:
    """Keys that do not name a job (train.yaml's hydra.job.config.override_dirname.exclude_keys)."""
    if not multirun_yaml.is_file():
        return ()
    keys = OmegaConf.select(OmegaConf.load(multirun_yaml), "hydra.job.config.override_dirname.exclude_keys")
    return tuple(keys or ())


def expected_jobs(multirun_yaml: Path) -> list[dict[str, str]]:
    """The swept values of every job the sweep meant to run (as Hydra's basic sweeper expands them)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not multirun_yaml.is_file():
        return []
    cfg = OmegaConf.load(multirun_yaml)
    items = [str(o) for o in OmegaConf.select(cfg, "hydra.overrides.task", default=[])]
    params = OmegaConf.select(cfg, "hydra.sweeper.params", default=None) or {}
    items += [f"{k}={v}" for k, v in params.items()]
    try:
        parsed = OverridesParser.create().parse_overrides(items)
        axes = [[(o.get_key_element().lstrip("+~"), v) for v in o.sweep_string_iterator()] if o.is_sweep_override()
                else [(o.get_key_element().lstrip("+~"), o.get_value_element_as_str())] for o in parsed]  # fmt: skip
    except Exception:  # another sweeper's syntax (Optuna's intervals): nothing to compare against
        return []
    skip = excluded_keys(multirun_yaml)
    return [
        {k: v for k, v in combo if k not in skip and not k.startswith("hydra.")} for combo in itertools.product(*axes)
    ]


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One record per job dir (one holding .hydra/ or metrics.json), in the order the sweep listed the values;
    jobs the sweep meant to run but never started appear with status "not run"."""
    dirs = {p.parent.parent for p in sweep_dir.glob("*/.hydra/overrides.yaml")}
    skip = excluded_keys(sweep_dir / "multirun.yaml")
    jobs = [load_job(d, skip) for d in sorted(dirs | {p.parent for p in sweep_dir.glob("*/metrics.json")})]
    seen = [{k: v for k, v in parse_overrides(_overrides(sweep_dir / j["dir"])).items() if k not in skip} for j in jobs]
    for want in expected_jobs(sweep_dir / "multirun.yaml"):
        if not any(want.items() <= have.items() for have in seen):
            name = ",".join(f"{k}={v}" for k, v in sorted(want.items()))
            jobs.append({"dir": name, "choices": dict(want), "metrics": {"status": "not run"}, "status": "not run"})
    order = sweep_order(sweep_dir / "multirun.yaml")
    rank = {k: {v: i for i, v in enumerate(vs)} for k, vs in order.items()}
    return sorted(
        jobs, key=lambda j: [rank.get(k, {}).get(str(j["choices"].get(k)), len(vs)) for k, vs in order.items()]
    )


def _overrides(job_dir: Path) -> list[str]:
    f = job_dir / ".hydra" / "overrides.yaml"
    return [str(o) for o in OmegaConf.load(f)] if f.is_file() else []


def sweep_order(multirun_yaml: Path) -> dict[str, list[str]]:
    """{key: values in the order the sweep gave them} from the command line and hydra.sweeper.params."""
    if not multirun_yaml.is_file():
        return {}
    cfg = OmegaConf.load(multirun_yaml)
    items = [*OmegaConf.select(cfg, "hydra.overrides.task", default=[])]
    items += [f"{k}={v}" for k, v in (OmegaConf.select(cfg, "hydra.sweeper.params", default=None) or {}).items()]
    order = {}
    for item in items:
        key, _, values = str(item).lstrip("+~").partition("=")
        if "," in values:
            order[key] = [v.strip() for v in values.split(",")]
    return order

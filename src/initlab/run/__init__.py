"""The run machinery behind `initlab.run.job.run`: the Hydra entry point (cli.py), config checks, run dirs and
locks, records, resume and the trust rule for checkpoints, signals, checkpoint IO, event files, building,
fitting and evaluating. A researcher can ignore it: the science lives one level up."""

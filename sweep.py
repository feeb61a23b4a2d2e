"""Runs a grid of training runs, then writes its report.

    python3 sweep.py --config=configs/sweeps/demo.py --workdir=runs/demo

Stopped sweeps continue where they stopped when started again with the same
--workdir. Sweep config fields can be overridden like run configs, e.g.
--config.seeds='(0,)' or --config.overrides.num_epochs=4.
"""

import shlex

from absl import app, flags
from ml_collections import config_flags

from tce_jax import report, sweep

_CONFIG = config_flags.DEFINE_config_file("config", None, "Sweep config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep directory (one dir per run).")
_JOBS = flags.DEFINE_integer(
    "jobs", None, "Runs at once; default: the config's `jobs`, 0 = from the cores."
)
_DRY_RUN = flags.DEFINE_bool(
    "dry_run", False, "Only list the runs and their launch commands."
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    config = _CONFIG.value
    if _DRY_RUN.value:
        for run in sweep.expand_grid(config):
            print(run.rel_dir)
            command = sweep.launch_command(config.base_config, run, run.rel_dir)
            print("  " + shlex.join(command))
        return 0
    outcome = sweep.run_sweep(config, _WORKDIR.value, jobs=_JOBS.value)
    report.write_report(_WORKDIR.value)
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    app.run(main)

"""Where every run of a sweep stands: ``sweep.py --status``.

The states and the evidence for each are ``run_files.run_state``'s; this
module reads them for the grid recorded in sweep.json, on either executor, and
formats them: a count per state and per platform (and a line when some runs
fell back to the CPU), then one line per run with the platform it ran on, and
the end of the log of each failed run.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterable, Mapping

from tce_jax import run_environment, run_files


def sweep_status(
    sweep_dir: str | os.PathLike, *, queued: Mapping[str, str] | None = None
) -> dict[str, run_files.RunState]:
    """{rel_dir: state} of every run of the grid recorded in sweep.json, in order.

    Args:
      sweep_dir: a sweep dir, of either executor.
      queued: {rel_dir: description} of runs waiting in a cluster's queue.

    Raises:
      FileNotFoundError: the directory holds no sweep.json.
    """
    sweep_dir = pathlib.Path(sweep_dir).resolve()
    queued = queued or {}
    return {
        rel_dir: run_files.run_state(sweep_dir / rel_dir, queued=queued.get(rel_dir))
        for rel_dir in run_files.grid_runs(sweep_dir)
    }


def run_environments(
    sweep_dir: str | os.PathLike, rel_dirs: Iterable[str]
) -> dict[str, dict]:
    """{rel_dir: where the run ran} of the runs that recorded it (a run records
    it when its launch starts)."""
    sweep_dir = pathlib.Path(sweep_dir)
    environments = {
        rel_dir: run_files.read_environment(sweep_dir / rel_dir) for rel_dir in rel_dirs
    }
    return {rel_dir: env for rel_dir, env in environments.items() if env}


def format_status(
    states: Mapping[str, run_files.RunState],
    environments: Mapping[str, Mapping] | None = None,
) -> str:
    """The status as text: a count per state (and per platform), then one
    line per run, with the platform it ran on.

    Args:
      states: ``sweep_status``.
      environments: ``run_environments`` of the same runs.
    """
    environments = environments or {}
    counts = ", ".join(
        f"{sum(s.state == state for s in states.values())} {state}"
        for state in run_files.RUN_STATES
    )
    lines = [f"{len(states)} runs: {counts}"]
    lines += run_environment.platform_lines(environments)
    width = max((len(rel_dir) for rel_dir in states), default=0)
    for rel_dir, status in sorted(
        states.items(), key=lambda item: run_files.RUN_STATES.index(item[1].state)
    ):
        platform = (
            f" [{run_environment.platform_text(environments[rel_dir])}]"
            if rel_dir in environments
            else ""
        )
        lines.append(f"{status.state:<9} {rel_dir:<{width}}  {status.detail}{platform}")
        lines += [f"          | {line}" for line in status.log_tail.splitlines()]
    return "\n".join(line.rstrip() for line in lines)

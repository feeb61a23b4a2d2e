"""Where every run of a sweep stands: ``sweep.py --status``.

The states and the evidence for each are ``run_files.run_state``'s; this
module reads them for the grid recorded in sweep.json, on either executor, and
formats them: a count per state, then one line per run, with the end of the log
of each failed run.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping

from tce_jax import run_files


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


def format_status(states: Mapping[str, run_files.RunState]) -> str:
    """The status as text: a count per state, then one line per run."""
    counts = ", ".join(
        f"{sum(s.state == state for s in states.values())} {state}"
        for state in run_files.RUN_STATES
    )
    lines = [f"{len(states)} runs: {counts}"]
    width = max((len(rel_dir) for rel_dir in states), default=0)
    for rel_dir, status in sorted(
        states.items(), key=lambda item: run_files.RUN_STATES.index(item[1].state)
    ):
        lines.append(f"{status.state:<9} {rel_dir:<{width}}  {status.detail}")
        lines += [f"          | {line}" for line in status.log_tail.splitlines()]
    return "\n".join(line.rstrip() for line in lines)

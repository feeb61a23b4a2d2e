"""benchmarks/accelerator_check.py: its CPU guard, its budget and its --quick run.

The quick run goes as a user runs it, in a subprocess on one CPU device
(without the four emulated devices of conftest.py, whose partitioned programs
compile slower); its figures are not checked, only that every part ran, in
order. The guard and the budget are tested in this process with a pretended
accelerator backend and rows that advance a pretended clock.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

from benchmarks import accelerator_check

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _table_rows(output):
    """The cells of each row of the Markdown table in `output`."""
    table = output[output.index("| check |") :].splitlines()
    return [line.split(" | ") for line in table[2:] if line.startswith("| ")]


def _run_check(*args, timeout):
    """The check as a user runs it, on one CPU device."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "").replace(
        "--xla_force_host_platform_device_count=4", ""
    )
    env["JAX_PLATFORMS"] = "cpu"
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.accelerator_check", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
def test_quick_check_prints_every_row_as_it_runs_and_fills_the_cache(tmp_path):
    cache = tmp_path / "cache"
    result = _run_check("--quick", f"--compilation_cache_dir={cache}", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = _table_rows(result.stdout)
    checks = [row[0].removeprefix("| ") for row in rows]
    assert checks == ["cifar10 2 epochs", "step", "loss", "loss"]
    assert re.search(r"wall \d+ s for 2 epochs", rows[0][-1])
    step = rows[1]
    assert (step[3], step[4]) == ("bfloat16", "tce")
    # Step and host images/s are numbers, and so is their ratio.
    assert re.fullmatch(r"[\d,]+", step[5]) and re.fullmatch(r"[\d,]+", step[6])
    assert re.fullmatch(r"[\d.]+x", step[7])
    assert any(cache.iterdir()), "nothing was written to the compilation cache"


def test_full_check_on_a_cpu_backend_stops_at_once_with_one_line():
    # Were the guard to fail, the full plan would run for hours: the timeout ends it.
    result = _run_check(timeout=120)
    assert result.returncode == accelerator_check.EXIT_NO_ACCELERATOR
    assert result.stdout == ""
    # Alone: nothing that prints on start-up (TensorFlow) was imported.
    [line] = result.stderr.splitlines()
    assert line.startswith("accelerator_check: JAX's backend is the CPU")
    assert "--quick" in line


class _PretendClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _row(clock, log, cells, seconds):
    """A planned row that takes `seconds` of the pretended clock and logs its run."""

    def measure():
        log.append(cells[:3])
        clock.now += seconds
        return 100.0, 200.0, f"took {seconds}"

    return accelerator_check.PlannedRow(cells, measure)


def test_rows_the_budget_cannot_cover_are_skipped_and_say_why():
    clock, log = _PretendClock(), []
    plan = [
        (("cifar10 2 epochs", "resnet34", 128, "float32", "ce"), 12),
        (("step", "resnet18", 128, "float32", "ce"), 8),
        (("step", "resnet18", 128, "float32", "tce"), 8),
        # Estimated from the resnet18 rows (8 s), with 2 s left.
        (("step", "resnet34", 128, "float32", "ce"), 1),
        # No loss row has run: no estimate, and time is left.
        (("loss", "-", "4096x1000", "float32", "CE vs TCE"), 1.5),
        # Estimated from the first loss row (1.5 s), with 0.5 s left.
        (("loss", "-", "8192x32000", "float32", "CE vs TCE"), 1),
    ]
    rows = accelerator_check.run_within_budget(
        [_row(clock, log, cells, seconds) for cells, seconds in plan],
        30,
        clock=clock,
    )
    # Each row's line comes as soon as it is measured, before the next runs.
    first = next(rows)
    assert first.startswith("| cifar10 2 epochs | resnet34 | 128 |")
    assert "took 12" in first and "| 100 | 200 | 2.0x |" in first
    assert log == [("cifar10 2 epochs", "resnet34", 128)]
    lines = [first, *rows]
    assert log == [cells[:3] for cells, _ in plan[:3]] + [plan[4][0][:3]]
    assert (
        "skipped: needs about 8 s (the longest of the finished rows of this "
        in (lines[3])
    )
    assert "check), 2 s of --budget_s=30 left" in lines[3]
    assert "| - | - | - |" in lines[3]
    assert "took 1.5" in lines[4]
    assert (
        "skipped: needs about 2 s (the longest of the finished rows of this "
        in (lines[5])
    )
    assert "check and model), 0 s of --budget_s=30 left" in lines[5]


def test_once_the_budget_is_used_up_every_other_row_is_skipped():
    clock, log = _PretendClock(), []
    cells = [("cifar10 2 epochs", "resnet34", 128, "float32", "ce")] + [
        ("loss", "-", f"{n}x10", "float32", "CE vs TCE") for n in (1, 2)
    ]
    lines = list(
        accelerator_check.run_within_budget(
            [_row(clock, log, c, 50) for c in cells], 40, clock=clock
        )
    )
    assert len(log) == 1
    assert ["used up" in line for line in lines] == [False, True, True]
    assert "skipped: --budget_s=40 used up" in lines[1]


def test_the_full_plan_runs_the_end_to_end_row_first():
    checks = [
        row.cells[0] for row in accelerator_check.planned_rows(accelerator_check.FULL)
    ]
    assert checks == ["cifar10 2 epochs"] + ["step"] * 16 + ["loss"] * 2


def test_on_an_accelerator_backend_the_table_prints_as_rows_finish(monkeypatch, capsys):
    monkeypatch.setattr(accelerator_check.jax, "default_backend", lambda: "gpu")
    printed_before_each_row = []

    def planned_rows(plan):
        assert plan is accelerator_check.FULL

        def measure():
            printed_before_each_row.append(capsys.readouterr().out)
            return None, None, "measured"

        cells = ("loss", "-", "1x1", "float32", "CE vs TCE")
        return [accelerator_check.PlannedRow(cells, measure)] * 2

    monkeypatch.setattr(accelerator_check, "planned_rows", planned_rows)
    assert accelerator_check.main(["--budget_s=60", "--compilation_cache_dir="]) == 0
    first, second = printed_before_each_row
    assert "--budget_s=60" in first and first.rstrip().endswith("|---|")
    assert second == "| loss | - | 1x1 | float32 | CE vs TCE | - | - | - | measured |\n"


@pytest.mark.parametrize("value", ["0", "-5", "soon", "nan"])
def test_budget_must_be_positive_seconds(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        accelerator_check.main([f"--budget_s={value}", "--quick"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert f"argument --budget_s: allowed: seconds > 0, got {value!r}" in error

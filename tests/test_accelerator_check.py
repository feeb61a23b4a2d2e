"""benchmarks/accelerator_check.py: its CPU guard, its budget and its --quick run.

The quick run goes as a user runs it, in a subprocess, on six emulated CPU
devices (a device count no batch of the plan divides, as 6 GPUs); its figures
are not checked, only that every part ran, in order, with batches sized to the
devices. The guard and the budget are tested in this process with a pretended
accelerator backend and rows that advance a pretended clock.
"""

import os
import pathlib
import re
import subprocess
import sys
import time

import pytest

from benchmarks import accelerator_check

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _table_rows(output):
    """The cells of each row of the Markdown table in `output`."""
    table = output[output.index("| check |") :].splitlines()
    return [line.split(" | ") for line in table[2:] if line.startswith("| ")]


def _run_check(*args, timeout, devices=1):
    """The check as a user runs it, on `devices` emulated CPU devices."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "").replace(
        "--xla_force_host_platform_device_count=4",
        f"--xla_force_host_platform_device_count={devices}",
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
def test_quick_check_on_six_devices_sizes_the_batches_and_prints_every_row(
    tmp_path,
):
    cache = tmp_path / "cache"
    result = _run_check(
        "--quick", f"--compilation_cache_dir={cache}", timeout=600, devices=6
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (
        "batches rounded up to a multiple of the 6 devices: 16 -> 18, 128 -> 132"
        in result.stdout
    )
    rows = _table_rows(result.stdout)
    checks = [row[0].removeprefix("| ") for row in rows]
    assert checks == ["loss", "loss", "cifar10 2 epochs", "step"]
    assert not any("error:" in row[-1] for row in rows), rows
    cifar10, step = rows[2], rows[3]
    assert cifar10[2] == "132" and re.search(r"wall \d+ s for 2 epochs", cifar10[-1])
    assert (step[2], step[3], step[4]) == ("18", "bfloat16", "tce")
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


def test_every_batch_is_a_multiple_of_the_device_count():
    for devices in (1, 3, 5, 6, 7, 8, 16):
        rows = accelerator_check.planned_rows(accelerator_check.FULL, devices)
        batches = [row.cells[2] for row in rows if row.cells[0] != "loss"]
        assert all(batch % devices == 0 for batch in batches), (devices, batches)
        config = accelerator_check.cifar10_config(accelerator_check.FULL, devices)
        assert config.eval_batch_size % devices == 0
    assert accelerator_check.sized_batch(128, 6) == 132
    assert accelerator_check.batch_sizing_note(accelerator_check.FULL, 8) is None


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


def test_rows_the_budget_cannot_cover_are_skipped_and_say_why(monkeypatch):
    clock, log = _PretendClock(), []
    plan = [
        # No loss row has run: the allowance for a first one (20 s) fits.
        (("loss", "-", "4096x1000", "float32", "CE vs TCE"), 1.5),
        (("cifar10 2 epochs", "resnet34", 128, "float32", "ce"), 12),
        (("step", "resnet18", 128, "float32", "ce"), 8),
        (("step", "resnet18", 128, "float32", "tce"), 8),
        # Estimated from the resnet18 rows (8 s), with 1.5 s left.
        (("step", "resnet34", 128, "float32", "ce"), 1),
        # Estimated from the first loss row (1.5 s), with 1.5 s left: it fits.
        (("loss", "-", "8192x32000", "float32", "CE vs TCE"), 1),
    ]
    monkeypatch.setitem(accelerator_check.FIRST_ROW_SECONDS, "cifar10 2 epochs", 12)
    monkeypatch.setitem(accelerator_check.FIRST_ROW_SECONDS, "step", 8)
    rows = accelerator_check.run_within_budget(
        [_row(clock, log, cells, seconds) for cells, seconds in plan],
        31,
        clock=clock,
    )
    # Each row's line comes as soon as it is measured, before the next runs.
    first = next(rows)
    assert first.startswith("| loss | - | 4096x1000 |")
    assert "took 1.5" in first and "| 100 | 200 | 2.0x |" in first
    assert log == [plan[0][0][:3]]
    lines = [first, *rows]
    assert log == [cells[:3] for cells, _ in plan[:4]] + [plan[5][0][:3]]
    assert (
        "skipped: needs about 8 s (the longest of the finished rows of this "
        "check), 2 s of --budget_s=31 left" in lines[4]
    )
    assert "| - | - | - |" in lines[4]
    assert "took 1" in lines[5]


def test_a_first_row_whose_allowance_does_not_fit_is_skipped():
    clock, log = _PretendClock(), []
    clock.now = 200.0  # Start-up and loss rows took 200 s of a 420 s budget.
    cells = ("cifar10 2 epochs", "resnet34", 128, "float32", "ce")
    [line] = accelerator_check.run_within_budget(
        [_row(clock, log, cells, 100)], 420, clock=clock, start=0.0
    )
    assert not log
    assert (
        "skipped: needs about 240 s (the allowance for a first row of this check), "
        "220 s of --budget_s=420 left" in line
    )


def test_a_row_that_fails_prints_its_error_and_the_check_goes_on():
    clock, log = _PretendClock(), []

    def out_of_memory():
        clock.now += 3
        raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory\nallocating 8 GiB")

    rows = [
        accelerator_check.PlannedRow(
            ("step", "resnet34", 512, "float32", "ce"), out_of_memory
        ),
        _row(clock, log, ("step", "resnet34", 512, "float32", "tce"), 5),
    ]
    lines = list(accelerator_check.run_within_budget(rows, 200, clock=clock))
    assert lines[0] == (
        "| step | resnet34 | 512 | float32 | ce | - | - | - | error: RuntimeError: "
        "RESOURCE_EXHAUSTED: Out of memory |"
    )
    assert "took 5" in lines[1]


# Row times of the full plan on one GPU of a T4's speed (simulated),
# compilation included; the test scales them for faster and slower GPUs.
SIMULATED_ROW_SECONDS = {
    "loss": 12,
    "cifar10 2 epochs": 230,
    ("step", "resnet18"): 70,
    ("step", "resnet34"): 100,
}


@pytest.mark.parametrize("speed", [1.0, 0.4, 1.25], ids=["t4", "a100", "slower"])
def test_a_420_second_budget_fits_an_8_minute_loan_with_the_loss_rows_first(speed):
    """With simulated row times (and a start-up of 30 s, which the budget
    counts), the whole check ends within 8 minutes of its start."""
    clock, log = _PretendClock(), []
    clock.now = 30.0
    rows = []
    for row in accelerator_check.planned_rows(accelerator_check.FULL, 1):
        check, model = row.cells[:2]
        seconds = (
            SIMULATED_ROW_SECONDS.get(check) or SIMULATED_ROW_SECONDS[check, model]
        )
        rows.append(_row(clock, log, row.cells, seconds * speed))
    lines = list(accelerator_check.run_within_budget(rows, 420, clock=clock, start=0.0))
    assert clock.now <= 8 * 60, clock.now
    assert len(lines) == len(rows)
    # The quick loss rows ran first, then the end-to-end row.
    assert [cells[0] for cells in log[:3]] == ["loss", "loss", "cifar10 2 epochs"]


def test_once_the_budget_is_used_up_every_other_row_is_skipped():
    clock, log = _PretendClock(), []
    cells = [("loss", "-", f"{n}x10", "float32", "CE vs TCE") for n in (1, 2, 3)]
    lines = list(
        accelerator_check.run_within_budget(
            [_row(clock, log, c, 50) for c in cells], 40, clock=clock
        )
    )
    assert len(log) == 1
    assert ["used up" in line for line in lines] == [False, True, True]
    assert "skipped: --budget_s=40 used up" in lines[1]


def test_the_full_plan_runs_the_quick_loss_rows_then_the_end_to_end_row_first():
    checks = [
        row.cells[0]
        for row in accelerator_check.planned_rows(accelerator_check.FULL, 8)
    ]
    assert checks == ["loss"] * 2 + ["cifar10 2 epochs"] + ["step"] * 16


def test_on_an_accelerator_backend_the_table_prints_as_rows_finish(monkeypatch, capsys):
    monkeypatch.setattr(accelerator_check.jax, "default_backend", lambda: "gpu")
    # The budget counts from the script's start, here from now.
    monkeypatch.setattr(accelerator_check, "STARTED", time.monotonic())
    printed_before_each_row = []

    def planned_rows(plan, num_devices):
        assert plan is accelerator_check.FULL
        assert num_devices == accelerator_check.jax.device_count()

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

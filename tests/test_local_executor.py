"""Tests of the local executor: runs at once, failures, resume, progress, GPUs."""

import pytest
from sweep_fakes import FakeRunner, make_sweep_config, no_preparation

from tce_jax import local_executor, run_files


def test_failed_run_is_reported_and_does_not_stop_the_sweep(base_config_path, tmp_path):
    config = make_sweep_config(base_config_path, jobs=2)
    bad = "fashion_mnist/symmetric-0/ce/seed0"
    messages = []
    outcome = local_executor.run_sweep(
        config,
        tmp_path,
        runner=FakeRunner(fail={bad}),
        preparer=no_preparation,
        log=messages.append,
    )
    assert outcome.failed == [bad] and len(outcome.finished) == 7
    assert not outcome.ok
    assert "boom" in (tmp_path / bad / run_files.ERROR_FILE).read_text()
    assert any("FAILED" in message and bad in message for message in messages)

    # A later attempt that succeeds clears the error record.
    outcome = local_executor.run_sweep(
        config, tmp_path, runner=FakeRunner(), preparer=no_preparation, log=print
    )
    assert outcome.finished == [bad] and outcome.ok
    assert not (tmp_path / bad / run_files.ERROR_FILE).exists()


def test_unfinished_run_resumes_in_its_own_dir(base_config_path, tmp_path):
    config = make_sweep_config(base_config_path, seeds=(0,), noise_rates=(0.4,))
    partial = "fashion_mnist/symmetric-0.4/ce/seed0"
    first = FakeRunner(stop_after_epoch={partial: 1})
    outcome = local_executor.run_sweep(
        config, tmp_path, runner=first, preparer=no_preparation, log=print
    )
    assert outcome.failed == [partial]
    assert run_files.epochs_done(tmp_path / partial) == 1

    second = FakeRunner()
    messages = []
    outcome = local_executor.run_sweep(
        config, tmp_path, runner=second, preparer=no_preparation, log=messages.append
    )
    assert second.calls == [(partial, second.calls[0][1], 1)]
    assert outcome.finished == [partial] and outcome.skipped
    assert any("resuming after epoch 1" in message for message in messages)
    assert run_files.epochs_done(tmp_path / partial) == 2


def test_jobs_get_disjoint_core_slices():
    assert local_executor.core_slices(1, [0, 1]) == [(0, 1)]
    assert local_executor.core_slices(2, [0, 1]) == [(0,), (1,)]
    assert local_executor.core_slices(2, [0, 1, 2, 3, 4]) == [(0, 1), (2, 3)]
    assert local_executor.core_slices(3, [0, 1]) == [(0,), (1,), (0,)]
    assert [local_executor.default_jobs(n) for n in (1, 2, 8, 64)] == [1, 2, 8, 8]


def test_eta_extrapolates_from_logged_epochs_then_from_finished_runs():
    fractions = {"a": 0.5, "b": 0.0}
    progress = local_executor.SweepProgress(4, 0, 2, print, fraction_done=fractions.get)
    assert progress.eta_seconds() is None
    progress.start("a", 0)
    progress.start("b", 0)
    progress.running["a"] -= 100  # "a" started 100 s ago and is half done.
    # ~200 s per run: a has 100 s left, b 200 s, two more wait: (100+200+400)/2.
    assert progress.eta_seconds() == pytest.approx(350, rel=0.01)
    progress.end("a", "done")
    assert progress.durations[0] == pytest.approx(100, rel=0.01)

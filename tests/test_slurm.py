"""Tests of the SLURM executor (submitit).

The submitit tests run real jobs on submitit's local executor (the code path of
--executor=slurm, without a cluster) and fake sbatch and sacct for what only a
SLURM cluster does; one runs a small grid of real launch.py runs through
sweep.py end to end.
"""

import json
import os
import pathlib
import signal

import pytest
from sweep_fakes import (
    FakeRunner,
    SlowRunner,
    make_sweep_config,
    no_preparation,
    sweep_py,
    wait_for,
)

from tce_jax import grid, report_tables, run_files, slurm, sweep_status


def test_slurm_resources_come_from_the_sweep_config_then_the_flags():
    resources = slurm.resources_from(
        {"partition": "cpu", "time_min": 60, "parameters": {"qos": "low"}},
        {"time_min": 30, "gpus_per_task": 1},
        cluster="slurm",
    )
    assert resources == slurm.Resources(
        partition="cpu", time_min=30, gpus_per_task=1, parameters={"qos": "low"}
    )
    with pytest.raises(slurm.ResourceError, match=r"^slurm.nodes in the sweep"):
        slurm.resources_from({"nodes": 2}, {}, cluster="slurm")
    with pytest.raises(slurm.ResourceError, match=r"^--slurm_time_min: required"):
        slurm.resources_from({}, {}, cluster="local")
    with pytest.raises(slurm.ResourceError, match=r"^--slurm_cpus_per_task: got 0"):
        slurm.resources_from({"time_min": 1, "cpus_per_task": 0}, {}, cluster="local")


# ----------------------------------------------------------------------------
# Sweeps through submitit.

LOCAL_JOBS = slurm.Resources(time_min=10)


@pytest.fixture
def jobs_import_this_module(monkeypatch):
    """submitit jobs unpickle this module's fake runners: put tests/ on their path."""
    paths = [str(pathlib.Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, paths)))


@pytest.mark.slow
def test_submitit_sweep_runs_each_run_as_a_job_and_resubmits_the_unfinished(
    base_config_path, tmp_path, jobs_import_this_module
):
    config = make_sweep_config(base_config_path, seeds=(0,), noise_rates=(0.4,))
    bad, good = (
        "fashion_mnist/symmetric-0.4/ce/seed0",
        "fashion_mnist/symmetric-0.4/tce-alpha0.01/seed0",
    )

    def submit(runner):
        return slurm.submit_sweep(
            config,
            tmp_path,
            cluster="local",
            resources=LOCAL_JOBS,
            wait=True,
            runner=runner,
            preparer=no_preparation,
            log=print,
        )

    outcome = submit(FakeRunner(fail={bad}))
    assert outcome.submitted == [bad, good]
    assert outcome.failed == [bad] and outcome.finished == [good]
    record = json.loads((tmp_path / good / run_files.JOB_FILE).read_text())
    assert record["cluster"] == "local"
    submitit_log = f"{record['job_id']}_0_log.out"
    assert (tmp_path / run_files.SUBMITIT_DIR / submitit_log).exists()
    statuses = sweep_status.sweep_status(tmp_path)
    assert (
        statuses[bad].state == "failed" and statuses[bad].log_tail == "Traceback: boom"
    )

    # Resubmitted: the finished run is skipped, the failed one runs again.
    outcome = submit(FakeRunner())
    assert outcome.skipped == [good] and outcome.submitted == [bad]
    assert outcome.finished == [bad] and outcome.ok
    assert not (tmp_path / bad / run_files.ERROR_FILE).exists()
    outcome = submit(FakeRunner())
    assert len(outcome.skipped) == 2 and not outcome.submitted


@pytest.mark.slow
def test_preempted_submitit_job_is_requeued_and_resumes(
    base_config_path, tmp_path, jobs_import_this_module
):
    config = make_sweep_config(
        base_config_path,
        seeds=(0,),
        noise_rates=(0.4,),
        losses=({"name": "ce"},),
        overrides={"num_epochs": 6},
    )
    run_dir = tmp_path / "fashion_mnist/symmetric-0.4/ce/seed0"
    outcome = slurm.submit_sweep(
        config,
        tmp_path,
        cluster="local",
        resources=LOCAL_JOBS,
        wait=False,
        runner=SlowRunner(seconds=0.4),
        preparer=no_preparation,
        log=print,
    )
    assert outcome.submitted == ["fashion_mnist/symmetric-0.4/ce/seed0"]
    wait_for(lambda: run_files.epochs_done(run_dir) >= 2, "epoch 2")
    # What SLURM does before preempting a job or at its time limit.
    task = json.loads((run_dir / run_files.HEARTBEAT_FILE).read_text())["pid"]
    os.kill(task, signal.SIGUSR2)
    wait_for(lambda: run_files.is_finished(run_dir), "the requeued job")
    epochs = [
        json.loads(line)["epoch"] for line in open(run_dir / run_files.METRICS_FILE)
    ]
    assert epochs == [1, 2, 3, 4, 5, 6]
    starts = (run_dir / run_files.LOG_FILE).read_text().splitlines()
    assert starts[0] == "start after epoch 0" and len(starts) == 2
    assert int(starts[1].removeprefix("start after epoch ")) >= 2
    wait_for(lambda: not run_files.is_running(run_dir), "the job to end")


def test_slurm_job_array_asks_for_the_resources_and_resubmission_skips_live_jobs(
    base_config_path, tmp_path, monkeypatch
):
    """sbatch, sacct and srun are fakes: what reaches SLURM, what it answers."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(
        f'#!/bin/sh\ncat "$1" >> {tmp_path}/sbatch_scripts\n'
        "echo Submitted batch job 4242\n"
    )
    # Run 0's job still waits in the queue; run 1's was cancelled.
    (bin_dir / "sacct").write_text(
        "#!/bin/sh\nprintf 'JobID|State|NodeList\\n4242_0|PENDING|\\n"
        "4242_1|CANCELLED|n1\\n'\n"
    )
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")  # submitit looks for it.
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    config = make_sweep_config(base_config_path, seeds=(0,), noise_rates=(0.4,))
    resources = slurm.Resources(
        partition="gpu",
        time_min=90,
        cpus_per_task=4,
        gpus_per_task=1,
        array_parallelism=1,
        parameters={"account": "tce"},
    )

    def submit():
        return slurm.submit_sweep(
            config,
            tmp_path / "sweep",
            cluster="slurm",
            resources=resources,
            wait=False,
            preparer=no_preparation,
            log=print,
        )

    outcome = submit()
    runs = outcome.submitted
    assert len(runs) == 2
    script = (tmp_path / "sbatch_scripts").read_text()
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --time=90",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --array=0-1%1",
        "#SBATCH --account=tce",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --signal=USR2@90",
    ):
        assert line in script.splitlines(), line
    assert [
        json.loads((tmp_path / "sweep" / rel / run_files.JOB_FILE).read_text())[
            "job_id"
        ]
        for rel in runs
    ] == ["4242_0", "4242_1"]

    statuses = sweep_status.sweep_status(
        tmp_path / "sweep", queued=slurm.queued_runs(tmp_path / "sweep")
    )
    assert [(s.state, s.detail) for s in statuses.values()] == [
        ("queued", "slurm job 4242_0 PENDING"),
        ("missing", "not started"),
    ]
    outcome = submit()
    assert outcome.busy == [runs[0]] and outcome.submitted == [runs[1]]


TINY_SWEEP = """
import ml_collections


def get_config():
    config = ml_collections.ConfigDict()
    config.base_config = "configs/cpu_smoke.py"
    config.overrides = {
        "data": {"train_subset": 64},
        "model": {"width_multiplier": 0.25},
        "batch_size": 32,
        "eval_batch_size": 1000,
        "num_epochs": 1,
    }
    config.datasets = ("fashion_mnist",)
    config.noise_kinds = ("symmetric",)
    config.noise_rates = (0.4,)
    config.losses = ({"name": "ce"}, {"name": "tce"})
    config.seeds = (0,)
    config.jobs = 0
    return config
"""


@pytest.mark.slow
def test_sweep_py_on_submitit_runs_launch_py_reports_and_skips_finished_runs(
    tmp_path,
):
    """Two tiny real runs as jobs on submitit's local executor, through sweep.py."""
    config_path = tmp_path / "tiny_sweep.py"
    config_path.write_text(TINY_SWEEP)
    sweep_dir = tmp_path / "sweep"
    result = sweep_py(
        f"--config={config_path}",
        f"--workdir={sweep_dir}",
        "--executor=submitit_local",
        "--slurm_time_min=10",
        "--wait",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = report_tables.collect(sweep_dir)
    assert [row["loss"] for row in rows] == ["ce", "tce"]
    assert [row["status"] for row in rows] == [run_files.FINISHED] * 2
    assert (sweep_dir / "report" / "results.csv").exists()
    for row in rows:
        run_dir = sweep_dir / row["run"]
        # The local sweep's files: the same launch.py command, its log and times.
        assert "launch.py" in (run_dir / run_files.COMMAND_FILE).read_text()
        assert "Resumed" not in (run_dir / run_files.LOG_FILE).read_text()
        assert (
            json.loads((run_dir / run_files.TIMING_FILE).read_text())["exit_code"] == 0
        )
        # Where it ran, recorded by the launch in the sweep's run.json too.
        environment = run_files.read_summary(run_dir)[run_files.ENVIRONMENT_KEY]
        info = json.loads((run_dir / run_files.RUN_INFO_FILE).read_text())
        assert info[run_files.ENVIRONMENT_KEY] == environment
        assert info["loss"] == row["loss"]

    # Resubmitted: nothing is left to run, so nothing is submitted.
    outcome = slurm.submit_sweep(
        grid.load_config_file(config_path),
        sweep_dir,
        cluster="local",
        resources=LOCAL_JOBS,
        wait=True,
        preparer=no_preparation,
        log=print,
    )
    assert len(outcome.skipped) == 2 and not outcome.submitted

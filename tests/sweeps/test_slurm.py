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

from tce_jax import run_files
from tce_jax.analysis import report_tables
from tce_jax.sweeps import grid, slurm, sweep_status


def test_slurm_resources_come_from_the_sweep_config_then_the_flags():
    resources = slurm.resources_from(
        {"partition": "cpu", "time_min": 60, "parameters": {"qos": "low"}},
        {"time_min": 30, "gpus_per_task": 1},
        cluster="slurm",
    )
    # One GPU brings its CPUs.
    assert resources == slurm.Resources(
        partition="cpu",
        time_min=30,
        cpus_per_task=slurm.CPUS_PER_GPU,
        gpus_per_task=1,
        parameters={"qos": "low"},
    )
    with pytest.raises(slurm.ResourceError, match=r"^slurm.nodes in the sweep"):
        slurm.resources_from({"nodes": 2}, {}, cluster="slurm")
    with pytest.raises(slurm.ResourceError, match=r"^--slurm_time_min: required"):
        slurm.resources_from({}, {}, cluster="local")
    with pytest.raises(slurm.ResourceError, match=r"^--slurm_cpus_per_task: got 0"):
        slurm.resources_from({"time_min": 1, "cpus_per_task": 0}, {}, cluster="local")


def _resources(flags, has_gpus=lambda partition: partition == "gpu"):
    return slurm.resources_from(
        None, {"time_min": 60, **flags}, cluster="slurm", has_gpus=has_gpus
    )


def test_a_gpu_partition_gets_a_gpu_and_its_cpus_unless_told_otherwise():
    gpu = _resources({"partition": "gpu"})
    assert (gpu.gpus_per_task, gpu.cpus_per_task) == (1, 4)
    cpu = _resources({"partition": "cpu"})
    assert (cpu.gpus_per_task, cpu.cpus_per_task) == (0, 1)
    on_purpose = _resources({"partition": "gpu", "gpus_per_task": 0})
    assert (on_purpose.gpus_per_task, on_purpose.cpus_per_task) == (0, 1)
    two = _resources({"partition": "gpu", "gpus_per_task": 2})
    assert (two.gpus_per_task, two.cpus_per_task) == (2, 8)
    told = _resources({"partition": "gpu", "cpus_per_task": 16})
    assert (told.gpus_per_task, told.cpus_per_task) == (1, 16)
    assert gpu.describe() == (
        "each run asks for: partition gpu, 1 GPU(s), 4 CPU(s), 60 min"
    )


def test_a_gpu_request_among_the_parameters_counts_once():
    typed = _resources({"partition": "p", "parameters": {"gres": "gpu:a100:2"}})
    assert (typed.gpus_per_task, typed.cpus_per_task) == (2, 8)
    assert _resources({"partition": "p", "parameters": {"gres": "gpu"}}).gpus_per_task
    assert slurm.requested_gpus({"gpus-per-node": "h100:3"}) == 3
    assert slurm.requested_gpus({"gres": "nvme:1", "account": "x"}) is None
    with pytest.raises(slurm.ResourceError, match="ask for the GPUs once"):
        _resources({"partition": "p", "gpus_per_task": 1, "parameters": {"gpus": "1"}})


def _fake_commands(bin_dir, monkeypatch, **scripts):
    """Shell scripts standing in for SLURM's commands, first on PATH."""
    bin_dir.mkdir(exist_ok=True)
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


@pytest.mark.parametrize(
    ("gres", "partition", "expected"),
    [
        ("gpu:a100:8(S:0-1)\n(null)", "accel", True),  # GRES, whatever the name.
        ("(null)", "gpu_debug", False),
        ("", "gpu_debug", True),  # No such partition in sinfo: its name.
    ],
)
def test_partition_gpus_come_from_sinfo_else_the_name(
    tmp_path, monkeypatch, gres, partition, expected
):
    _fake_commands(tmp_path, monkeypatch, sinfo=f"printf '{gres}'")
    assert slurm.partition_has_gpus(partition) is expected


# ----------------------------------------------------------------------------
# Sweeps through submitit.

LOCAL_JOBS = slurm.Resources(time_min=10)


@pytest.fixture
def jobs_import_this_module(monkeypatch):
    """submitit jobs unpickle this module's fake runners: put tests/ on their path."""
    paths = [str(pathlib.Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
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
            allow_local_paths=True,  # The test's sweep dir is under /tmp.
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


def test_the_default_gpu_job_asks_sbatch_for_a_gpu_and_its_cpus(
    base_config_path, tmp_path, monkeypatch
):
    """The sweep.py example: --executor=slurm --slurm_partition=gpu, no GPU flag."""
    _fake_commands(
        tmp_path / "bin",
        monkeypatch,
        sbatch=f'cat "$1" >> {tmp_path}/sbatch_scripts\necho Submitted batch job 7',
        sacct="printf 'JobID|State|NodeList\\n'",
        srun="exit 1",
        sinfo="printf 'gpu:a100:8'",
    )
    resources = slurm.resources_from(
        None, {"partition": "gpu", "time_min": 120}, cluster="slurm"
    )
    slurm.submit_sweep(
        make_sweep_config(base_config_path, seeds=(0,), noise_rates=(0.4,)),
        tmp_path / "sweep",
        cluster="slurm",
        resources=resources,
        wait=False,
        allow_local_paths=True,
        preparer=no_preparation,
        log=print,
    )
    script = (tmp_path / "sbatch_scripts").read_text().splitlines()
    assert "#SBATCH --gpus-per-node=1" in script
    assert "#SBATCH --cpus-per-task=4" in script


def test_node_local_paths_are_refused_before_any_work(
    base_config_path, tmp_path, monkeypatch
):
    _fake_commands(tmp_path / "bin", monkeypatch, sbatch="exit 1", srun="exit 1")
    config = make_sweep_config(base_config_path, seeds=(0,), noise_rates=(0.4,))
    config.overrides = {**config.overrides, "data": {"data_dir": "/tmp/tfds"}}
    sweep_dir = tmp_path / "sweep"
    with pytest.raises(slurm.SubmissionError) as raised:
        slurm.submit_sweep(
            config,
            sweep_dir,
            cluster="slurm",
            resources=slurm.Resources(partition="cpu", time_min=10),
            wait=False,
            preparer=no_preparation,
            log=print,
        )
    message = str(raised.value)
    assert message.startswith(
        "--executor=slurm: node-local paths, which the nodes running the tasks "
        "would not see: "
    )
    # (A checkout or environment under /tmp, as in a throwaway CI clone, is
    # named first; the paths this test sets follow.)
    assert (
        "the data dir /tmp/tfds (/tmp/tfds, under /tmp); the sweep "
        f"dir ({sweep_dir}, under /tmp). "
    ) in message
    assert "--slurm_allow_local_paths" in message and "\n" not in message
    assert not sweep_dir.exists()


def test_without_slurm_or_when_sbatch_refuses_one_line(
    base_config_path, tmp_path, monkeypatch
):
    config = make_sweep_config(base_config_path, seeds=(0,), noise_rates=(0.4,))

    def submit():
        slurm.submit_sweep(
            config,
            tmp_path / "sweep",
            cluster="slurm",
            resources=slurm.Resources(partition="gpux", time_min=10),
            wait=False,
            allow_local_paths=True,
            preparer=no_preparation,
            log=print,
        )

    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(slurm.SubmissionError) as raised:
        submit()
    assert str(raised.value) == (
        "--executor=slurm: sbatch and srun not found on this machine, so it cannot "
        "submit SLURM jobs; run sweep.py on the cluster's login node, or use "
        "--executor=local"
    )
    _fake_commands(
        tmp_path / "bin",
        monkeypatch,
        sbatch="echo 'sbatch: error: invalid partition specified: gpux' >&2; exit 1",
        srun="exit 1",
        sacct="exit 1",
    )
    with pytest.raises(slurm.SubmissionError) as raised:
        submit()
    assert str(raised.value) == (
        "sbatch refused the job array (sbatch: error: invalid partition specified: "
        "gpux); no run was submitted: check the --slurm_* flags (partition, time, "
        "GPUs, account)"
    )

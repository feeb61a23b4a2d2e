"""Tests of the local executor: runs at once, failures, resume, progress, GPUs."""

import json
import os

import pytest
from sweep_fakes import FakeRunner, make_sweep_config, no_preparation

from tce_jax import run_files
from tce_jax.sweeps import grid, local_executor, sweep_plan


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


# ----------------------------------------------------------------------------
# GPUs: the device list is faked; each run's process environment is checked.


def test_gpus_are_counted_from_the_environment_or_nvidia_smi(tmp_path, monkeypatch):
    def listed():
        return ["0", "1", "2"]

    assert local_executor.visible_gpus({}, listed) == ["0", "1", "2"]
    assert local_executor.visible_gpus({"CUDA_VISIBLE_DEVICES": "3,1"}, listed) == [
        "3",
        "1",
    ]
    for hidden in ("", "-1", "-1,0"):
        env = {"CUDA_VISIBLE_DEVICES": hidden}
        assert local_executor.visible_gpus(env, listed) == []
    assert local_executor.visible_gpus({"JAX_PLATFORMS": "cpu"}, listed) == []
    assert local_executor.visible_gpus({"JAX_PLATFORMS": "cuda,cpu"}, listed) == [
        "0",
        "1",
        "2",
    ]
    # What nvidia-smi -L prints, MIG devices indented under their GPU.
    fake = tmp_path / "nvidia-smi"
    fake.write_text(
        "#!/bin/sh\necho 'GPU 0: NVIDIA A100 (UUID: GPU-a)'\n"
        "echo '  MIG 1g.5gb Device 0: (UUID: MIG-b)'\n"
        "echo 'GPU 1: NVIDIA A100 (UUID: GPU-c)'\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert local_executor.visible_gpus({}) == ["0", "1"]
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert local_executor.visible_gpus({}) == []


def test_slots_give_one_run_per_gpu_share_gpus_or_give_all_gpus():
    cpus = [0, 1, 2, 3]
    default = local_executor.plan_slots(0, 10, cpus=cpus, gpus=[])
    assert len(default) == local_executor.default_jobs()
    cpu_slots = local_executor.plan_slots(4, 10, cpus=cpus, gpus=[])
    assert [slot.env for slot in cpu_slots] == [{}] * 4
    assert [slot.cores for slot in cpu_slots] == [(0,), (1,), (2,), (3,)]

    one_each = local_executor.plan_slots(0, 10, cpus=cpus, gpus=["0", "1"])
    assert [slot.env for slot in one_each] == [
        {"CUDA_VISIBLE_DEVICES": "0"},
        {"CUDA_VISIBLE_DEVICES": "1"},
    ]
    assert [slot.cores for slot in one_each] == [(0, 1), (2, 3)]
    # Asking for fewer runs at once, or having fewer runs, uses fewer GPUs;
    # asking for more than the GPUs hold is capped (they would collide).
    assert len(local_executor.plan_slots(1, 10, cpus=cpus, gpus=["0", "1"])) == 1
    assert len(local_executor.plan_slots(0, 1, cpus=cpus, gpus=["0", "1"])) == 1
    assert len(local_executor.plan_slots(8, 10, cpus=cpus, gpus=["0", "1"])) == 2

    shared = local_executor.plan_slots(
        0, 10, cpus=cpus, gpus=["0", "1"], runs_per_gpu=2
    )
    assert [slot.env["CUDA_VISIBLE_DEVICES"] for slot in shared] == [
        "0",
        "1",
        "0",
        "1",
    ]
    assert all(
        slot.env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
        and slot.env["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.450"
        for slot in shared
    )
    everything = local_executor.plan_slots(
        0, 10, cpus=cpus, gpus=["0", "1"], all_gpus_per_run=True
    )
    assert [(slot.cores, slot.env) for slot in everything] == [
        ((0, 1, 2, 3), {"CUDA_VISIBLE_DEVICES": "0,1"})
    ]


ENV_DUMPING_LAUNCH = """
import json, os, pathlib, sys, time
workdir = pathlib.Path(sys.argv[-1].removeprefix('--workdir='))
names = ('CUDA_VISIBLE_DEVICES', 'XLA_PYTHON_CLIENT_PREALLOCATE',
         'XLA_PYTHON_CLIENT_MEM_FRACTION', 'OMP_NUM_THREADS')
env = {name: os.environ.get(name) for name in names}
(workdir / 'env.json').write_text(json.dumps(env))
time.sleep(0.5)  # Long enough for the runs of one wave to overlap.
(workdir / 'summary.json').write_text('{}')
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("options", "slots", "expected"),
    [
        ({}, 2, {"0": {"OMP_NUM_THREADS": "1"}, "1": {"OMP_NUM_THREADS": "1"}}),
        (
            {"runs_per_gpu": 2},
            4,
            {
                gpu: {
                    "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
                    "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.450",
                }
                for gpu in ("0", "1")
            },
        ),
        ({"all_gpus_per_run": True}, 1, {"0,1": {"OMP_NUM_THREADS": "2"}}),
    ],
)
def test_each_launch_sees_only_its_gpus(
    options, slots, expected, base_config_path, tmp_path, monkeypatch
):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    monkeypatch.setattr(sweep_plan, "available_cpus", lambda: [0, 1])
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cores: None)
    fake_launch = tmp_path / "fake_launch.py"
    fake_launch.write_text(ENV_DUMPING_LAUNCH)
    monkeypatch.setattr(grid, "LAUNCH_SCRIPT", fake_launch)
    messages = []
    outcome = local_executor.run_sweep(
        make_sweep_config(base_config_path, jobs=0),
        tmp_path / "sweep",
        gpus=["0", "1"],
        preparer=no_preparation,
        log=messages.append,
        **options,
    )
    assert outcome.ok and len(outcome.finished) == 8
    envs = [
        json.loads(path.read_text()) for path in (tmp_path / "sweep").rglob("env.json")
    ]
    assert len(envs) == 8
    assert {env["CUDA_VISIBLE_DEVICES"] for env in envs} == set(expected)
    for env in envs:
        for name, value in expected[env["CUDA_VISIBLE_DEVICES"]].items():
            assert env[name] == value, (name, env)
        if "runs_per_gpu" not in options:
            assert env["XLA_PYTHON_CLIENT_PREALLOCATE"] is None
    assert f"  {slots} at a time, on GPUs" in "\n".join(messages)


class _RunnerOn(FakeRunner):
    """A FakeRunner whose runs record that they ran on `platform`, as launch.py
    records where it runs when it starts."""

    def __init__(self, platform):
        super().__init__()
        self.platform = platform

    def __call__(self, run, run_dir, slot):
        environment = {"platform": self.platform, "device_count": 1}
        run_files.record_environment(run_dir, environment | {"device_kind": "cpu"})
        return super().__call__(run, run_dir, slot)


def test_runs_given_a_gpu_that_ran_on_the_cpu_are_told_in_one_line(
    base_config_path, tmp_path
):
    messages = []
    outcome = local_executor.run_sweep(
        make_sweep_config(base_config_path, jobs=0),
        tmp_path,
        gpus=["0", "1"],
        runner=_RunnerOn("cpu"),
        preparer=no_preparation,
        log=messages.append,
    )
    assert outcome.ok
    told = [m for m in messages if "runs on the CPU although it was given GPU" in m]
    assert len(told) == 1, messages
    assert (
        "JAX cannot use the GPUs (a CPU-only jaxlib, or a driver problem" in (told[0])
    )
    # Runs on the GPUs they were given, or on a CPU machine: nothing to tell.
    for gpus, platform in ((["0"], "gpu"), ([], "cpu")):
        messages = []
        local_executor.run_sweep(
            make_sweep_config(base_config_path, jobs=0),
            tmp_path / f"{platform}{len(gpus)}",
            gpus=gpus,
            tpu_chips=0,
            runner=_RunnerOn(platform),
            preparer=no_preparation,
            log=messages.append,
        )
        assert not any("although it was given GPU" in m for m in messages)


def test_a_tpu_vm_runs_one_run_at_a_time_unless_told_otherwise(
    base_config_path, tmp_path, monkeypatch
):
    monkeypatch.setattr(sweep_plan, "available_cpus", lambda: [0, 1, 2, 3])
    config = make_sweep_config(base_config_path, jobs=0)  # One per core elsewhere.
    messages = []
    runner = FakeRunner()
    local_executor.run_sweep(
        config,
        tmp_path / "default",
        gpus=[],
        tpu_chips=4,
        runner=runner,
        preparer=no_preparation,
        log=messages.append,
    )
    assert "  1 at a time, on the TPU (4 chip(s))" in messages
    assert {slot.cores for _, slot, _ in runner.calls} == {(0, 1, 2, 3)}
    messages = []
    local_executor.run_sweep(
        config,
        tmp_path / "told",
        jobs=2,
        gpus=[],
        tpu_chips=4,
        runner=FakeRunner(),
        preparer=no_preparation,
        log=messages.append,
    )
    assert "  2 at a time, on the TPU (4 chip(s))" in messages


def test_tpu_chips_are_counted_unless_jax_is_told_to_use_another_platform():
    assert local_executor.visible_tpu_chips({}, lambda: 4) == 4
    assert local_executor.visible_tpu_chips({"JAX_PLATFORMS": "cpu"}, lambda: 4) == 0
    assert local_executor.visible_tpu_chips({"JAX_PLATFORMS": "tpu,cpu"}, lambda: 4)
    assert local_executor.visible_tpu_chips({}) == 0  # This machine has no TPU.

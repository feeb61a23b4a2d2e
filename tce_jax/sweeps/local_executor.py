"""The local executor: runs a sweep's plan on this machine, several runs at once.

Each run is ``sweep_plan.run_once`` in a worker thread, in a slot of its own:
a disjoint slice of the CPU cores and, on a GPU machine, its own GPU. With no
GPU visible, ``jobs`` runs go at once (default: one per core, at most 8). With
GPUs, by default each run gets one GPU (``CUDA_VISIBLE_DEVICES``) and as many
runs go at once as there are GPUs; ``runs_per_gpu=N`` shares each GPU between
N runs (no preallocation, and a cap of 1/N of the memory each) and
``all_gpus_per_run`` gives every run all GPUs, one run at a time. The GPUs are
counted without starting JAX here (``visible_gpus``), which would claim them.
On a TPU VM (``visible_tpu_chips``) one run goes at a time, as a second process
could not open the TPU, unless ``jobs`` says otherwise. A run given a GPU that
ran on the CPU all the same (JAX could not use the GPU) is reported at once, in
one line. The SLURM sibling, for the same plan: ``slurm``.
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import ml_collections
from jax._src import hardware_utils

from tce_jax import run_files
from tce_jax.sweeps import grid, sweep_plan

# Share of a GPU's memory that the runs sharing it divide between them; the
# rest is for what lies outside XLA's pool (each process's CUDA context).
SHARED_GPU_MEMORY = 0.9


def default_jobs(cpu_count: int | None = None) -> int:
    """Runs at once on CPUs: one per core, at most 8.

    XLA gains little from a second thread on the CPU-sized ResNets (a ResNet-8
    step at batch 128 took 320 ms pinned to one core and 335 ms with two), so
    on small machines one single-core run per core gives the most runs per hour.
    """
    cpu_count = cpu_count or os.cpu_count() or 1
    return max(1, min(cpu_count, 8))


def core_slices(num_jobs: int, cpus: Sequence[int]) -> list[tuple[int, ...]]:
    """Splits the cores into one disjoint slice per job (shared if too few)."""
    if num_jobs >= len(cpus):
        return [(cpus[i % len(cpus)],) for i in range(num_jobs)]
    size = len(cpus) // num_jobs
    return [tuple(cpus[i * size : (i + 1) * size]) for i in range(num_jobs)]


def _nvidia_smi_gpus() -> list[str]:
    """Indices of the GPUs ``nvidia-smi -L`` lists; none without the driver."""
    if shutil.which("nvidia-smi") is None:
        return []
    result = subprocess.run(
        ["nvidia-smi", "-L"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        return []
    return re.findall(r"^GPU (\d+):", result.stdout, flags=re.MULTILINE)


def visible_gpus(
    env: Mapping[str, str] | None = None,
    list_gpus: Callable[[], list[str]] = _nvidia_smi_gpus,
) -> list[str]:
    """The GPUs this process may hand to runs, as ``CUDA_VISIBLE_DEVICES`` entries.

    Read without initialising a JAX backend (that would take the GPUs' memory
    in the parent): none when JAX_PLATFORMS names no GPU platform; else the
    entries of CUDA_VISIBLE_DEVICES when it is set (empty, or starting with a
    negative entry: none); else the GPUs ``nvidia-smi -L`` lists.

    Args:
      env: the environment to read (default: this process's).
      list_gpus: lists the machine's GPUs (tests pass fakes).
    """
    env = os.environ if env is None else env
    platforms = env.get("JAX_PLATFORMS", "")
    if platforms and not {"cuda", "gpu"} & set(platforms.lower().split(",")):
        return []
    if "CUDA_VISIBLE_DEVICES" in env:
        gpus = []
        # CUDA ignores the entries from the first invalid one on.
        for entry in env["CUDA_VISIBLE_DEVICES"].split(","):
            entry = entry.strip()
            if not entry or entry.startswith("-"):
                break
            gpus.append(entry)
        return gpus
    return list_gpus()


def _jax_tpu_chips() -> int:
    """TPU chips on this machine's PCI bus, by JAX's own list of TPU devices
    (read from /sys, without starting a backend)."""
    return hardware_utils.num_available_tpu_chips_and_device_id()[0]


def visible_tpu_chips(
    env: Mapping[str, str] | None = None,
    count_chips: Callable[[], int] = _jax_tpu_chips,
) -> int:
    """The TPU chips runs would use: none when JAX_PLATFORMS names no TPU.

    Args:
      env: the environment to read (default: this process's).
      count_chips: counts the machine's TPU chips (tests pass fakes).
    """
    env = os.environ if env is None else env
    platforms = env.get("JAX_PLATFORMS", "")
    if platforms and "tpu" not in platforms.lower().split(","):
        return 0
    return count_chips()


def gpu_envs(
    gpus: Sequence[str], *, runs_per_gpu: int = 1, all_gpus_per_run: bool = False
) -> list[dict[str, str]]:
    """The environment of each GPU slot (one run at a time in each).

    Slots alternate between GPUs, so that fewer runs than slots still spread
    over every GPU.

    Args:
      gpus: ``visible_gpus()``; not empty.
      runs_per_gpu: runs sharing one GPU; above 1 each preallocates nothing
        and may use ``SHARED_GPU_MEMORY / runs_per_gpu`` of its memory.
      all_gpus_per_run: one slot, in which a run sees every GPU.
    """
    if all_gpus_per_run:
        return [{"CUDA_VISIBLE_DEVICES": ",".join(gpus)}]
    sharing = {}
    if runs_per_gpu > 1:
        sharing = {
            "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
            "XLA_PYTHON_CLIENT_MEM_FRACTION": (
                f"{SHARED_GPU_MEMORY / runs_per_gpu:.3f}"
            ),
        }
    return [
        {"CUDA_VISIBLE_DEVICES": gpu, **sharing}
        for _ in range(runs_per_gpu)
        for gpu in gpus
    ]


def plan_slots(
    jobs: int,
    num_runs: int,
    *,
    cpus: Sequence[int],
    gpus: Sequence[str],
    runs_per_gpu: int = 1,
    all_gpus_per_run: bool = False,
) -> list[sweep_plan.Slot]:
    """One slot per run at once: a core slice each, and a GPU share if any.

    Args:
      jobs: runs at once asked for; 0 = one per core on CPUs, one per GPU slot
        on GPUs (where more than the GPU slots would collide, so it is a cap).
      num_runs: runs of the grid (no more slots than runs).
      cpus: the cores to divide.
      gpus: ``visible_gpus()``; empty on a CPU machine.
      runs_per_gpu, all_gpus_per_run: see ``gpu_envs``.
    """
    if gpus:
        envs = gpu_envs(
            gpus, runs_per_gpu=runs_per_gpu, all_gpus_per_run=all_gpus_per_run
        )
        envs = envs[: min(jobs or len(envs), num_runs)]
    else:
        envs = [{}] * min(jobs or default_jobs(), num_runs)
    cores = core_slices(len(envs), cpus)
    return [
        sweep_plan.Slot(cores=slice_, env=env)
        for slice_, env in zip(cores, envs, strict=True)
    ]


def _format_duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class SweepProgress:
    """Counts runs and estimates the time left.

    Per-run time is the mean of the runs finished so far; before the first one
    finishes, it is extrapolated from the epochs the running runs have logged.
    """

    def __init__(
        self,
        total: int,
        skipped: int,
        jobs: int,
        log: Callable[[str], None],
        fraction_done: Callable[[str], float],
    ):
        self.total, self.done, self.jobs, self.log = total, skipped, jobs, log
        self.fraction_done = fraction_done
        self.started = time.monotonic()
        self.durations: list[float] = []
        self.running: dict[str, float] = {}
        # start() runs in worker threads, the rest in the main thread.
        self.lock = threading.Lock()

    def start(self, rel_dir: str, resumed_epochs: int) -> None:
        with self.lock:
            self.running[rel_dir] = time.monotonic()
        resumed = f" (resuming after epoch {resumed_epochs})" if resumed_epochs else ""
        self.log(f"[{self.done}/{self.total}] start {rel_dir}{resumed}")

    def end(self, rel_dir: str, status: str) -> None:
        with self.lock:
            seconds = time.monotonic() - self.running.pop(rel_dir)
        self.done += 1
        if status == "done":
            self.durations.append(seconds)
        self.log(
            f"[{self.done}/{self.total}] {status} {rel_dir} in "
            f"{_format_duration(seconds)}; {self.eta_text()}"
        )

    def eta_seconds(self) -> float | None:
        now = time.monotonic()
        with self.lock:
            running = dict(self.running)
        fractions = {rel_dir: self.fraction_done(rel_dir) for rel_dir in running}
        estimates = self.durations or [
            (now - start) / fractions[rel_dir]
            for rel_dir, start in running.items()
            if fractions[rel_dir] > 0
        ]
        if not estimates:
            return None
        per_run = sum(estimates) / len(estimates)
        left_running = sum(per_run * (1 - fraction) for fraction in fractions.values())
        waiting = self.total - self.done - len(running)
        return (waiting * per_run + left_running) / self.jobs

    def eta_text(self) -> str:
        elapsed = _format_duration(time.monotonic() - self.started)
        eta = self.eta_seconds()
        if self.done >= self.total:
            return f"elapsed {elapsed}"
        return f"elapsed {elapsed}, ETA " + (
            "?" if eta is None else _format_duration(eta)
        )


def _slots_text(slots: Sequence[sweep_plan.Slot], *, tpu_chips: int) -> str:
    devices = [slot.env.get("CUDA_VISIBLE_DEVICES") for slot in slots]
    if devices[0] is None:
        on_tpu = f", on the TPU ({tpu_chips} chip(s))" if tpu_chips else ""
        return f"{len(slots)} at a time{on_tpu}"
    shared = " (sharing GPUs)" if len(set(devices)) < len(devices) else ""
    return f"{len(slots)} at a time, on GPUs {', '.join(devices)}{shared}"


def cpu_fallback_line(rel_dir: str, gpus: str) -> str:
    """The line for a run that was given GPUs and ran on the CPU."""
    return (
        f"{rel_dir} runs on the CPU although it was given GPU {gpus}: JAX cannot "
        "use the GPUs (a CPU-only jaxlib, or a driver problem: see its log.txt); "
        "install JAX for CUDA (docs/accelerators.md), or stop the sweep: its "
        "other runs are likely to do the same"
    )


def run_sweep(
    sweep_config: ml_collections.ConfigDict,
    sweep_dir: str | os.PathLike,
    *,
    jobs: int | None = None,
    gpus: Sequence[str] | None = None,
    tpu_chips: int | None = None,
    runs_per_gpu: int = 1,
    all_gpus_per_run: bool = False,
    runner: sweep_plan.Runner | None = None,
    preparer: sweep_plan.Preparer = sweep_plan.prepare_dataset,
    log: Callable[[str], None] = sweep_plan.print_now,
    heartbeat_seconds: float = 60.0,
) -> sweep_plan.SweepOutcome:
    """Runs every unfinished run of the grid on this machine, `jobs` at a time.

    Args:
      sweep_config: see ``grid``.
      sweep_dir: root of the run dirs; sweep.json there records the grid.
      jobs: runs at once; None uses sweep_config.jobs (on a TPU VM: 1); 0: see
        ``plan_slots``.
      gpus: the GPUs to use (default ``visible_gpus()``; tests pass fakes).
      tpu_chips: the TPU chips of this machine (default ``visible_tpu_chips()``;
        tests pass fakes).
      runs_per_gpu, all_gpus_per_run: see ``gpu_envs``.
      runner: trains one run (default: launch.py subprocesses); tests pass fakes.
      preparer: prepares each dataset of the unfinished runs first.
      log: progress sink.
      heartbeat_seconds: how often to print the epochs of running runs.

    Returns:
      Which runs were skipped (already finished, or busy elsewhere), finished
      and failed.
    """
    plan = sweep_plan.plan_sweep(sweep_config, sweep_dir, preparer=preparer, log=log)
    sweep_dir, outcome = plan.sweep_dir, plan.outcome
    gpus = visible_gpus() if gpus is None else gpus
    tpu_chips = 0 if gpus else visible_tpu_chips() if tpu_chips is None else tpu_chips
    if jobs is None:
        # The runs of a TPU VM would compete for its one TPU.
        jobs = 1 if tpu_chips else sweep_config.get("jobs", 0)
    slots = plan_slots(
        jobs,
        len(plan.runs),
        cpus=sweep_plan.available_cpus(),
        gpus=gpus,
        runs_per_gpu=runs_per_gpu,
        all_gpus_per_run=all_gpus_per_run,
    )
    runner = runner or sweep_plan.subprocess_runner(plan.base_config_path)
    num_epochs = grid.resolve_config(
        plan.base_config_path, plan.runs[0].overrides
    ).num_epochs
    log(f"  {_slots_text(slots, tpu_chips=tpu_chips)}")
    progress = SweepProgress(
        len(plan.runs),
        len(outcome.skipped) + len(outcome.busy),
        len(slots),
        log,
        fraction_done=lambda rel_dir: (
            run_files.epochs_done(sweep_dir / rel_dir) / num_epochs
        ),
    )
    free_slots: queue.SimpleQueue[sweep_plan.Slot] = queue.SimpleQueue()
    for slot in slots:
        free_slots.put(slot)
    # {rel_dir: its GPUs} of the runs running on GPUs; worker threads write it.
    gpus_of: dict[str, str] = {}
    fallback_told = threading.Event()

    def tell_cpu_fallback(rel_dirs: Sequence[str]) -> None:
        """One line, once, for the first run given GPUs that runs on the CPU."""
        for rel_dir in rel_dirs:
            environment = run_files.read_environment(sweep_dir / rel_dir) or {}
            given = gpus_of.get(rel_dir)
            if given and environment.get("platform") == "cpu":
                if not fallback_told.is_set():
                    fallback_told.set()
                    log(cpu_fallback_line(rel_dir, given))
                return

    def execute(run: grid.Run) -> tuple[grid.Run, int]:
        run_dir = sweep_dir / run.rel_dir
        slot = free_slots.get()
        try:
            if given := slot.env.get("CUDA_VISIBLE_DEVICES"):
                gpus_of[run.rel_dir] = given
            progress.start(run.rel_dir, run_files.epochs_done(run_dir))
            code = sweep_plan.run_once(run, run_dir, runner, slot)
            tell_cpu_fallback([run.rel_dir])
            return run, code
        finally:
            gpus_of.pop(run.rel_dir, None)
            free_slots.put(slot)

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(slots)) as pool:
        futures = {pool.submit(execute, run) for run in plan.pending}
        while futures:
            done, futures = concurrent.futures.wait(
                futures,
                timeout=heartbeat_seconds,
                return_when=concurrent.futures.FIRST_COMPLETED,
            )
            for future in done:
                run, code = future.result()
                if code == 0:
                    outcome.finished.append(run.rel_dir)
                    progress.end(run.rel_dir, "done")
                else:
                    outcome.failed.append(run.rel_dir)
                    progress.end(run.rel_dir, f"FAILED (exit code {code})")
                    sweep_plan.log_failure(sweep_dir / run.rel_dir, log)
            if not done and progress.running:
                tell_cpu_fallback(sorted(gpus_of))
                states = ", ".join(
                    f"{rel_dir} epoch "
                    f"{run_files.epochs_done(sweep_dir / rel_dir)}/{num_epochs}"
                    for rel_dir in sorted(progress.running)
                )
                log(f"  running: {states}; {progress.eta_text()}")
    if outcome.failed:
        log(f"{len(outcome.failed)} run(s) failed: " + ", ".join(outcome.failed))
    return outcome

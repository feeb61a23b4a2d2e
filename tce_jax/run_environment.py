"""Where a run ran: the machine and software that decide its exact numbers.

XLA compiles for the processor it runs on: on CPU it picks vector instructions
(SSE/AVX/AVX2/FMA/AVX-512/AMX, NEON/SVE) from what the host offers, and its
kernels (Eigen, oneDNN, YNNPACK) choose their code paths the same way. So a
run is bit-identical to another only with the same processor type and the same
software; elsewhere its numbers move as another seed's would. ``collect()``
records what that depends on, and every run keeps it (``run.json``,
``summary.json`` and the TensorBoard hparams, under ``environment``):

* ``cpu_model`` and ``isa_features``: the processor and the instruction-set
  extensions it offers among those XLA:CPU generates code for (from
  ``/proc/cpuinfo``; JAX does not expose the compiler's target features);
* ``platform``, ``platform_version``, ``device_kind``, ``device_count``,
  ``process_count``: the devices the run used (for GPUs the kind names the
  model and ``platform_version`` the CUDA/ROCm runtime);
* ``versions`` of jax, jaxlib, flax, optax and numpy, and ``python``;
* ``xla_flags``: the ``XLA_FLAGS`` the run saw (launch.py adds its own);
* ``requirements_lock_sha256``: the hash of the repository's
  ``requirements.lock``, which pins every other package (None without it);
* ``cpus_available``: the cores the process could use. On CPU this decides
  numbers too: XLA sizes its thread pool from it and splits work by that pool
  (measured: a sweep run, pinned to one core, relaunched on two cores differs
  from epoch 1 on; pinned to one core again it is identical). A sweep gives
  each run one core unless told otherwise.

``machine_signature`` hashes the fields that can change a number; two runs with
the same signature were made on the same machine type and software.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import pathlib
import platform
import re
from collections.abc import Iterable, Mapping
from typing import Any

import jax

REQUIREMENTS_LOCK = pathlib.Path(__file__).resolve().parents[1] / "requirements.lock"
PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy")

# Instruction-set extensions XLA:CPU (through LLVM and its kernel libraries)
# can generate code for, by the names /proc/cpuinfo gives them: x86 "flags",
# ARM "Features". Other flags (virtualisation, power management, ...) do not
# change what the compiler emits, and would make equal machines look different
# (smep, a security feature, is not ARM's SME).
_ISA_FEATURE = re.compile(
    r"(sse|ssse3|avx|fma|f16c|amx|bmi|asimd|neon|sve|fphp|bf16|i8mm|sme(?!p))"
)

# The widest vector extension names a CPU in one word (describe).
_WIDEST_FIRST = ("amx_tile", "avx512f", "avx2", "avx", "sse4_2", "sme", "sve", "asimd")

# The fields that decide a run's numbers (see the module docstring).
SIGNATURE_FIELDS = (
    "cpu_model",
    "isa_features",
    "platform",
    "platform_version",
    "device_kind",
    "device_count",
    "process_count",
    "versions",
    "xla_flags",
    "requirements_lock_sha256",
    "cpus_available",  # On CPU only (_decisive).
)


def _cpuinfo_fields(text: str) -> dict[str, str]:
    """The first value of each ``key : value`` line of /proc/cpuinfo."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_description(cpuinfo_text: str | None = None) -> tuple[str, list[str]]:
    """(CPU model, sorted ISA extensions) from /proc/cpuinfo, or from platform.

    Args:
      cpuinfo_text: the text of /proc/cpuinfo; None reads it (where it exists).
    """
    if cpuinfo_text is None:
        try:
            cpuinfo_text = pathlib.Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo_text = ""
    fields = _cpuinfo_fields(cpuinfo_text)
    model = (
        fields.get("model name")
        or fields.get("Model")
        or fields.get("CPU part")
        or platform.processor()
        or platform.machine()
    )
    flags = (fields.get("flags") or fields.get("Features") or "").split()
    features = sorted({flag for flag in flags if _ISA_FEATURE.match(flag)})
    return model, features


def requirements_lock_sha256(path: pathlib.Path = REQUIREMENTS_LOCK) -> str | None:
    """sha256 of requirements.lock; None where the package runs without it."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def collect(devices: Iterable[jax.Device] | None = None) -> dict[str, Any]:
    """This process's environment record (see the module docstring).

    Args:
      devices: the devices the run uses (its mesh's); default: all of them.
    """
    devices = list(jax.devices() if devices is None else devices)
    cpu_model, isa_features = cpu_description()
    environment = {
        "cpu_model": cpu_model,
        "isa_features": isa_features,
        "platform": devices[0].platform,
        "platform_version": devices[0].client.platform_version,
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "process_count": jax.process_count(),
        "versions": {package: _version(package) for package in PACKAGES},
        "python": platform.python_version(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "requirements_lock_sha256": requirements_lock_sha256(),
        "cpus_available": (
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count()
        ),
        "os": f"{platform.system()} {platform.release()}",
    }
    environment["machine_signature"] = machine_signature(environment)
    return environment


def _decisive(environment: Mapping[str, Any]) -> dict[str, Any]:
    """The SIGNATURE_FIELDS of a record; the core count counts on CPU only."""
    fields = {field: environment.get(field) for field in SIGNATURE_FIELDS}
    if environment.get("platform") != "cpu":
        del fields["cpus_available"]
    return fields


def machine_signature(environment: Mapping[str, Any]) -> str:
    """Short hash of the fields that decide a run's numbers (SIGNATURE_FIELDS)."""
    text = json.dumps(_decisive(environment), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """The decisive fields in which two environment records differ, by name."""
    decisive_a, decisive_b = _decisive(a), _decisive(b)
    fields = decisive_a.keys() | decisive_b.keys()
    return [
        field
        for field in SIGNATURE_FIELDS
        if field in fields and decisive_a.get(field) != decisive_b.get(field)
    ]


def describe(environment: Mapping[str, Any]) -> str:
    """One line a reader recognises a machine by, e.g.
    ``AMD EPYC (avx512f); 1 process(es), 1 device(s) (cpu); jax 0.10.2``."""
    versions = environment.get("versions") or {}
    isa = set(environment.get("isa_features") or ())
    widest = next(
        (name for name in _WIDEST_FIRST if name in isa), "no vector extensions"
    )
    return (
        f"{environment.get('cpu_model')} ({widest}); "
        f"{environment.get('process_count')} process(es), "
        f"{environment.get('device_count')} device(s) "
        f"({environment.get('device_kind')}); jax {versions.get('jax')}"
    )


def platform_text(environment: Mapping[str, Any]) -> str:
    """The devices a run used, in a few words: ``gpu (1 x NVIDIA A100-SXM4-80GB)``,
    ``cpu (4 x cpu)``."""
    return (
        f"{environment.get('platform')} ({environment.get('device_count')} x "
        f"{environment.get('device_kind')})"
    )


def platform_lines(environments: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What a sweep's runs ran on: one line counting the runs per platform,
    and one more when some ran on the CPU while others had an accelerator
    (JAX falls back to the CPU without a word when it cannot use one).

    Args:
      environments: {run: its environment record}, for the runs that have one.

    Returns:
      The lines (none without records).
    """
    by_platform: dict[str, list[str]] = {}
    for run, environment in environments.items():
        by_platform.setdefault(platform_text(environment), []).append(run)
    if not by_platform:
        return []
    lines = [
        "platforms: "
        + ", ".join(
            f"{len(runs)} run(s) on {platform}"
            for platform, runs in sorted(by_platform.items())
        )
    ]
    on_cpu = sorted(
        run
        for run, environment in environments.items()
        if environment.get("platform") == "cpu"
    )
    if on_cpu and len(on_cpu) < len(environments):
        lines.append(
            f"{len(on_cpu)} run(s) ran on the CPU while the others had a GPU or "
            "TPU: JAX found no accelerator it could use for them (a CPU-only "
            f"jaxlib, or a driver problem; see their log.txt), e.g. {on_cpu[0]}"
        )
    return lines


def tensorboard_hparams(environment: Mapping[str, Any]) -> dict[str, Any]:
    """The record as flat scalar hparams (``environment.<field>``) for TensorBoard."""
    flat: dict[str, Any] = {}
    for key, value in environment.items():
        if isinstance(value, Mapping):
            for inner, inner_value in value.items():
                flat[f"environment.{key}.{inner}"] = str(inner_value)
        elif isinstance(value, list | tuple):
            flat[f"environment.{key}"] = " ".join(map(str, value))
        elif value is None:
            flat[f"environment.{key}"] = "none"
        else:
            flat[f"environment.{key}"] = value
    return flat

"""Tests of the record of where a run ran (tce_jax.run_environment)."""

import hashlib
import importlib.metadata
import json

import jax

from tce_jax import run_environment, run_files

X86_CPUINFO = """\
processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Platinum 8488C
flags		: fpu vme sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi1 bmi2 smep \
avx512f avx512bw amx_tile amx_bf16 hypervisor vmx
processor	: 1
model name	: Intel(R) Xeon(R) Platinum 8488C
flags		: fpu
"""

ARM_CPUINFO = """\
processor	: 0
BogoMIPS	: 243.75
Features	: fp asimd evtstrm aes sha1 crc32 atomics fphp asimdhp sve sve2 bf16 i8mm
CPU part	: 0xd4f
"""


def test_cpu_model_and_isa_features_come_from_cpuinfo():
    model, features = run_environment.cpu_description(X86_CPUINFO)
    assert model == "Intel(R) Xeon(R) Platinum 8488C"
    # The first processor's flags; only the instruction sets XLA can emit
    # (smep is a security feature, vmx/hypervisor/fpu do not change code).
    assert features == [
        "amx_bf16",
        "amx_tile",
        "avx",
        "avx2",
        "avx512bw",
        "avx512f",
        "bmi1",
        "bmi2",
        "f16c",
        "fma",
        "sse",
        "sse2",
        "sse4_1",
        "sse4_2",
        "ssse3",
    ]
    model, features = run_environment.cpu_description(ARM_CPUINFO)
    assert model == "0xd4f"
    assert features == ["asimd", "asimdhp", "bf16", "fphp", "i8mm", "sve", "sve2"]


def test_collect_records_this_process():
    environment = run_environment.collect()
    assert environment["device_count"] == jax.device_count()
    assert environment["process_count"] == 1
    assert environment["platform"] == "cpu"
    assert environment["versions"] == {
        name: importlib.metadata.version(name) for name in run_environment.PACKAGES
    }
    lock = run_environment.REQUIREMENTS_LOCK.read_bytes()
    assert environment["requirements_lock_sha256"] == hashlib.sha256(lock).hexdigest()
    assert environment["machine_signature"] == run_environment.machine_signature(
        environment
    )
    # The record is plain JSON (it goes into run.json and summary.json).
    assert json.loads(json.dumps(environment)) == environment
    assert run_environment.collect(jax.devices()[:1])["device_count"] == 1


def test_signature_follows_the_fields_that_change_numbers_only():
    environment = run_environment.collect()
    same_type = dict(environment, os="Linux 7.0", python="3.12.1")
    assert run_environment.machine_signature(
        same_type
    ) == run_environment.machine_signature(environment)
    assert run_environment.differences(environment, same_type) == []
    # The cores a process may use size XLA:CPU's thread pool: they count on CPU
    # only.
    gpu = dict(environment, platform="gpu", device_kind="NVIDIA H100")
    assert run_environment.machine_signature(
        dict(gpu, cpus_available=64)
    ) == run_environment.machine_signature(gpu)
    for field, value in (
        ("cpus_available", environment["cpus_available"] + 1),
        ("xla_flags", "--xla_cpu_max_isa=AVX2"),
        ("isa_features", ["sse", "sse2"]),
        ("cpu_model", "Intel(R) Xeon(R) Platinum 8488C"),
        ("requirements_lock_sha256", "0" * 64),
        ("device_count", 8),
    ):
        other = dict(environment, **{field: value})
        assert run_environment.machine_signature(
            other
        ) != run_environment.machine_signature(environment), field
        assert run_environment.differences(environment, other) == [field]


def test_describe_and_tensorboard_hparams():
    environment = dict(
        run_environment.collect(),
        cpu_model="Intel(R) Xeon(R) Platinum 8488C",
        isa_features=["avx", "avx2", "avx512f", "fma"],
    )
    assert run_environment.describe(environment).startswith(
        "Intel(R) Xeon(R) Platinum 8488C (avx512f); 1 process(es), "
    )
    hparams = run_environment.tensorboard_hparams(environment)
    assert hparams["environment.isa_features"] == "avx avx2 avx512f fma"
    assert hparams["environment.versions.jax"] == jax.__version__
    assert all(isinstance(v, bool | int | float | str) for v in hparams.values())


def test_record_environment_adds_to_a_sweeps_run_json_only(tmp_path):
    environment = run_environment.collect()
    run_files.record_environment(tmp_path, environment)
    assert not (tmp_path / run_files.RUN_INFO_FILE).exists()
    (tmp_path / run_files.RUN_INFO_FILE).write_text(json.dumps({"seed": 3}))
    run_files.record_environment(tmp_path, environment)
    info = json.loads((tmp_path / run_files.RUN_INFO_FILE).read_text())
    assert info == {"seed": 3, run_files.ENVIRONMENT_KEY: environment}

r"""Trains one classifier under label noise: flags in, train.train_and_evaluate out.

  python3 launch.py --config=configs/cpu_smoke.py --workdir=/tmp/tce_smoke
  python3 launch.py --config=configs/cifar10.py --workdir=runs/c10_gce_40 \
      --config.loss.name=gce --config.loss.q=0.7 --config.noise.rate=0.4

Any config field can be overridden with ``--config.<path>=<value>``. The whole
config is checked before any work: an invalid value ends the launch with one
line naming the field and what is allowed, and exit status 2. A NaN/inf loss
ends it with exit status 1 (the last good checkpoint is kept). Relaunching with
the same ``--workdir`` resumes from the latest checkpoint.

For multi-process runs (TPU pods, SLURM, several GPU hosts) pass
``--multihost``: it calls ``jax.distributed.initialize()``, which reads the
cluster from the environment; every process runs this same command.
"""

import logging as std_logging
import os
import sys

# TensorFlow only feeds data: keep its C++ start-up chatter off stderr.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# XLA:CPU's default YNNPACK filter-gradient convolutions are up to 7x slower than
# Eigen's at these ResNet shapes; routing convolutions to Eigen makes the whole
# step 1.3-1.5x faster (benchmarks/train_bench.py). CPU-only: other backends
# ignore it. Set in every launch, so a resumed run computes like the first one.
os.environ["XLA_FLAGS"] = " ".join(
    dict.fromkeys(
        [
            *os.environ.get("XLA_FLAGS", "").split(),
            "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution",
        ]
    )
)

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from tce_jax import config_validation, train

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file in configs/.", lock_config=True
)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory for checkpoints, metrics and summaries."
)
_MULTIHOST = flags.DEFINE_bool(
    "multihost",
    False,
    "Call jax.distributed.initialize() first (multi-process launches).",
)
flags.mark_flags_as_required(["config", "workdir"])

EXIT_INVALID_CONFIG = 2
EXIT_NON_FINITE_LOSS = 1


class _QuietOrbaxInfo(std_logging.Filter):
    """Drops orbax's per-save INFO lines (dozens per checkpoint); keeps warnings."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        return record.levelno >= std_logging.WARNING or "/orbax/" not in record.pathname


def _fail(message: str, status: int) -> int:
    print(f"launch.py: {message}", file=sys.stderr, flush=True)
    return status


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.get_absl_handler().addFilter(_QuietOrbaxInfo())
    if _MULTIHOST.value:
        jax.distributed.initialize()
    config = _CONFIG.value
    try:
        config_validation.validate(config, num_devices=jax.device_count())
    except config_validation.ConfigError as error:
        return _fail(f"invalid config: {error}", EXIT_INVALID_CONFIG)
    logging.info(
        "JAX %s, %d process(es), %d device(s): %s",
        jax.__version__,
        jax.process_count(),
        jax.device_count(),
        jax.devices()[0].platform,
    )
    try:
        train.train_and_evaluate(config, _WORKDIR.value)
    except config_validation.ConfigError as error:
        return _fail(f"invalid config: {error}", EXIT_INVALID_CONFIG)
    except train.NonFiniteLossError as error:
        return _fail(f"stopped: {error}", EXIT_NON_FINITE_LOSS)
    return 0


if __name__ == "__main__":
    app.run(main)

#!/usr/bin/env bash
# Installs what tce_jax needs on a fresh Debian machine; safe to run again.
# Installs into whatever python3 is first on PATH: the system Python (as root)
# or an activated virtual environment.
#   bash scripts/setup.sh          # the training harness (and Fashion-MNIST's IDX files)
#   bash scripts/setup.sh test     # ... plus the test tools
#   bash scripts/setup.sh bench    # ... plus PyTorch (CPU build) for benchmarks/train_bench.py
# Versions come from requirements.lock (the environment the committed results
# and CI ran on); TCE_JAX_UNLOCKED=1 installs from pyproject.toml's ranges instead.
set -euo pipefail
cd "$(dirname "$0")/.."

extra="${1:-train}"
case "$extra" in
  train | test | bench) ;;
  *)
    echo "setup.sh: unknown argument '$extra' (allowed: none, test, bench)" >&2
    exit 2
    ;;
esac

# The embedded default data: Debian ships the original Fashion-MNIST IDX files.
fmnist_dir=/usr/share/datasets/fashion-mnist
if [[ ! -f "$fmnist_dir/train-images-idx3-ubyte.gz" ]]; then
  if command -v apt-get >/dev/null && [[ "$(id -u)" == 0 ]]; then
    echo "setup: installing Debian's dataset-fashion-mnist"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "setup: $fmnist_dir is missing and apt-get is not usable here;" \
      "tfds will download Fashion-MNIST instead (needs internet)." >&2
  fi
fi

lock=()
if [[ "${TCE_JAX_UNLOCKED:-0}" != 1 ]]; then
  lock=(--constraint requirements.lock)
fi
python3 -m pip install --quiet --disable-pip-version-check "${lock[@]}" -e ".[$extra]"

# Build the tfds dataset from Debian's files once, so that runs (and parallel
# sweep jobs) never race to prepare it.
if [[ -f "$fmnist_dir/train-images-idx3-ubyte.gz" ]]; then
  python3 -m tce_jax.data.prepare_data --dataset=fashion_mnist
fi

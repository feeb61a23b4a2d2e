#!/usr/bin/env bash
# Installs what tce_jax needs on a fresh Debian machine; safe to run again.
#   bash scripts/setup.sh          # the package (and Fashion-MNIST's IDX files)
#   bash scripts/setup.sh test     # ... plus the test tools
#   bash scripts/setup.sh bench    # ... plus the benchmark-only dependencies
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${1:-}"

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

if [[ "$extras" == *bench* ]] && ! python3 -c "import torch" 2>/dev/null; then
  # The benchmark compares against PyTorch on the CPU. 2.13.0 is the CPU build
  # these machines keep on disk; an unpinned torch resolves to a multi-GB CUDA build.
  python3 -m pip install --quiet --disable-pip-version-check torch==2.13.0
fi
python3 -m pip install --quiet --disable-pip-version-check -e ".${extras:+[$extras]}"

# Build the tfds dataset from Debian's files once, so that runs (and parallel
# sweep jobs) never race to prepare it.
if [[ -f "$fmnist_dir/train-images-idx3-ubyte.gz" ]]; then
  python3 -m tce_jax.prepare_data --dataset=fashion_mnist
fi

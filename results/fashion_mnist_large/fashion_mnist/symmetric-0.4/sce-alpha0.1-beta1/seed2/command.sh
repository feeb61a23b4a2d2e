#!/usr/bin/env bash
set -e
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
python3 launch.py --config=configs/cpu_fashion_mnist.py --config.data.augment=true --config.data.train_subset=10000 --config.eval_every_epochs=2 --config.num_epochs=28 '--config.schedule.decay_epochs=(14, 21)' --config.schedule.name=piecewise --config.seed=2 --config.data.dataset=fashion_mnist --config.noise.kind=symmetric --config.noise.rate=0.4 --config.loss.name=sce --config.loss.alpha=0.1 --config.loss.beta=1.0 --workdir=runs/fashion_mnist_large/fashion_mnist/symmetric-0.4/sce-alpha0.1-beta1/seed2

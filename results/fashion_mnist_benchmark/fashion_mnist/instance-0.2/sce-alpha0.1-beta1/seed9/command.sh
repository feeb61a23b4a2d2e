#!/usr/bin/env bash
set -e
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
python3 launch.py --config=configs/cpu_fashion_mnist.py --config.batch_size=32 --config.data.augment=false --config.data.train_subset=2900 --config.data.validation_examples=2000 --config.eval_every_epochs=4 --config.num_epochs=40 --config.optimizer.learning_rate=0.05 '--config.schedule.decay_epochs=(20, 30)' --config.schedule.name=piecewise --config.test_eval_every_epochs=0 --config.seed=9 --config.data.dataset=fashion_mnist --config.noise.kind=instance --config.noise.rate=0.2 --config.loss.name=sce --config.loss.alpha=0.1 --config.loss.beta=1.0 --workdir=runs/fashion_mnist_benchmark/fashion_mnist/instance-0.2/sce-alpha0.1-beta1/seed9

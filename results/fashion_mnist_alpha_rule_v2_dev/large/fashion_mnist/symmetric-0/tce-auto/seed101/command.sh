#!/usr/bin/env bash
set -e
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
python3 launch.py --config=configs/cpu_fashion_mnist.py --config.batch_size=32 --config.data.augment=false --config.data.train_subset=5000 --config.data.validation_examples=2000 --config.eval_every_epochs=4 --config.num_epochs=40 --config.optimizer.learning_rate=0.05 '--config.schedule.decay_epochs=(20, 30)' --config.schedule.name=piecewise --config.test_eval_every_epochs=0 --config.seed=101 --config.data.dataset=fashion_mnist --config.noise.kind=symmetric --config.noise.rate=0.0 --config.loss.name=tce --config.loss.alpha_rule=auto --workdir=runs/fashion_mnist_alpha_rule_v2_dev/large/fashion_mnist/symmetric-0/tce-auto/seed101

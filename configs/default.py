r"""Default run: Fashion-MNIST, 40% symmetric noise, TCE, ResNet-18, GCE-paper protocol.

  python3 launch.py --config=configs/default.py --workdir=runs/default

The GCE paper's protocol (Zhang & Sabuncu 2018; see docs/losses.md): SGD
lr 0.01, momentum 0.9, weight decay 1e-4, batch 128, 120 epochs, learning rate
/10 at epochs 40 and 80, 10% of the noisy training split held out as noisy
validation for model selection. Sized for an accelerator; see cpu_*.py for CPU runs.

Every other config imports this one and overrides fields. Loss
hyperparameters: ``config.loss`` holds the loss ``name`` and every
hyperparameter of every registered loss, all None: a None takes the chosen
loss's setting for ``config.data.dataset`` (the one its authors published for
that dataset, else CIFAR-10's; TCE's alpha = 1/K; docs/losses.md, "Settings
per dataset"), and the run's summary.json records the values used
(``effective_config``). Set only those of the chosen loss, e.g.
``--config.loss.name=gce --config.loss.q=0.7``; a value set wins.
"""

from ml_collections import config_dict

from tce_jax import losses
from tce_jax.training import alpha


def loss_config(name: str) -> config_dict.ConfigDict:
    """``name`` plus a None placeholder for each hyperparameter of any loss.

    A placeholder left None takes the loss's setting for the run's dataset
    (``config.loss_hparams`` in tce_jax/training/config.py).

    A placeholder's type is that of the registry default (int for counts such
    as taylor_ce's ``t``, float otherwise), so command-line values parse right.
    """
    loss = config_dict.ConfigDict({"name": name})
    types = {}
    for other in losses.names():
        for hparam, default in losses.defaults(other).items():
            kind = int if isinstance(default, int) else float
            types[hparam] = float if types.get(hparam, kind) is not kind else kind
    for hparam in sorted(types):
        loss[hparam] = config_dict.placeholder(types[hparam])
    # How TCE's alpha is set (tce_jax/training/alpha.py): alpha_rule "fixed"
    # keeps loss.alpha; a self-tuning rule ("auto", "val_peak", "val_track")
    # sets it from the run's readings, with its settings (None: the rule's
    # default).
    alpha.add_config_fields(loss, config_dict.placeholder)
    return loss


def get_config() -> config_dict.ConfigDict:
    """The default run config."""
    config = config_dict.ConfigDict()
    config.seed = 0

    config.data = config_dict.ConfigDict()
    config.data.dataset = "fashion_mnist"
    config.data.data_dir = config_dict.placeholder(str)  # None: the tfds default.
    config.data.train_subset = 0  # 0: the whole training split.
    config.data.validation_fraction = 0.1
    # > 0: exactly this many examples of the subset form the noisy validation
    # split instead of validation_fraction of them.
    config.data.validation_examples = 0
    # Cross-fitting (out-of-sample predictions of every training label, as
    # confident learning needs): holdout_folds >= 2 splits the training
    # examples into that many folds; the run trains on all but fold
    # holdout_fold and writes predictions on it. 0: no folds.
    config.data.holdout_folds = 0
    config.data.holdout_fold = 0
    # The dataset's training augmentation (random crop, and flip where it
    # applies); False trains on the images as they are.
    config.data.augment = True

    config.noise = config_dict.ConfigDict()
    config.noise.kind = "symmetric"
    config.noise.rate = 0.4
    # Only for kind="matrix": rows = clean class, e.g. "((0.8,0.2),(0.3,0.7))".
    config.noise.transition_matrix = config_dict.placeholder(tuple)

    config.loss = loss_config("tce")

    config.model = config_dict.ConfigDict()
    config.model.name = "resnet18"
    config.model.width_multiplier = 1.0
    # Computation dtype, "float32" or "bfloat16" (for accelerators with bfloat16
    # units); parameters, BatchNorm statistics, the loss and the optimiser stay
    # float32 either way.
    config.model.dtype = "float32"

    config.optimizer = config_dict.ConfigDict()
    config.optimizer.learning_rate = 0.01
    config.optimizer.momentum = 0.9
    config.optimizer.nesterov = False
    config.optimizer.weight_decay = 1e-4

    config.schedule = config_dict.ConfigDict()
    config.schedule.name = "piecewise"
    config.schedule.warmup_epochs = 0.0
    config.schedule.decay_epochs = (40, 80)
    config.schedule.decay_factor = 0.1

    config.num_epochs = 120
    config.batch_size = 128
    config.eval_batch_size = 512
    config.log_every_steps = 100
    # Evaluate train (eval mode) and val every N epochs and after the last.
    config.eval_every_epochs = 1
    # Of those evaluations, the test set is added every N-th epoch (0: never on
    # a schedule), after the last epoch, and whenever the noisy-val accuracy
    # reaches a new best, so the final and the selected epoch always have one.
    config.test_eval_every_epochs = 1
    config.checkpoint_keep = 2
    return config

"""Evaluation: a whole split through the eval step, and its accuracies.

The eval step's outputs are replicated, so every process reads the same
numbers from its first shard (``to_host``), joined on the device first so
that each array is one copy (``concatenate_to_host``).
"""

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tce_jax import alpha_rules
from tce_jax.training.steps import TrainState

ACCURACY_KEYS = (
    "train_accuracy",
    "train_clean_accuracy",
    "memorized_fraction",
    "contradicted_fraction",
    "val_accuracy",
    "test_accuracy",
)


def to_host(tree: Any) -> Any:
    """Copies replicated arrays to numpy from this process's first shard."""
    return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), tree)


@jax.jit
def _concatenate(chunks: list[Any]) -> Any:
    """Joins same-structured outputs (scalars or batches) along their first axis."""
    return jax.tree.map(
        lambda *leaves: jnp.concatenate([jnp.atleast_1d(x) for x in leaves]), *chunks
    )


def concatenate_to_host(chunks: list[Any]) -> Any:
    """``to_host`` of the chunks joined on the device: one copy per array, not chunk.

    Each copy from an accelerator is a round trip; the join is one small program
    (compiled once per number of chunks).
    """
    return to_host(_concatenate(chunks))


def evaluate_split(
    eval_step: Callable[[TrainState, dict[str, jax.Array]], dict[str, jax.Array]],
    state: TrainState,
    batches: Iterable[dict[str, jax.Array]],
) -> dict[str, np.ndarray]:
    """Runs ``eval_step`` over padded batches and keeps the real examples.

    Args:
      eval_step: from ``make_eval_step``.
      state: the train state.
      batches: ``Datasets.eval_batches(split, batch_size)``.

    Returns:
      Per-example numpy arrays (padding dropped), keyed index, label,
      clean_label, is_noisy, prediction, log_prob_label and probs ([n, K]).
    """
    # Dispatch every batch before reading any result back: the host keeps
    # feeding the devices while earlier batches compute.
    outputs = [eval_step(state, batch) for batch in batches]
    if not outputs:
        raise ValueError("the split has no examples")
    merged = concatenate_to_host(outputs)
    mask = merged.pop("mask").astype(bool)
    return {key: value[mask] for key, value in merged.items()}


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(predictions == labels))


def train_split_metrics(split: dict[str, np.ndarray]) -> dict[str, float | None]:
    """Accuracy vs noisy and clean labels, and how much of the noise was fit.

    ``memorized_fraction`` is the fraction of noisy-labelled examples predicted
    as their noisy label (None when no example is noisy);
    ``contradicted_fraction`` the fraction whose given label the model rates
    below chance (``alpha_rules.contradicted_fraction``), the reading the
    self-tuning alpha rules follow.
    """
    noisy = split["is_noisy"].astype(bool)
    fits_noisy_label = split["prediction"] == split["label"]
    return {
        "train_accuracy": float(np.mean(fits_noisy_label)),
        "train_clean_accuracy": accuracy(split["prediction"], split["clean_label"]),
        "memorized_fraction": (
            float(np.mean(fits_noisy_label[noisy])) if noisy.any() else None
        ),
        "contradicted_fraction": float(
            alpha_rules.contradicted_fraction(
                split["log_prob_label"], num_classes=split["probs"].shape[-1]
            )
        ),
    }


def improves(val_accuracy: float | None, best_val: float | None) -> bool:
    """Whether an epoch's noisy-val accuracy beats every earlier epoch's.

    Selection takes the earliest epoch of the best accuracy, which is always
    such an epoch; so testing at these epochs (and the last) covers every test
    accuracy a summary reports.
    """
    return val_accuracy is not None and (best_val is None or val_accuracy > best_val)


@dataclasses.dataclass(frozen=True)
class Evaluator:
    """Eval-mode passes of a run over its splits.

    Attributes:
      eval_step: from ``steps.make_eval_step``.
      datasets: the run's ``input_pipeline.Datasets``.
      batch_size: the global eval batch size.
    """

    eval_step: Callable[[TrainState, dict[str, jax.Array]], dict[str, jax.Array]]
    datasets: Any
    batch_size: int

    def split(self, state: TrainState, split: str) -> dict[str, np.ndarray]:
        """Eval-mode outputs on a whole split (``evaluate_split``)."""
        return evaluate_split(
            self.eval_step, state, self.datasets.eval_batches(split, self.batch_size)
        )

    def epoch(
        self, state: TrainState, *, test_due: bool, best_val: float | None
    ) -> tuple[dict[str, float | None], dict[str, np.ndarray]]:
        """Accuracies on train, (noisy) val and test (``ACCURACY_KEYS``), and the
        train outputs.

        Test is evaluated when ``test_due`` or when val improves on
        ``best_val`` (the best noisy-val accuracy of the earlier epochs);
        otherwise its accuracy is None.
        """
        train_eval = self.split(state, "train")
        val_accuracy = None
        if self.datasets.num_val:
            val = self.split(state, "val")
            val_accuracy = accuracy(val["prediction"], val["label"])
        test_accuracy = None
        if test_due or improves(val_accuracy, best_val):
            test = self.split(state, "test")
            test_accuracy = accuracy(test["prediction"], test["clean_label"])
        accuracies = {
            **train_split_metrics(train_eval),
            "val_accuracy": val_accuracy,
            "test_accuracy": test_accuracy,
        }
        assert tuple(accuracies) == ACCURACY_KEYS
        return accuracies, train_eval

    def predictions(
        self, state: TrainState, train_eval: dict[str, np.ndarray] | None
    ) -> dict[str, dict[str, np.ndarray]]:
        """The outputs a run saves as predictions: on train (``train_eval``, or
        evaluated now when None) and on the held-out fold if any. Every process
        evaluates (the eval step is a collective)."""
        outputs = {
            "train": self.split(state, "train") if train_eval is None else train_eval
        }
        if self.datasets.num_heldout:
            outputs["heldout"] = self.split(state, "heldout")
        return outputs

"""Model selection: the reported epoch is chosen on noisy validation, never test."""

from tce_jax import selection


def test_the_best_noisy_validation_epoch_is_chosen_whatever_test_says():
    metrics = [
        {"epoch": 1, "val_accuracy": 0.5, "test_accuracy": 0.99},
        {"epoch": 2, "val_accuracy": 0.6, "test_accuracy": 0.10},
        {"epoch": 3, "val_accuracy": 0.6, "test_accuracy": 0.50},
    ]
    # Ties go to the earliest epoch.
    assert selection.select_on_validation(metrics)["epoch"] == 2


def test_epochs_without_validation_are_skipped_and_none_means_none():
    metrics = [
        {"epoch": 1, "val_accuracy": None},
        {"epoch": 2, "val_accuracy": 0.3},
        {"epoch": 3},
    ]
    assert selection.select_on_validation(metrics)["epoch"] == 2
    assert selection.select_on_validation([{"epoch": 1, "val_accuracy": None}]) is None
    assert selection.select_on_validation([]) is None

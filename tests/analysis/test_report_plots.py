"""Tests of the report's plots."""

import jax
import numpy as np
import pytest

from tce_jax import losses
from tce_jax.analysis import report_plots, report_tables


def test_gradient_weight_from_saved_log_probs_is_the_library_weight():
    """The report's weight from log p_y alone equals losses.tce_gradient_weight
    on the full logits, from examples the model fits to ones it contradicts."""
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=6.0, size=(64, 10)).astype(np.float32)
    logits[0] = [40.0] + [0.0] * 9  # p_y rounds to 1 in float32.
    labels = rng.integers(0, 10, 64).astype(np.int32)
    labels[0] = 0
    log_p = np.take_along_axis(
        np.asarray(jax.nn.log_softmax(logits)), labels[:, None], axis=-1
    )[:, 0]
    for alpha in (0.0, 0.01, 0.1, 0.3):
        expected = np.asarray(losses.tce_gradient_weight(logits, labels, alpha=alpha))
        got = report_plots.tce_gradient_weight_from_log_prob(log_p, alpha)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-30)
        assert expected.min() < 0.1 < 0.9 < expected.max() or alpha == 0


def test_seed_band_is_the_mean_and_range_over_seeds_per_epoch():
    rows = [
        {"metrics": [{"epoch": 1, "a": 0.5}, {"epoch": 2, "a": 0.7}]},
        {"metrics": [{"epoch": 1, "a": 0.6}, {"epoch": 2, "a": None}]},
        {"metrics": [{"epoch": 1, "a": 0.7}]},  # Stopped after epoch 1.
    ]
    epochs, mean, low, high = report_plots.seed_band(rows, "a")
    np.testing.assert_array_equal(epochs, [1, 2])
    np.testing.assert_allclose(mean, [60.0, 70.0])
    np.testing.assert_allclose(low, [50.0, 70.0])
    np.testing.assert_allclose(high, [70.0, 70.0])


@pytest.mark.parametrize("per_seed", [False, True])
def test_curves_show_a_mean_per_loss_with_ce_on_top(
    sweep_dir, tmp_path, monkeypatch, per_seed
):
    figures = {}

    def keep(figure, path):
        figures[path.name] = figure
        return path

    monkeypatch.setattr(report_plots, "_save", keep)
    rows = report_tables.collect(sweep_dir)
    report_plots.plot_curves(rows, tmp_path, per_seed=per_seed)
    figure = figures["curves_fashion_mnist_symmetric-0.4.png"]
    test_panel = figure.axes[2]
    lines = {line.get_zorder(): line for line in test_panel.get_lines()}
    # A mean per loss (CE, TCE) and, with the flag only, a line per seed (2 each).
    assert len(test_panel.get_lines()) == (2 + 4 if per_seed else 2)
    ce_mean = lines[max(lines)]  # CE's, drawn above every other line.
    np.testing.assert_allclose(ce_mean.get_ydata(), [50.0, 65.0, 92.5, 50.0])
    assert len(test_panel.collections) == 2 + 2  # A band and the dots per loss.
    dots = test_panel.collections[1].get_offsets()  # TCE's selected epochs.
    assert sorted(map(tuple, dots)) == [(2.0, 80.0), (2.0, 80.0)]
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend == ["ce (n=2)", "tce-alpha0.01 (n=2)"]

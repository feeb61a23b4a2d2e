"""Tests of the report's plots."""

import jax
import numpy as np

from tce_jax import losses, report_plots


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

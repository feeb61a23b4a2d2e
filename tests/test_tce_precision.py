"""How exact TCE's map from CE is, as the docstrings state it.

The reference applies the map to the CE the loss computes, in extended
precision (NumPy's long double), choosing per example the form without
cancellation; so the errors measured are the map's, not CE's rounding.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tce_jax import losses

ALPHAS = (1e-6, 0.01, 0.1, 0.3, 0.5, 0.9, 1 - 1e-6)
# Margins -10..40 between two logits: CE from 4.5e-5... to 40, through the
# switch between the two forms of the map.
MARGINS = np.linspace(-10.0, 40.0, 20001)
LOGITS = np.stack([MARGINS, np.zeros_like(MARGINS)], axis=-1)
LABELS = np.zeros(len(MARGINS), np.int32)

needs_long_double = pytest.mark.skipif(
    np.finfo(np.longdouble).eps > 1e-18,
    reason="NumPy's long double is no wider than float64 on this platform",
)


def _exact_map(cross_entropy, alpha):
    """TCE of the given CE in long double, each example in its stable form."""
    ce = np.asarray(cross_entropy, np.longdouble)
    alpha = np.longdouble(alpha)
    scaled = (1 - alpha) * np.expm1(-ce)
    log_d = np.where(
        scaled >= -0.5,
        np.log1p(scaled),
        np.logaddexp(np.log(alpha), np.log1p(-alpha) - ce),
    )
    return -log_d / (1 - alpha)


def _values(dtype, alpha):
    logits = jnp.asarray(LOGITS, dtype)
    tce, ce = jax.jit(
        lambda z: (
            losses.tamed_cross_entropy(z, LABELS, alpha=alpha),
            losses.cross_entropy(z, LABELS),
        )
    )(logits)
    return np.asarray(tce), np.asarray(ce)


@needs_long_double
@pytest.mark.parametrize("alpha", ALPHAS)
def test_float32_map_is_within_7_ulps(alpha):
    tce, ce = _values(jnp.float32, alpha)
    want = _exact_map(ce, alpha)
    positive = want > 0
    ulps = np.abs(tce[positive] - want[positive]) / np.spacing(
        want[positive].astype(np.float32)
    )
    assert ulps.max() <= 7, ulps.max()


@needs_long_double
@pytest.mark.parametrize("alpha", ALPHAS)
def test_float64_map_is_within_3e_14_relative(alpha):
    with jax.enable_x64(True):
        tce, ce = _values(jnp.float64, alpha)
    want = _exact_map(ce, alpha)
    positive = want > 0
    relative = np.abs(tce[positive] - want[positive]) / want[positive]
    # Not "a few ulps": XLA:CPU's float64 log1p is itself up to 2.7e-14
    # relative off near log1p(-0.41) (the next test), ~130-180 ulps of TCE.
    assert relative.max() <= 3e-14, relative.max()


@needs_long_double
def test_xla_float64_log1p_error_bound():
    x = np.linspace(-0.5, 0.5, 20001)
    with jax.enable_x64(True):
        got = np.asarray(jax.jit(jnp.log1p)(x))
    want = np.log1p(x.astype(np.longdouble))
    nonzero = want != 0
    relative = np.abs(got[nonzero] - want[nonzero]) / np.abs(want[nonzero])
    assert relative.max() <= 3e-14, relative.max()


@pytest.mark.slow
@pytest.mark.parametrize("dtype, max_ulps", [(np.float32, 5), (np.float64, 128)])
def test_traced_alpha_zero_is_cross_entropy(dtype, max_ulps):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4000, 10)) * 5
    labels = rng.integers(0, 10, size=4000)
    with jax.enable_x64(dtype == np.float64):
        logits = jnp.asarray(logits, dtype)

        def total(z, alpha):
            return jnp.sum(losses.tamed_cross_entropy(z, labels, alpha=alpha))

        traced, traced_grad = jax.jit(
            lambda z, a: (
                losses.tamed_cross_entropy(z, labels, alpha=a),
                jax.grad(total)(z, a),
            )
        )(logits, jnp.asarray(0.0, dtype))
        ce, ce_grad = jax.jit(
            lambda z: (
                losses.cross_entropy(z, labels),
                jax.grad(lambda z: jnp.sum(losses.cross_entropy(z, labels)))(z),
            )
        )(logits)
        # A static alpha of 0 returns CE itself.
        static = losses.tamed_cross_entropy(logits, labels, alpha=0.0)
    np.testing.assert_array_equal(static, ce)
    traced, ce = np.asarray(traced), np.asarray(ce)
    # The gradient is CE's bit for bit (w = 1 exactly).
    np.testing.assert_array_equal(traced_grad, ce_grad)
    # The value is CE exactly where CE >= log 2, and CE through
    # log1p(expm1(-CE)) below: a few ulps off.
    large = ce >= np.log(2)
    np.testing.assert_array_equal(traced[large], ce[large])
    ulps = np.abs(traced - ce) / np.spacing(np.abs(ce).astype(dtype))
    assert 0 < ulps.max() <= max_ulps, ulps.max()

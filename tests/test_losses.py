"""Tests for tce_jax.losses against float64 NumPy references written here.

The references below are independent of the implementation: they build the
full softmax / one-hot target in float64 and apply each paper's formula
literally (the bi-tempered normaliser by bisection, not by the fixed point).
"""

import functools
import inspect
import math
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from absl.testing import parameterized
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads

from tce_jax import losses

NUM_CLASSES = 7


# ----------------------------------------------------------------------------
# Float64 NumPy references.


def _np_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def _np_log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _np_label_prob(logits, labels):
    return np.take_along_axis(_np_softmax(logits), labels[..., None], -1)[..., 0]


def _np_onehot(labels, num_classes):
    return np.eye(num_classes)[labels]


def np_ce(logits, labels):
    return -np.take_along_axis(_np_log_softmax(logits), labels[..., None], -1)[..., 0]


def np_tce(logits, labels, alpha=losses.DEFAULT_TCE_ALPHA):
    prob = _np_label_prob(logits, labels)
    return -np.log(alpha + (1 - alpha) * prob) / (1 - alpha)


def np_gce(logits, labels, q=0.7):
    return (1 - _np_label_prob(logits, labels) ** q) / q


def np_rce(logits, labels, log_zero=-4.0):
    prob = _np_softmax(logits)
    onehot = _np_onehot(labels, logits.shape[-1])
    log_target = np.where(onehot > 0, 0.0, log_zero)  # log 1 = 0, log 0 := A
    return -(prob * log_target).sum(-1)


def np_sce(logits, labels, alpha=0.1, beta=1.0, log_zero=-4.0):
    return alpha * np_ce(logits, labels) + beta * np_rce(logits, labels, log_zero)


def np_nce(logits, labels):
    log_prob = _np_log_softmax(logits)
    return np_ce(logits, labels) / -log_prob.sum(-1)


def np_mae(logits, labels):
    onehot = _np_onehot(labels, logits.shape[-1])
    return 0.5 * np.abs(_np_softmax(logits) - onehot).sum(-1)


def np_nce_rce(logits, labels, alpha=1.0, beta=1.0, log_zero=-4.0):
    return alpha * np_nce(logits, labels) + beta * np_rce(logits, labels, log_zero)


def np_nce_mae(logits, labels, alpha=1.0, beta=1.0):
    return alpha * np_nce(logits, labels) + beta * np_mae(logits, labels)


def np_taylor(logits, labels, t=2):
    gap = 1 - _np_label_prob(logits, labels)
    return sum(gap**k / k for k in range(1, t + 1))


def np_phuber(logits, labels, tau=2.0):
    prob = _np_label_prob(logits, labels)
    return np.where(
        prob <= 1 / tau, -tau * prob + np.log(tau) + 1, np_ce(logits, labels)
    )


def _np_exp_t(x, t):
    if t == 1:
        return np.exp(x)
    return np.maximum(1 + (1 - t) * x, 0) ** (1 / (1 - t))


def _np_log_t(x, t):
    if t == 1:
        return np.log(x)
    return (x ** (1 - t) - 1) / (1 - t)


def _np_tempered_softmax(logits, t):
    """Solves sum_k exp_t(z_k - lam) = 1 for lam by bisection, per row."""
    low = logits.max(-1, keepdims=True)
    high = low + 1.0
    while np.any(_np_exp_t(logits - high, t).sum(-1) > 1):
        high = high + (high - low)
    for _ in range(200):
        mid = (low + high) / 2
        too_big = _np_exp_t(logits - mid, t).sum(-1, keepdims=True) > 1
        low, high = np.where(too_big, mid, low), np.where(too_big, high, mid)
    return _np_exp_t(logits - (low + high) / 2, t)


def np_bi_tempered(logits, labels, t1=0.8, t2=1.2, num_iters=5):
    del num_iters  # The reference solves for the normaliser exactly.
    prob = _np_tempered_softmax(logits, t2)
    onehot = _np_onehot(labels, logits.shape[-1])
    # Bregman form of the paper, with log_t(1) = 0 and 0 * log_t(0) = 0.
    return (
        -(onehot * _np_log_t(np.maximum(prob, 1e-300), t1)).sum(-1)
        - (onehot ** (2 - t1)).sum(-1) / (2 - t1)
        + (prob ** (2 - t1)).sum(-1) / (2 - t1)
    )


def np_focal(logits, labels, gamma=0.5):
    prob = _np_label_prob(logits, labels)
    return -((1 - prob) ** gamma) * np.log(prob)


def np_ls_ce(logits, labels, epsilon=0.1):
    num_classes = logits.shape[-1]
    target = (1 - epsilon) * _np_onehot(labels, num_classes) + epsilon / num_classes
    np.testing.assert_allclose(target.sum(-1), 1.0)
    return -(target * _np_log_softmax(logits)).sum(-1)


# The constant of the public code, written out here (not read from losses).
LOG_1E_4 = math.log(1e-4)


def np_sce_code(logits, labels, alpha=0.1, beta=1.0, log_zero=LOG_1E_4):
    return np_sce(logits, labels, alpha, beta, log_zero)


def np_rce_code(logits, labels, log_zero=LOG_1E_4):
    return np_rce(logits, labels, log_zero)


def np_nce_rce_code(logits, labels, alpha=1.0, beta=1.0, log_zero=LOG_1E_4):
    return np_nce_rce(logits, labels, alpha, beta, log_zero)


REFERENCES = {
    "ce": np_ce,
    "tce": np_tce,
    "gce": np_gce,
    "sce": np_sce,
    "rce": np_rce,
    "nce": np_nce,
    "nce_rce": np_nce_rce,
    "nce_mae": np_nce_mae,
    "mae": np_mae,
    "taylor_ce": np_taylor,
    "phuber_ce": np_phuber,
    "bi_tempered": np_bi_tempered,
    "focal": np_focal,
    "ls_ce": np_ls_ce,
    # The published-code variants: the same values (the focal weight differs
    # in the gradient only, pinned in tests/test_baseline_references.py).
    "sce_code": np_sce_code,
    "rce_code": np_rce_code,
    "nce_rce_code": np_nce_rce_code,
    "focal_code": np_focal,
}

# Non-default settings, so that each hyperparameter is seen to take effect.
OTHER_HPARAMS = {
    "ce": {},
    "tce": {"alpha": 0.3},
    "gce": {"q": 0.4},
    "sce": {"alpha": 6.0, "beta": 0.1, "log_zero": -2.0},
    "rce": {"log_zero": -9.0},
    "nce": {},
    "nce_rce": {"alpha": 10.0, "beta": 0.1},
    "nce_mae": {"alpha": 1.0, "beta": 10.0},
    "mae": {},
    "taylor_ce": {"t": 5},
    "phuber_ce": {"tau": 10.0},
    "bi_tempered": {"t1": 0.5, "t2": 2.0, "num_iters": 30},
    "focal": {"gamma": 2.0},
    "ls_ce": {"epsilon": 0.3},
    "sce_code": {"alpha": 6.0, "beta": 0.1},
    "rce_code": {"log_zero": -2.0},
    "nce_rce_code": {"alpha": 10.0, "beta": 0.1},
    "focal_code": {"gamma": 2.0},
}

# The registry's variants: the function defaults they override.
VARIANT_OPTIONS = {
    "sce_code": {"log_zero": losses.CODE_LOG_ZERO},
    "rce_code": {"log_zero": losses.CODE_LOG_ZERO},
    "nce_rce_code": {"log_zero": losses.CODE_LOG_ZERO},
    "focal_code": {"stop_gradient_weight": True},
}

# Out-of-range values for every range the registry checks.
INVALID_HPARAMS = [
    ("tce", {"alpha": -0.1}),
    ("tce", {"alpha": 1.0}),
    ("gce", {"q": 0.0}),
    ("gce", {"q": 1.5}),
    ("sce", {"alpha": -1.0}),
    ("sce", {"beta": -1.0}),
    ("sce", {"log_zero": 0.0}),
    ("rce", {"log_zero": 1.0}),
    ("nce_rce", {"alpha": -1.0}),
    ("nce_mae", {"beta": -0.5}),
    ("taylor_ce", {"t": 0}),
    ("taylor_ce", {"t": 1.5}),
    ("phuber_ce", {"tau": 1.0}),
    ("phuber_ce", {"tau": 0.5}),
    ("bi_tempered", {"t1": 1.2}),
    ("bi_tempered", {"t1": -0.1}),
    ("bi_tempered", {"t2": 0.9}),
    ("bi_tempered", {"num_iters": 0}),
    ("focal", {"gamma": -0.5}),
    ("ls_ce", {"epsilon": 1.0}),
    ("ls_ce", {"epsilon": -0.1}),
]


def _random_inputs(seed, shape=(6,), num_classes=NUM_CLASSES, scale=3.0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(*shape, num_classes)) * scale
    labels = rng.integers(0, num_classes, size=shape)
    return logits, labels


def _naive_tce(logits, labels, alpha):
    """TCE by plain autodiff of the log-space formula (no custom VJP)."""
    log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), labels[..., None], -1)[
        ..., 0
    ]
    return -jnp.logaddexp(jnp.log(alpha), jnp.log1p(-alpha) + log_prob) / (1 - alpha)


def _every_loss(fn_of_loss, **hparams_by_name):
    """``{name: fn_of_loss(loss_fn)}`` over the registry, for one jitted program.

    Compiling one program for all losses keeps this file fast; assertions then
    loop over the names with ``subTest`` so a failure still names its loss.
    """
    return {
        name: fn_of_loss(losses.get(name, **hparams_by_name.get(name, {})))
        for name in losses.names()
    }


def _value_and_grad_of_sum(loss_fn, logits, labels, **kwargs):
    return jax.value_and_grad(lambda z: jnp.sum(loss_fn(z, labels, **kwargs)))(logits)


@jax.jit
def _every_value_and_grad_of_sum(logits, labels):
    """Shared by several tests, so that each input signature compiles once."""
    return _every_loss(lambda fn: _value_and_grad_of_sum(fn, logits, labels))


# ----------------------------------------------------------------------------
# Values and gradients.


class ReferenceTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_defaults_match_reference(self):
        logits, labels = _random_inputs(0)
        got = self.variant(lambda z, y: _every_loss(lambda loss_fn: loss_fn(z, y)))(
            jnp.asarray(logits, jnp.float32), jnp.asarray(labels)
        )
        self.assertEqual(set(got), set(REFERENCES))
        for name, value in got.items():
            with self.subTest(name):
                chex.assert_shape(value, labels.shape)
                chex.assert_type(value, jnp.float32)
                want = REFERENCES[name](logits, labels, **losses.defaults(name))
                np.testing.assert_allclose(value, want, rtol=2e-5, atol=2e-6)

    def test_other_hparams_match_reference_in_float64(self):
        logits, labels = _random_inputs(1)
        with jax.enable_x64(True):
            got = jax.jit(
                lambda z, y: _every_loss(lambda fn: fn(z, y), **OTHER_HPARAMS)
            )(jnp.asarray(logits), jnp.asarray(labels))
        for name, value in got.items():
            with self.subTest(name):
                chex.assert_type(value, jnp.float64)
                want = REFERENCES[name](logits, labels, **OTHER_HPARAMS[name])
                np.testing.assert_allclose(value, want, rtol=1e-10, atol=1e-12)

    def test_gradients_by_finite_differences(self):
        logits, labels = _random_inputs(2, shape=(3,), num_classes=5, scale=1.5)
        with jax.enable_x64(True):

            @jax.jit
            def every_loss(z):
                values = _every_loss(
                    lambda loss_fn: loss_fn(z, labels), **OTHER_HPARAMS
                )
                # Its gradient is by design not the derivative of its value.
                del values["focal_code"]
                return values

            # One check over the dict of all losses (a failure lists the leaf).
            check_grads(every_loss, (jnp.asarray(logits),), order=1, modes=("rev",))

    def test_registry_defaults_are_the_function_defaults(self):
        logits, labels = _random_inputs(3)
        for name in losses.names():
            with self.subTest(name):
                registry_fn = losses.get(name)
                options = VARIANT_OPTIONS.get(name, {})
                np.testing.assert_array_equal(
                    registry_fn(logits, labels),
                    registry_fn.func(logits, labels, **options),
                )
                # A variant differs from its function's defaults (in the
                # value, or for focal_code in the gradient only).
                for key, value in options.items():
                    self.assertNotEqual(
                        inspect.signature(registry_fn.func).parameters[key].default,
                        value,
                    )


# ----------------------------------------------------------------------------
# TCE properties.

ALPHAS = (1e-6, 0.01, 0.3, 0.9, 1 - 1e-6)


class TamedCrossEntropyTest(chex.TestCase):
    def test_custom_vjp_equals_autodiff_of_naive_formula(self):
        logits, labels = _random_inputs(4, shape=(16,), scale=4.0)
        with jax.enable_x64(True):

            @jax.jit
            def custom_and_naive(z):
                def mean_loss(fn, alpha, z):
                    return jnp.mean(fn(z, labels, alpha=alpha))

                return {
                    alpha: (
                        jax.value_and_grad(
                            functools.partial(
                                mean_loss, losses.tamed_cross_entropy, alpha
                            )
                        )(z),
                        jax.value_and_grad(
                            functools.partial(mean_loss, _naive_tce, alpha)
                        )(z),
                    )
                    for alpha in ALPHAS
                }

            results = custom_and_naive(jnp.asarray(logits))
        for alpha, ((value, grad), (naive_value, naive_grad)) in results.items():
            with self.subTest(alpha=alpha):
                np.testing.assert_allclose(value, naive_value, rtol=1e-12)
                np.testing.assert_allclose(grad, naive_grad, rtol=1e-10, atol=1e-15)

    def test_custom_vjp_second_order(self):
        logits, labels = _random_inputs(5, shape=(3,), num_classes=4)
        with jax.enable_x64(True):
            fn = functools.partial(losses.tamed_cross_entropy, labels=labels, alpha=0.2)
            check_grads(jax.jit(fn), (jnp.asarray(logits),), order=2, modes=("rev",))

    @chex.variants(with_jit=True, without_jit=True)
    def test_alpha_zero_is_optax_cross_entropy(self):
        logits, labels = _random_inputs(6, shape=(32,), scale=5.0)
        logits, labels = jnp.asarray(logits, jnp.float32), jnp.asarray(labels)

        def mean_tce(z):
            return jnp.mean(losses.tamed_cross_entropy(z, labels, alpha=0.0))

        def mean_ce(z):
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(z, labels))

        value, grad = self.variant(jax.value_and_grad(mean_tce))(logits)
        ce_value, ce_grad = self.variant(jax.value_and_grad(mean_ce))(logits)
        np.testing.assert_allclose(value, ce_value, rtol=1e-7)
        np.testing.assert_allclose(grad, ce_grad, rtol=1e-6, atol=1e-9)

    @parameterized.parameters(*ALPHAS)
    def test_map_from_cross_entropy_keeps_relative_precision(self, alpha):
        # Margins 0..17: CE (and, as alpha -> 1, the loss) spans 0.7 down to 4e-8.
        margins = np.linspace(0.0, 17.0, 35, dtype=np.float32)
        logits = np.stack([margins, np.zeros_like(margins)], axis=-1)
        labels = np.zeros(len(margins), dtype=np.int32)
        got = losses.tamed_cross_entropy(logits, labels, alpha=alpha)
        # CE is computed as optax does; its float32 rounding is the input here.
        # From that input, TCE must be exact to a few ulps in relative terms:
        # forming 1 - p_y or alpha + (1 - alpha) p_y in float32 would not be.
        ce = np.asarray(losses.cross_entropy(logits, labels), np.float64)
        want = -np.log1p((1 - alpha) * np.expm1(-ce)) / (1 - alpha)
        np.testing.assert_allclose(got, want, rtol=4e-7)

    def test_alpha_to_one_tends_to_one_minus_label_prob(self):
        logits, labels = _random_inputs(24, shape=(64,), scale=5.0)
        one_minus_prob = 1 - _np_label_prob(logits, labels)
        for alpha, rtol in ((0.99, 1e-2), (1 - 1e-6, 2e-6)):
            got = losses.tamed_cross_entropy(
                jnp.asarray(logits, jnp.float32), labels, alpha=alpha
            )
            # atol: float32 CE has absolute rounding ~eps * |logsumexp|.
            np.testing.assert_allclose(got, one_minus_prob, rtol=rtol, atol=5e-6)

    def test_bounded(self):
        logits, labels = _random_inputs(7, shape=(200,), scale=30.0)
        every_alpha = jax.jit(
            lambda z, y: {
                alpha: losses.tamed_cross_entropy(z, y, alpha=alpha) for alpha in ALPHAS
            }
        )(logits, labels)
        for alpha, got in every_alpha.items():
            with self.subTest(alpha=alpha):
                got = np.asarray(got)
                bound = -math.log(alpha) / (1 - alpha)
                self.assertGreaterEqual(got.min(), 0.0)
                self.assertLessEqual(got.max(), bound * (1 + 1e-6))
                # Confidently contradicted examples reach the bound.
                self.assertGreater(got.max(), bound * (1 - 1e-3))

    def test_finite_at_extreme_logits(self):
        logits, labels = _random_inputs(8, shape=(8,))
        alphas = (0.0, 1e-6, 0.01, 1 - 1e-6)

        @jax.jit
        def values_grads_weights(z):
            return {
                alpha: (
                    _value_and_grad_of_sum(
                        losses.tamed_cross_entropy, z, labels, alpha=alpha
                    ),
                    losses.tce_gradient_weight(z, labels, alpha=alpha),
                )
                for alpha in alphas
            }

        for scale in (1e4, -1e4):
            extreme = jnp.asarray(np.sign(logits) * scale, jnp.float32)
            for alpha, result in values_grads_weights(extreme).items():
                with self.subTest(alpha=alpha, scale=scale):
                    chex.assert_tree_all_finite(result)

    def test_gradient_is_weighted_cross_entropy_gradient(self):
        logits, labels = _random_inputs(9, shape=(12,), scale=4.0)
        logits = jnp.asarray(logits, jnp.float32)
        alpha = 0.05

        @jax.jit
        def grads_and_weight(z):
            tce_grad = jax.grad(
                lambda z: jnp.sum(losses.tamed_cross_entropy(z, labels, alpha=alpha))
            )(z)
            ce_grad = jax.grad(lambda z: jnp.sum(losses.cross_entropy(z, labels)))(z)
            return tce_grad, ce_grad, losses.tce_gradient_weight(z, labels, alpha=alpha)

        tce_grad, ce_grad, weight = grads_and_weight(logits)
        np.testing.assert_allclose(tce_grad, weight[:, None] * ce_grad, atol=1e-7)

    def test_gradient_weight_matches_formula(self):
        logits, labels = _random_inputs(10, shape=(100,), scale=6.0)
        for alpha in (0.0, *ALPHAS):
            prob = _np_label_prob(logits, labels)
            want = prob / (alpha + (1 - alpha) * prob)
            got = jax.jit(functools.partial(losses.tce_gradient_weight, alpha=alpha))(
                logits, labels
            )
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-30)
            self.assertTrue(np.all((np.asarray(got) >= 0) & (np.asarray(got) <= 1)))

    def test_gradient_weight_limits(self):
        # w -> 1 as p_y -> 1 and w -> 0 as p_y -> 0.
        logits = jnp.array([[30.0, 0.0], [-30.0, 0.0]])
        weight = losses.tce_gradient_weight(logits, jnp.array([0, 0]), alpha=0.01)
        np.testing.assert_allclose(weight, [1.0, 0.0], atol=1e-10)

    def test_soft_labels_variant(self):
        logits, labels = _random_inputs(11, shape=(10,))
        onehot = jax.nn.one_hot(labels, NUM_CLASSES)
        alphas = (0.0, 0.01, 0.5)
        soft, hard = jax.jit(
            lambda z: (
                [
                    losses.tamed_cross_entropy_with_soft_labels(z, onehot, alpha=a)
                    for a in alphas
                ],
                [losses.tamed_cross_entropy(z, labels, alpha=a) for a in alphas],
            )
        )(logits)
        np.testing.assert_allclose(soft, hard, rtol=1e-6)
        target = np.random.default_rng(0).dirichlet(np.ones(NUM_CLASSES), size=10)
        soft_ce = -(target * _np_log_softmax(logits)).sum(-1)
        want = -np.log(0.1 + 0.9 * np.exp(-soft_ce)) / 0.9
        with jax.enable_x64(True):
            fn = jax.jit(
                functools.partial(
                    losses.tamed_cross_entropy_with_soft_labels,
                    labels=target,
                    alpha=0.1,
                )
            )
            np.testing.assert_allclose(fn(logits), want, rtol=1e-12)
            check_grads(fn, (jnp.asarray(logits),), order=1, modes=("rev",))


# ----------------------------------------------------------------------------
# Dtypes, shapes, masks, transformations, sharding.


class TracedAlphaTest(chex.TestCase):
    """TCE with ``alpha`` traced under jit/grad, as the train state passes it."""

    def test_value_and_logit_gradient_equal_the_static_alpha(self):
        logits, labels = _random_inputs(40, shape=(32,), scale=4.0)
        with jax.enable_x64(True):
            z = jnp.asarray(logits)

            def mean_loss(z, alpha):
                return jnp.mean(losses.tamed_cross_entropy(z, labels, alpha=alpha))

            traced = jax.jit(jax.value_and_grad(mean_loss))
            for alpha in (0.0, *ALPHAS):
                with self.subTest(alpha=alpha):
                    value, grad = traced(z, jnp.float64(alpha))
                    expected = np.mean(np_tce(logits, labels, alpha))
                    static_value, static_grad = jax.value_and_grad(mean_loss)(z, alpha)
                    np.testing.assert_allclose(value, expected, rtol=1e-10)
                    np.testing.assert_allclose(value, static_value, rtol=1e-12)
                    np.testing.assert_allclose(
                        grad, static_grad, rtol=1e-10, atol=1e-15
                    )

    def test_alpha_gradient_matches_finite_differences(self):
        logits, labels = _random_inputs(41, shape=(8,), scale=3.0)
        with jax.enable_x64(True):
            fn = jax.jit(lambda z, a: losses.tamed_cross_entropy(z, labels, alpha=a))
            for alpha in (0.05, 0.3, 0.9):
                with self.subTest(alpha=alpha):
                    check_grads(
                        fn,
                        (jnp.asarray(logits), jnp.float64(alpha)),
                        order=1,
                        modes=("rev",),
                    )

    def test_alpha_gradient_equals_the_derivative_of_the_reference(self):
        logits, labels = _random_inputs(42, shape=(16,), scale=3.0)
        alpha, h = 0.2, 1e-6
        with jax.enable_x64(True):
            grad = jax.jit(
                jax.grad(
                    lambda a: jnp.sum(
                        losses.tamed_cross_entropy(logits, labels, alpha=a)
                    )
                )
            )(jnp.float64(alpha))
        expected = (
            np.sum(np_tce(logits, labels, alpha + h))
            - np.sum(np_tce(logits, labels, alpha - h))
        ) / (2 * h)
        np.testing.assert_allclose(grad, expected, rtol=1e-7)

    def test_float32_traced_alpha_is_finite_at_the_extremes(self):
        z = jnp.array([[1e4, 0.0, -1e4], [0.0, 0.0, 0.0]], jnp.float32)
        labels = jnp.array([2, 1])
        fn = jax.jit(
            jax.value_and_grad(
                lambda z, a: jnp.sum(losses.tamed_cross_entropy(z, labels, alpha=a))
            )
        )
        for alpha in (1e-6, 0.5, 1 - 1e-6):
            with self.subTest(alpha=alpha):
                value, grad = fn(z, jnp.float32(alpha))
                self.assertTrue(np.isfinite(value))
                self.assertTrue(np.all(np.isfinite(grad)))

    def test_one_compilation_serves_every_alpha(self):
        logits, labels = _random_inputs(43)
        fn = jax.jit(lambda a: losses.tamed_cross_entropy(logits, labels, alpha=a))
        for alpha in (0.1, 0.2, 0.45):
            fn(jnp.float32(alpha))
        self.assertEqual(fn._cache_size(), 1)

    def test_soft_labels_and_gradient_weight_take_a_traced_alpha(self):
        logits, labels = _random_inputs(44, shape=(8,))
        target = jax.nn.one_hot(labels, NUM_CLASSES)
        alpha = 0.25
        soft = jax.jit(
            lambda a: losses.tamed_cross_entropy_with_soft_labels(
                logits, target, alpha=a
            )
        )(jnp.float32(alpha))
        weight = jax.jit(lambda a: losses.tce_gradient_weight(logits, labels, alpha=a))(
            jnp.float32(alpha)
        )
        np.testing.assert_allclose(soft, np_tce(logits, labels, alpha), rtol=1e-5)
        np.testing.assert_allclose(
            weight,
            losses.tce_gradient_weight(logits, labels, alpha=alpha),
            rtol=1e-5,
        )

    def test_traced_alpha_outside_the_range_gives_nan(self):
        logits, labels = _random_inputs(45)
        fn = jax.jit(lambda a: losses.tamed_cross_entropy(logits, labels, alpha=a))
        for alpha in (-0.1, 1.0, 1.5):
            with self.subTest(alpha=alpha):
                self.assertTrue(np.all(np.isnan(fn(jnp.float32(alpha)))))

    def test_traced_alpha_must_be_a_float_scalar(self):
        logits, labels = _random_inputs(46)
        fn = jax.jit(lambda a: losses.tamed_cross_entropy(logits, labels, alpha=a))
        with self.assertRaisesRegex(TypeError, "floating scalar"):
            fn(jnp.full((6,), 0.1, jnp.float32))
        with self.assertRaisesRegex(TypeError, "floating scalar"):
            fn(jnp.int32(0))


class ConventionsTest(chex.TestCase):
    @pytest.mark.slow
    def test_bfloat16_computes_in_float32_and_returns_bfloat16_gradients(self):
        logits, labels = _random_inputs(12, shape=(16,))
        logits_bf16 = jnp.asarray(logits, jnp.bfloat16)
        low = _every_value_and_grad_of_sum(logits_bf16, labels)
        high = _every_value_and_grad_of_sum(logits_bf16.astype(jnp.float32), labels)
        for name in losses.names():
            with self.subTest(name):
                (value, grad), (want_value, want_grad) = low[name], high[name]
                chex.assert_type(value, jnp.float32)
                chex.assert_type(grad, jnp.bfloat16)
                np.testing.assert_allclose(value, want_value, rtol=1e-6)
                np.testing.assert_allclose(
                    grad.astype(jnp.float32), want_grad, rtol=1e-2, atol=1e-2
                )

    def test_float16(self):
        logits, labels = _random_inputs(13)
        value = losses.tamed_cross_entropy(jnp.asarray(logits, jnp.float16), labels)
        chex.assert_type(value, jnp.float32)

    def test_leading_dims_and_axis(self):
        logits, labels = _random_inputs(14, shape=(2, 3))

        @jax.jit
        def three_layouts(logits, labels):
            flat = _every_loss(
                lambda fn: fn(logits.reshape(6, NUM_CLASSES), labels.reshape(6))
            )
            batch_time = _every_loss(lambda fn: fn(logits, labels))
            # Class axis first: [K, batch, time].
            classes_first = _every_loss(
                lambda fn: fn(jnp.moveaxis(logits, -1, 0), labels, axis=0)
            )
            return flat, batch_time, classes_first

        flat, batch_time, classes_first = three_layouts(logits, labels)
        for name in losses.names():
            with self.subTest(name):
                want = flat[name].reshape(2, 3)
                chex.assert_shape(batch_time[name], (2, 3))
                np.testing.assert_allclose(batch_time[name], want, rtol=1e-6, atol=1e-7)
                np.testing.assert_allclose(
                    classes_first[name], want, rtol=1e-6, atol=1e-7
                )

    def test_tuple_axis_flattens_classes(self):
        logits, labels = _random_inputs(15, shape=(4,), num_classes=12)
        grid = logits.reshape(4, 3, 4)
        by_grid, flat = jax.jit(
            lambda grid, flat: (
                losses.tamed_cross_entropy(grid, labels, axis=(1, 2)),
                losses.tamed_cross_entropy(flat, labels),
            )
        )(grid, logits)
        np.testing.assert_allclose(by_grid, flat, rtol=1e-6)

    @pytest.mark.slow
    def test_where_masks_value_and_gradient(self):
        logits, labels = _random_inputs(16, shape=(6,))
        mask = np.array([True, False, True, True, False, True])
        # Masked examples hold garbage: NaN/inf logits and an invalid label.
        dirty = logits.copy()
        dirty[1] = np.nan
        dirty[4] = np.inf
        dirty_labels = labels.copy()
        dirty_labels[~mask] = -1

        @jax.jit
        def masked_and_clean(dirty, clean):
            masked = _every_loss(
                lambda fn: (
                    fn(dirty, dirty_labels, where=mask),
                    _value_and_grad_of_sum(fn, dirty, dirty_labels, where=mask)[1],
                )
            )
            return masked, _every_loss(lambda fn: fn(clean, labels[mask]))

        masked, clean = masked_and_clean(
            jnp.asarray(dirty, jnp.float32), jnp.asarray(logits[mask], jnp.float32)
        )
        for name in losses.names():
            with self.subTest(name):
                value, grad = masked[name]
                chex.assert_tree_all_finite((value, grad))
                np.testing.assert_array_equal(np.asarray(value)[~mask], 0.0)
                np.testing.assert_array_equal(np.asarray(grad)[~mask], 0.0)
                np.testing.assert_allclose(
                    np.asarray(value)[mask], clean[name], rtol=1e-6
                )

    @chex.variants(with_jit=True, without_jit=True)
    def test_vmap_of_grad_equals_batch_grad(self):
        logits, labels = _random_inputs(17, shape=(8,))
        logits = jnp.asarray(logits, jnp.float32)

        def per_example(z, y):
            return losses.tamed_cross_entropy(z[None], y[None], alpha=0.1)[0]

        per_example_grad = self.variant(jax.vmap(jax.grad(per_example)))(logits, labels)
        batch_grad = jax.jit(
            jax.grad(
                lambda z: jnp.sum(losses.tamed_cross_entropy(z, labels, alpha=0.1))
            )
        )(logits)
        np.testing.assert_allclose(per_example_grad, batch_grad, rtol=1e-6, atol=1e-8)

    def test_hessian_of_jit_matches_naive(self):
        # Forward-over-reverse through the custom VJP, inside jit.
        logits, labels = _random_inputs(17, shape=(1,))
        z, y = jnp.asarray(logits[0], jnp.float32), labels[0]
        hessian = jax.jit(
            jax.hessian(lambda z: losses.tamed_cross_entropy(z, y, alpha=0.1))
        )(z)
        naive_hessian = jax.jit(jax.hessian(lambda z: _naive_tce(z, y, 0.1)))(z)
        np.testing.assert_allclose(hessian, naive_hessian, rtol=1e-4, atol=1e-6)

    def test_sharded_batch_matches_single_device(self):
        devices = jax.devices()
        self.assertGreaterEqual(len(devices), 4, "conftest should provide 4 devices")
        logits, labels = _random_inputs(18, shape=(32,), num_classes=10)
        logits = np.asarray(logits, np.float32)

        # TCE, its reference CE, and the losses with whole-row reductions (the
        # NCE denominator, the bi-tempered normaliser's fixed point).
        sharded_names = ("tce", "ce", "nce_rce", "bi_tempered")

        def mean_loss(name, z, y):
            return jnp.mean(losses.get(name)(z, y))

        @jax.jit
        def mean_losses_and_grads(z, y):
            return {
                name: jax.value_and_grad(functools.partial(mean_loss, name))(z, y)
                for name in sharded_names
            }

        results = []
        for mesh_devices in (devices[:4], devices[:1]):
            mesh = Mesh(np.asarray(mesh_devices), ("data",))
            sharding = NamedSharding(mesh, P("data"))
            result = mean_losses_and_grads(
                jax.device_put(logits, sharding), jax.device_put(labels, sharding)
            )
            grad = result["tce"][1]
            self.assertEqual(len(grad.sharding.device_set), len(mesh_devices))
            results.append(result)
        sharded, single = results
        for name in sharded_names:
            with self.subTest(name):
                (value_4, grad_4), (value_1, grad_1) = sharded[name], single[name]
                np.testing.assert_allclose(value_4, value_1, rtol=1e-6)
                np.testing.assert_allclose(grad_4, grad_1, rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------------------------
# Special cases that pin the baselines' definitions.


class BaselineDefinitionTest(chex.TestCase):
    def test_reductions(self):
        logits, labels = _random_inputs(19)
        ce = losses.cross_entropy(logits, labels)
        mae = losses.mean_absolute_error(logits, labels)
        close = functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6)
        close(losses.bi_tempered_logistic_loss(logits, labels, t1=1.0, t2=1.0), ce)
        close(losses.generalized_cross_entropy(logits, labels, q=1.0), mae)
        close(losses.generalized_cross_entropy(logits, labels, q=1e-4), ce, rtol=1e-3)
        close(losses.taylor_cross_entropy(logits, labels, t=1), mae)
        close(losses.focal_loss(logits, labels, gamma=0.0), ce)
        close(losses.label_smoothed_cross_entropy(logits, labels, epsilon=0.0), ce)
        close(losses.symmetric_cross_entropy(logits, labels, alpha=1.0, beta=0.0), ce)

    def test_reverse_cross_entropy_uses_log_zero_directly(self):
        # p_y ~ 0: RCE = -A = 4 exactly, not -log(1e-4) = 9.21 of a clamp.
        logits = jnp.array([[-50.0, 50.0, 0.0]])
        got = losses.reverse_cross_entropy(logits, jnp.array([0]))
        np.testing.assert_allclose(got, [4.0], rtol=1e-6)

    def test_focal_gradient_is_zero_not_nan_at_certainty(self):
        logits = jnp.array([[100.0, 0.0, 0.0]])
        grad = jax.jit(
            jax.grad(lambda z: jnp.sum(losses.focal_loss(z, jnp.array([0]))))
        )(logits)
        np.testing.assert_array_equal(grad, jnp.zeros_like(grad))

    def test_finite_at_extreme_logits(self):
        logits, labels = _random_inputs(20, shape=(16,))
        for scale in (1e4, -1e4):
            extreme = jnp.asarray(np.sign(logits) * scale, jnp.float32)
            for name, result in _every_value_and_grad_of_sum(extreme, labels).items():
                with self.subTest(name=name, scale=scale):
                    chex.assert_tree_all_finite(result)


# ----------------------------------------------------------------------------
# Registry and invalid inputs.


class RegistryTest(parameterized.TestCase):
    def test_names(self):
        required = {
            "ce", "tce", "gce", "sce", "nce_rce", "nce_mae", "mae", "taylor_ce",
            "phuber_ce", "bi_tempered", "focal", "ls_ce", "rce", "nce",
        }  # fmt: skip
        self.assertTrue(required <= set(losses.names()))
        self.assertEqual(list(losses.names()), sorted(losses.names()))

    def test_hparam_names_and_defaults(self):
        self.assertEqual(losses.hparam_names("tce"), ("alpha",))
        self.assertEqual(losses.defaults("tce"), {"alpha": losses.DEFAULT_TCE_ALPHA})
        self.assertEqual(losses.hparam_names("ce"), ())
        self.assertEqual(
            losses.defaults("sce"), {"alpha": 0.1, "beta": 1.0, "log_zero": -4.0}
        )
        for name in losses.names():
            self.assertEqual(tuple(losses.defaults(name)), losses.hparam_names(name))

    def test_none_means_default(self):
        self.assertEqual(losses.get("gce", q=None).keywords, losses.get("gce").keywords)

    def test_unknown_name_lists_known_names(self):
        with self.assertRaisesRegex(ValueError, r"known losses: .*tce"):
            losses.get("tamed")

    def test_unknown_hparam_lists_allowed(self):
        with self.assertRaisesRegex(ValueError, r"no hyperparameter q; allowed: alpha"):
            losses.get("tce", q=0.7)
        with self.assertRaisesRegex(ValueError, r"allowed: none"):
            losses.get("ce", alpha=0.1)

    @parameterized.parameters(*INVALID_HPARAMS)
    def test_out_of_range_hparam(self, name, hparams):
        (key,) = hparams
        with self.assertRaisesRegex(ValueError, rf"{key} must be .* in "):
            losses.get(name, **hparams)
        logits, labels = _random_inputs(21)
        with self.assertRaisesRegex(ValueError, rf"{key} must be"):
            losses.get(name).func(logits, labels, **hparams)

    def test_traced_hparam_is_a_type_error(self):
        # TCE's alpha alone may be traced (TracedAlphaTest).
        logits, labels = _random_inputs(22)
        with self.assertRaisesRegex(TypeError, "static Python number"):
            jax.jit(lambda q: losses.generalized_cross_entropy(logits, labels, q=q))(
                0.7
            )

    def test_invalid_inputs(self):
        logits, labels = _random_inputs(23, shape=(4,))
        tce = losses.tamed_cross_entropy
        with self.assertRaisesRegex(TypeError, "logits must be floating"):
            tce(logits.astype(np.int32), labels)
        with self.assertRaisesRegex(TypeError, "labels must be integers"):
            tce(logits, labels.astype(np.float32))
        with self.assertRaisesRegex(ValueError, "labels shape"):
            tce(logits, labels[:3])
        with self.assertRaisesRegex(ValueError, "labels shape"):
            tce(logits, labels[:, None])
        with self.assertRaisesRegex(ValueError, "out of range"):
            tce(logits, labels, axis=2)
        with self.assertRaisesRegex(ValueError, "repeats"):
            tce(logits, labels, axis=(1, -1))
        with self.assertRaisesRegex(TypeError, "axis must be"):
            tce(logits, labels, axis=1.0)
        with self.assertRaisesRegex(ValueError, "class axis"):
            tce(np.float32(1.0), labels)
        with self.assertRaisesRegex(TypeError, "where must be boolean"):
            tce(logits, labels, where=np.ones(4))
        with self.assertRaisesRegex(ValueError, "where shape"):
            tce(logits, labels, where=np.ones(3, bool))
        with self.assertRaisesRegex(TypeError, "soft labels must be floating"):
            losses.tamed_cross_entropy_with_soft_labels(logits, labels)
        with self.assertRaisesRegex(ValueError, "soft labels shape"):
            losses.tamed_cross_entropy_with_soft_labels(logits, logits[:, :3])
        # Errors are raised while tracing, before any computation.
        with self.assertRaisesRegex(ValueError, "labels shape"):
            jax.jit(tce).lower(logits, labels[:3])


# ----------------------------------------------------------------------------
# Memory of the backward pass.


def _temp_bytes(fn, logits, labels):
    compiled = (
        jax.jit(jax.value_and_grad(lambda z, y: jnp.mean(fn(z, y))))
        .lower(logits, labels)
        .compile()
    )
    return compiled.memory_analysis().temp_size_in_bytes


@pytest.mark.parametrize("shape", [(1024, 10), (512, 1000)])
def test_backward_memory_no_more_than_optax_cross_entropy(shape):
    batch, num_classes = shape
    logits = jnp.zeros(shape, jnp.float32)
    labels = jnp.zeros((batch,), jnp.int32)
    ce_bytes = _temp_bytes(
        optax.softmax_cross_entropy_with_integer_labels, logits, labels
    )
    tce_bytes = _temp_bytes(losses.tamed_cross_entropy, logits, labels)
    naive_bytes = _temp_bytes(
        functools.partial(_naive_tce, alpha=losses.DEFAULT_TCE_ALPHA), logits, labels
    )
    per_example = batch * 4
    # TCE may keep a few per-example vectors (the weight), never a [batch, K] one.
    assert tce_bytes <= ce_bytes + 2 * per_example, (tce_bytes, ce_bytes)
    # The check can fail: autodiff of the naive formula keeps whole log-softmaxes.
    assert naive_bytes >= ce_bytes + batch * num_classes * 4, (naive_bytes, ce_bytes)


def _full_size_instructions(loss_fn, logits, labels) -> int:
    """Instructions of the compiled ``value_and_grad`` with a [batch, K] result."""
    compiled = (
        jax.jit(jax.value_and_grad(lambda z, y: jnp.mean(loss_fn(z, y))))
        .lower(logits, labels)
        .compile()
    )
    text = compiled.as_text()
    entry = text[text.index("ENTRY") :]
    entry = entry[: entry.index("\n}")]
    batch, num_classes = logits.shape
    return len(re.findall(rf"= f32\[{batch},{num_classes}\]", entry))


def test_tce_adds_no_full_size_work_to_cross_entropy():
    # TCE = CE + a per-example map: XLA must compile it to the same number of
    # [batch, K] passes as optax's CE; only per-example instructions may differ.
    logits = jnp.zeros((512, 1000), jnp.float32)
    labels = jnp.zeros((512,), jnp.int32)
    ce_passes = _full_size_instructions(
        optax.softmax_cross_entropy_with_integer_labels, logits, labels
    )
    tce_passes = _full_size_instructions(losses.tamed_cross_entropy, logits, labels)
    assert tce_passes == ce_passes, (tce_passes, ce_passes)
    # The check can fail: autodiff of the naive formula adds [batch, K] passes.
    naive = functools.partial(_naive_tce, alpha=losses.DEFAULT_TCE_ALPHA)
    assert _full_size_instructions(naive, logits, labels) > ce_passes

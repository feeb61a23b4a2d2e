"""Each baseline against float64 NumPy references: its formula and its published code.

Two references per loss, both written here from scratch in NumPy float64, per
example, values and gradients (gradients derived by hand, not by autodiff):

* ``FORMULA``: the loss as its paper (or this project, for the ``*_code``
  variants) writes it, in exact maths. The registry loss must match it to
  ~1e-12 on random and on extreme logits.
* ``CODE``: what the public code the published numbers come from computes,
  with its clamps and constants (the active-passive losses' and the SCE
  reproduction's PyTorch code, the official Keras SCE, Google's bi-tempered
  JAX code, the focal code those baselines use, PyTorch's label smoothing).
  Where its conventions are the project's, the registry loss matches it to
  ~1e-12; where they differ, the difference is the one ``CONVENTIONS`` writes
  out, and the tests pin it (bounded, or exactly where it is a constant).

Run as a script (``python3 tests/test_baseline_references.py``) it prints
the measured differences between each registry loss and its published code,
the table docs/losses.md quotes.
"""

import functools
import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from tce_jax import losses

CLAMP_PROB = 1e-7  # probabilities clamped from below before a log or power
CLAMP_LABEL = 1e-4  # the one-hot label clamped before its log: A = ln 1e-4
CODE_A = math.log(CLAMP_LABEL)
PAPER_A = -4.0

# What each published code does differently from the registry loss named.
CONVENTIONS = {
    "ce": "none (PyTorch CrossEntropyLoss).",
    "ls_ce": "none (PyTorch CrossEntropyLoss with label_smoothing: target "
    "(1 - e) onehot + e / K).",
    "gce": "the code clamps p at 1e-7 before the power: below, value "
    "(1 - 1e-7^q) / q and zero gradient; here exact (value to 1/q, "
    "gradient -p_y^q (e_y - p)).",
    "sce": "A: the paper's -4 here, ln 1e-4 = -9.21 in the code (2.30 times "
    "the RCE term); and the clamps of sce_code.",
    "sce_code": "PyTorch code: RCE sums max(p_k, 1e-7) over k != y (value up "
    "to 9.21 (K - 1) 1e-7 higher, zero gradient from the clamped p_k); Keras "
    "code: CE of max(p_y, 1e-7), capped at 16.12 with zero gradient beyond, "
    "RCE exact. Equal where every p_k >= 1e-7.",
    "rce": "A = -4 here, ln 1e-4 in the code; and the clamp of rce_code.",
    "rce_code": "the code sums max(p_k, 1e-7) over k != y (as sce_code's "
    "PyTorch RCE). Equal where every p_k >= 1e-7.",
    "nce": "none (the active-passive code).",
    "nce_rce": "A = -4 here, ln 1e-4 in the code; and the clamp of nce_rce_code.",
    "nce_rce_code": "the RCE term's clamp, as rce_code.",
    "nce_mae": "none (the active-passive code).",
    "mae": "none against the active-passive code (1 - p_y); Ghosh et al.'s "
    "paper writes the full L1 distance, 2 (1 - p_y).",
    "taylor_ce": "none (the formula).",
    "phuber_ce": "none (the formula as the public reproduction computes it).",
    "bi_tempered": "Google's code: the normaliser from 5 fixed-point "
    "iterations (here solved to convergence), and log_t(1 + 1e-10) added to "
    "the label term (value +1e-10, no gradient); gradient the exact "
    "normaliser's in both.",
    "focal": "the code holds (1 - p_y)^gamma constant in the backward pass "
    "(focal_code does too); here the formula is differentiated.",
    "focal_code": "none.",
}


# ----------------------------------------------------------------------------
# NumPy float64 building blocks.


def _log_softmax(z):
    shifted = z - z.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def _onehot(y, k):
    return np.eye(k)[y]


def _label_prob(z, y):
    return np.exp(_take(_log_softmax(z), y))


def _take(a, y):
    return np.take_along_axis(a, y[:, None], -1)[:, 0]


def _through_label_prob(z, y, dloss_dprob):
    """d loss / dz for a loss of p_y alone: (dL/dp_y) p_y (e_y - p)."""
    p = np.exp(_log_softmax(z))
    p_y = _take(p, y)
    return (dloss_dprob * p_y)[:, None] * (_onehot(y, z.shape[-1]) - p)


def _ce(z, y):
    p = np.exp(_log_softmax(z))
    return -_take(_log_softmax(z), y), p - _onehot(y, z.shape[-1])


def _ce_clamped(z, y):
    """Keras: -log(clip(p_y, 1e-7, 1)); zero gradient where clipped."""
    p_y = _label_prob(z, y)
    value = -np.log(np.maximum(p_y, CLAMP_PROB))
    grad = np.where((p_y >= CLAMP_PROB)[:, None], _ce(z, y)[1], 0.0)
    return value, grad


def _rce_exact(z, y, a):
    p_y = _label_prob(z, y)
    # -A (1 - p_y), with d(1 - p_y) = -p_y (e_y - p).
    return -a * -np.expm1(_take(_log_softmax(z), y)), _through_label_prob(
        z, y, np.full_like(p_y, a)
    )


def _rce_clamped(z, y, a):
    """PyTorch: -sum_k clamp(p_k, 1e-7, 1) log(clamp(onehot_k, 1e-4, 1))."""
    k = z.shape[-1]
    p = np.exp(_log_softmax(z))
    others = 1.0 - _onehot(y, k)
    kept = (p >= CLAMP_PROB) & (others > 0)
    value = -a * (np.maximum(p, CLAMP_PROB) * others).sum(-1)
    # d p_k / dz = p_k (e_k - p), summed over the unclamped k != y.
    grad = -a * ((p * kept)[:, :, None] * (np.eye(k)[None] - p[:, None, :])).sum(1)
    return value, grad


def _nce(z, y):
    k = z.shape[-1]
    log_p = _log_softmax(z)
    p = np.exp(log_p)
    num, den = _take(log_p, y), log_p.sum(-1)
    dnum = _onehot(y, k) - p
    dden = 1.0 - k * p
    return num / den, (dnum * den[:, None] - num[:, None] * dden) / den[:, None] ** 2


def _mae(z, y):
    p_y = _label_prob(z, y)
    return -np.expm1(_take(_log_softmax(z), y)), _through_label_prob(
        z, y, -np.ones_like(p_y)
    )


def _gce(z, y, q, clamp):
    p_y = _label_prob(z, y)
    if clamp:
        kept = p_y >= CLAMP_PROB
        value = (1.0 - np.maximum(p_y, CLAMP_PROB) ** q) / q
        safe = np.where(kept, p_y, 1.0)
        grad = _through_label_prob(z, y, np.where(kept, -(safe ** (q - 1)), 0.0))
        return value, grad
    value = -np.expm1(q * _take(_log_softmax(z), y)) / q
    # p_y^(q-1) p_y = p_y^q: finite where p_y underflows.
    p = np.exp(_log_softmax(z))
    grad = -(p_y**q)[:, None] * (_onehot(y, z.shape[-1]) - p)
    return value, grad


def _taylor(z, y, t):
    gap = -np.expm1(_take(_log_softmax(z), y))
    value = sum(gap**n / n for n in range(1, t + 1))
    return value, _through_label_prob(
        z, y, -sum(gap ** (n - 1) for n in range(1, t + 1))
    )


def _phuber(z, y, tau):
    p_y = _label_prob(z, y)
    linear = p_y <= 1.0 / tau
    ce_value, ce_grad = _ce(z, y)
    value = np.where(linear, -tau * p_y + np.log(tau) + 1.0, ce_value)
    grad = np.where(linear[:, None], _through_label_prob(z, y, -tau + 0 * p_y), ce_grad)
    return value, grad


def _focal(z, y, gamma, detached):
    k = z.shape[-1]
    log_p_y = _take(_log_softmax(z), y)
    p = np.exp(_log_softmax(z))
    gap = -np.expm1(log_p_y)
    weight = gap**gamma
    ce_grad = p - _onehot(y, k)
    if detached:
        return -weight * log_p_y, weight[:, None] * ce_grad
    # d weight / dz = -gamma gap^(gamma - 1) p_y (e_y - p); 0 where gap = 0.
    safe_gap = np.where(gap > 0, gap, 1.0)
    dweight = np.where(gap > 0, -gamma * safe_gap ** (gamma - 1), 0.0)
    grad = weight[:, None] * ce_grad - (log_p_y * dweight)[:, None] * (
        _through_label_prob(z, y, np.ones_like(gap))
    )
    return -weight * log_p_y, grad


def _ls(z, y, epsilon):
    k = z.shape[-1]
    target = (1.0 - epsilon) * _onehot(y, k) + epsilon / k
    return -(target * _log_softmax(z)).sum(-1), np.exp(_log_softmax(z)) - target


def _tempered_softmax(z, t):
    """Solves sum_k exp_t(z_k - lam) = 1 by bisection (200 halvings)."""
    if t == 1.0:
        return np.exp(_log_softmax(z))

    def exp_t(x):
        return np.maximum(1.0 + (1.0 - t) * x, 0.0) ** (1.0 / (1.0 - t))

    low = z.max(-1, keepdims=True)
    high = low + 1.0
    while np.any(exp_t(z - high).sum(-1) > 1):
        high = high + (high - low)
    for _ in range(200):
        mid = (low + high) / 2
        above = exp_t(z - mid).sum(-1, keepdims=True) > 1
        low, high = np.where(above, mid, low), np.where(above, high, mid)
    return exp_t(z - (low + high) / 2)


def _bi_tempered(z, y, t1, t2, label_offset):
    """Value with the exact normaliser; gradient as Google's backward pass."""
    k = z.shape[-1]
    p = _tempered_softmax(z, t2)
    p_y = _take(p, y)
    log_t = (
        (lambda x: np.log(x))
        if t1 == 1.0
        else (lambda x: (x ** (1.0 - t1) - 1.0) / (1.0 - t1))
    )
    value = (
        log_t(1.0 + label_offset)
        - log_t(p_y)
        - (1.0 - (p ** (2.0 - t1)).sum(-1)) / (2.0 - t1)
    )
    delta = (p - _onehot(y, k)) * p ** (t2 - t1)
    escort = p**t2 / (p**t2).sum(-1, keepdims=True)
    return value, delta - escort * delta.sum(-1, keepdims=True)


def _scaled(reference, weight):
    def fn(z, y):
        value, grad = reference(z, y)
        return weight * value, weight * grad

    return fn


def _plus(*terms):
    def fn(z, y):
        parts = [term(z, y) for term in terms]
        return sum(v for v, _ in parts), sum(g for _, g in parts)

    return fn


# ----------------------------------------------------------------------------
# The references, at each loss's registry defaults.


def formula_reference(name, hparams):
    """The loss as written (paper, or this project for a *_code variant)."""
    h = hparams
    match name:
        case "ce":
            return _ce
        case "ls_ce":
            return lambda z, y: _ls(z, y, h["epsilon"])
        case "gce":
            return lambda z, y: _gce(z, y, h["q"], clamp=False)
        case "rce" | "rce_code":
            return lambda z, y: _rce_exact(z, y, h["log_zero"])
        case "sce" | "sce_code":
            return _plus(
                _scaled(_ce, h["alpha"]),
                _scaled(lambda z, y: _rce_exact(z, y, h["log_zero"]), h["beta"]),
            )
        case "nce":
            return _nce
        case "nce_rce" | "nce_rce_code":
            return _plus(
                _scaled(_nce, h["alpha"]),
                _scaled(lambda z, y: _rce_exact(z, y, h["log_zero"]), h["beta"]),
            )
        case "nce_mae":
            return _plus(_scaled(_nce, h["alpha"]), _scaled(_mae, h["beta"]))
        case "mae":
            return _mae
        case "taylor_ce":
            return lambda z, y: _taylor(z, y, h["t"])
        case "phuber_ce":
            return lambda z, y: _phuber(z, y, h["tau"])
        case "bi_tempered":
            return lambda z, y: _bi_tempered(z, y, h["t1"], h["t2"], 0.0)
        case "focal":
            return lambda z, y: _focal(z, y, h["gamma"], detached=False)
        case "focal_code":
            return lambda z, y: _focal(z, y, h["gamma"], detached=True)
    raise KeyError(name)


def code_references(name, hparams):
    """{description: reference} of the public code(s) for this loss."""
    h = hparams
    rce = _scaled(lambda z, y: _rce_clamped(z, y, CODE_A), h.get("beta", 1.0))
    match name:
        case "ce" | "ls_ce" | "nce" | "nce_mae" | "mae" | "taylor_ce" | "phuber_ce":
            return {"public code": formula_reference(name, h)}
        case "gce":
            return {"active-passive code": lambda z, y: _gce(z, y, h["q"], clamp=True)}
        case "rce" | "rce_code":
            return {"active-passive code": lambda z, y: _rce_clamped(z, y, CODE_A)}
        case "sce" | "sce_code":
            return {
                "PyTorch (SCE reproduction, active-passive code)": _plus(
                    _scaled(_ce, h["alpha"]), rce
                ),
                "Keras (official SCE)": _plus(
                    _scaled(_ce_clamped, h["alpha"]),
                    _scaled(lambda z, y: _rce_exact(z, y, CODE_A), h["beta"]),
                ),
            }
        case "nce_rce" | "nce_rce_code":
            return {"active-passive code": _plus(_scaled(_nce, h["alpha"]), rce)}
        case "bi_tempered":
            return {
                "Google JAX code, exact normaliser": lambda z, y: _bi_tempered(
                    z, y, h["t1"], h["t2"], 1e-10
                )
            }
        case "focal" | "focal_code":
            return {
                "active-passive code": lambda z, y: _focal(
                    z, y, h["gamma"], detached=True
                )
            }
    raise KeyError(name)


BASELINES = tuple(name for name in losses.names() if name != "tce")


def _inputs(kind, seed=0, batch=48, num_classes=10):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, size=batch)
    if kind == "random":
        return rng.normal(size=(batch, num_classes)) * 3.0, y
    if kind == "wide":
        # Probabilities down to ~1e-40: the 1e-7 clamps are active.
        return rng.normal(size=(batch, num_classes)) * 30.0, y
    if kind == "extreme":
        # Logits of magnitude 1e4: probabilities exactly 0 or 1/m.
        return np.sign(rng.normal(size=(batch, num_classes))) * 1e4, y
    raise ValueError(kind)


KINDS = ("random", "wide", "extreme")


@functools.cache
def _every_projected():
    """{(name, kind): (values, gradients)} of every baseline at its registry
    defaults, float64, from one compiled program (per example: the gradient of
    the sum has each example's gradient in its row)."""
    inputs = [_inputs(kind) for kind in KINDS]
    z = np.concatenate([z for z, _ in inputs])
    y = np.concatenate([y for _, y in inputs])
    with jax.enable_x64(True):

        def every(z):
            out = {}
            for name in BASELINES:
                fn = losses.get(name)
                grad = jax.grad(lambda z, fn=fn: jnp.sum(fn(z, y)))(z)
                out[name] = (fn(z, y), grad)
            return out

        results = jax.jit(every)(jnp.asarray(z, jnp.float64))
    batch = len(inputs[0][1])
    return {
        (name, kind): tuple(
            np.asarray(a)[i * batch : (i + 1) * batch] for a in results[name]
        )
        for name in BASELINES
        for i, kind in enumerate(KINDS)
    }


def _project(name, kind):
    """Registry loss at its defaults on ``_inputs(kind)``: values, gradients."""
    return _every_projected()[(name, kind)]


def _clamp_active(z, y, name):
    """Examples where a clamp of the published code changes something."""
    p = np.exp(_log_softmax(z))
    if name == "gce":
        return _take(p, y) < CLAMP_PROB
    return (p < CLAMP_PROB).any(-1)


# ----------------------------------------------------------------------------
# Tests.


def test_every_baseline_has_references_and_written_conventions():
    assert set(CONVENTIONS) == set(BASELINES)
    for name in BASELINES:
        hparams = losses.defaults(name)
        formula_reference(name, hparams)
        assert code_references(name, hparams)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", BASELINES)
def test_registry_loss_is_its_formula(name, kind):
    z, y = _inputs(kind)
    value, grad = _project(name, kind)
    want_value, want_grad = formula_reference(name, losses.defaults(name))(z, y)
    # atol: the logsumexp of 1e4-scale logits is rounded to ~1e-12.
    atol = 1e-9 if kind == "extreme" else 1e-13
    np.testing.assert_allclose(value, want_value, rtol=1e-11, atol=atol)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-9, atol=atol)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", BASELINES)
def test_registry_loss_against_the_published_code(name, kind):
    """Equal where the conventions agree; the written-out difference elsewhere."""
    z, y = _inputs(kind)
    k = z.shape[-1]
    hparams = losses.defaults(name)
    value, grad = _project(name, kind)
    active = _clamp_active(z, y, name)
    atol = 1e-9 if kind == "extreme" else 1e-13
    for code, reference in code_references(name, hparams).items():
        code_value, code_grad = reference(z, y)
        dv, dg = code_value - value, code_grad - grad
        if name in ("sce", "rce", "nce_rce"):
            # A = -4 against ln 1e-4: the RCE terms differ by the factor 2.30.
            beta = hparams.get("beta", 1.0)
            p_y = _label_prob(z, y)
            want = beta * (PAPER_A - CODE_A) * (1.0 - p_y)
            inside = ~active
            if "Keras" in code:
                inside &= _label_prob(z, y) >= CLAMP_PROB
            np.testing.assert_allclose(dv[inside], want[inside], rtol=1e-9, atol=atol)
            assert np.abs(dg).max() > 0.1
        elif name == "focal":
            np.testing.assert_allclose(dv, 0.0, atol=atol)
            # The gradients differ by the derivative of the weight.
            _, detached = _focal(z, y, hparams["gamma"], detached=True)
            np.testing.assert_allclose(code_grad, detached, atol=atol)
            if kind == "random":
                assert np.abs(dg).max() > 0.05
        elif name == "bi_tempered":
            # log_t(1 + 1e-10) on the label term: a constant, no gradient.
            np.testing.assert_allclose(dv, 1e-10, atol=max(atol, 1e-14))
            np.testing.assert_allclose(dg, 0.0, atol=1e-12)
        else:
            # Equal wherever no clamp is active.
            np.testing.assert_allclose(dv[~active], 0.0, atol=atol)
            np.testing.assert_allclose(dg[~active], 0.0, atol=atol)
            if name == "gce":
                # p_y < 1e-7: the code's value is at most 1e-7^q / q above...
                bound = CLAMP_PROB ** hparams["q"] / hparams["q"]
                assert np.all((-bound <= dv[active]) & (dv[active] <= 0))
                assert np.abs(dg[active]).max(initial=0) <= 2 * bound * hparams["q"]
            elif "Keras" in code:
                # CE capped at -log 1e-7 = 16.12 where p_y < 1e-7.
                assert np.all(code_value[active] <= 16.2 * hparams["alpha"] + 10)
            else:
                # RCE's clamp: at most 9.21 (K - 1) 1e-7 (times beta).
                beta = hparams.get("beta", 1.0)
                bound = beta * -CODE_A * (k - 1) * CLAMP_PROB
                assert np.all(np.abs(dv) <= bound * (1 + 1e-9))
                assert np.all(np.abs(dg) <= 2 * bound)
        if kind == "wide" and name in ("gce", "sce_code", "rce_code", "nce_rce_code"):
            assert active.any(), "the wide logits should activate the clamp"


def test_keras_sce_caps_cross_entropy_with_zero_gradient():
    # p_y = e^-30 < 1e-7: the Keras CE term is -log 1e-7 = 16.12 and flat,
    # where CE (the project's, and the formula) is 30 with gradient p - e_y.
    z, y = np.array([[0.0, 30.0, 0.0]]), np.array([0])
    value, grad = _ce_clamped(z, y)
    np.testing.assert_allclose(value, [-math.log(CLAMP_PROB)])
    np.testing.assert_array_equal(grad, 0.0)
    np.testing.assert_allclose(_ce(z, y)[0], [30.0], rtol=1e-12)
    assert _ce(z, y)[1][0, 0] < -0.99
    project = losses.cross_entropy(jnp.asarray(z, jnp.float32), jnp.asarray(y))
    np.testing.assert_allclose(project, [30.0], rtol=1e-6)


# The bi-tempered normaliser: converged, with the exact normaliser's gradient.
TEMPERATURES = [(0.8, 1.2), (0.5, 2.0), (0.2, 4.0)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bi_tempered_probabilities_sum_to_one(dtype):
    """100 classes, logits of scale 1 to 1e4, ties and +-1e4 extremes."""
    rng = np.random.default_rng(0)
    scales = np.array([1.0, 10.0, 100.0, 1e4])[:, None, None]
    z = (rng.normal(size=(4, 16, 100)) * scales).reshape(-1, 100)
    z[0] = 0.0  # all classes tied
    z[1] = -1e4
    z[1, 7] = 1e4
    z = z.astype(dtype)
    with jax.enable_x64(dtype == np.float64):
        log_probs = jax.jit(
            lambda z: [
                losses._tempered_log_softmax(z, t2, 50) for _, t2 in TEMPERATURES
            ]
        )(jnp.asarray(z))
    for (_, t2), got in zip(TEMPERATURES, log_probs, strict=True):
        probs = np.exp(np.asarray(got, np.float64))
        error = np.abs(probs.sum(-1) - 1.0).max()
        assert error <= (1e-13 if dtype == np.float64 else 1e-6), (t2, error)
        want = _tempered_softmax(z.astype(np.float64), t2)
        np.testing.assert_allclose(
            probs, want, atol=1e-12 if dtype == np.float64 else 1e-6
        )


def test_bi_tempered_gradient_is_the_exact_normalisers():
    rng = np.random.default_rng(3)
    scales = np.repeat([1.0, 10.0, 1e3], 6)[:, None]
    z, y = rng.normal(size=(18, 100)) * scales, rng.integers(0, 100, size=18)
    with jax.enable_x64(True):
        grads = jax.jit(
            lambda z: [
                jax.grad(
                    lambda z, t1=t1, t2=t2: jnp.sum(
                        losses.bi_tempered_logistic_loss(z, y, t1=t1, t2=t2)
                    )
                )(z)
                for t1, t2 in TEMPERATURES
            ]
        )(jnp.asarray(z))
    for (t1, t2), grad in zip(TEMPERATURES, grads, strict=True):
        _, want = _bi_tempered(z, y, t1, t2, 0.0)
        np.testing.assert_allclose(grad, want, rtol=1e-8, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("t1, t2", TEMPERATURES)
def test_bi_tempered_gradient_by_finite_differences(t1, t2):
    rng = np.random.default_rng(4)
    z, y = rng.normal(size=(4, 100)) * 2.0, rng.integers(0, 100, size=4)
    with jax.enable_x64(True):

        def fn(z):
            return losses.bi_tempered_logistic_loss(z, y, t1=t1, t2=t2)

        # Forward and reverse mode, and second order: the custom JVP.
        check_grads(jax.jit(fn), (jnp.asarray(z),), order=2, modes=("fwd", "rev"))


# ----------------------------------------------------------------------------
# The table of measured differences (python3 tests/test_baseline_references.py).


def measured_differences():
    """Rows (loss, code, max |value diff|, max |gradient diff|) per input kind."""
    rows = []
    for name in BASELINES:
        hparams = losses.defaults(name)
        for code, reference in code_references(name, hparams).items():
            row = [name, code]
            for kind in KINDS:
                z, y = _inputs(kind)
                value, grad = _project(name, kind)
                code_value, code_grad = reference(z, y)
                row += [
                    np.abs(code_value - value).max(),
                    np.abs(code_grad - grad).max(),
                ]
            rows.append(row)
    return rows


def main() -> int:
    print(
        "| loss | published code | random: value | gradient | wide: value | "
        "gradient | extreme: value | gradient |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, code, *numbers in measured_differences():
        cells = " | ".join(f"{x:.1e}" for x in numbers)
        print(f"| `{name}` | {code} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

r"""Per-example classification losses for training under label noise.

The headline is :func:`tamed_cross_entropy` (TCE); the other functions are the
robust losses it is compared against. Every loss follows optax's conventions:

* ``fn(logits, labels, *, <hyperparameters>, axis=-1, where=None)`` returns one
  loss per example (shape ``logits.shape`` without the class axis), with no
  reduction;
* hyperparameters are keyword-only static Python numbers, checked when the
  function is traced (``ValueError`` naming the allowed range); TCE's
  ``alpha`` may also be a traced scalar, so a training loop can change it
  without recompiling;
* labels are integers (soft labels only in
  :func:`tamed_cross_entropy_with_soft_labels`), ``axis`` selects the class
  axis (or a tuple of axes, flattened as in optax), any leading dimensions are
  allowed (``[batch, time, vocab]``);
* ``where`` (boolean, shape of ``labels``) masks examples: a masked example has
  loss 0 and gradient 0 whatever its logits and label hold (NaN, padding);
* 16-bit inputs are computed in float32; the loss is returned in the compute
  dtype (float32 for bfloat16/float16/float32 logits) and gradients reach the
  logits in their own dtype.

Notation in the docstrings: :math:`z` logits over :math:`K` classes, :math:`y`
the label, :math:`\ell = \log\mathrm{softmax}(z)`, :math:`p = \mathrm{softmax}(z)`,
:math:`p_y = e^{\ell_y}` and :math:`\mathrm{CE} = -\ell_y`.

The registry (:func:`get`, :func:`names`, :func:`hparam_names`,
:func:`defaults`) picks a loss by name with validated hyperparameters::

    loss_fn = losses.get("tce", alpha=0.01)
    loss = jnp.mean(loss_fn(logits, labels))

Its defaults are the CIFAR-10 settings the papers publish; the settings
published for other datasets are one table (:func:`published_settings`,
``defaults(name, dataset)``), e.g.
``losses.get("sce", **losses.defaults("sce", "cifar100"))`` is SCE at alpha 6,
beta 0.1. The ``*_code`` names are the losses as the public code behind the
published numbers computes them, where that differs from the formula
(docs/losses.md, "The published code"). TCE's ``alpha`` follows one rule,
``alpha = 1/K`` (:func:`default_tce_alpha`; why: ``DEFAULT_TCE_ALPHA``),
never a choice on test accuracy.
"""

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Axis = int | tuple[int, ...]
LossFn = Callable[..., jax.Array]

DEFAULT_TCE_ALPHA = 0.1
"""Default TCE ``alpha``: the rule ``alpha = 1/K`` (``default_tce_alpha``) at K = 10.

The rule is fixed by the loss's shape, not by any accuracy: the gradient
weight ``w = p_y / (alpha + (1 - alpha) p_y)`` (docs/losses.md) halves where
``p_y ~ alpha``, so ``alpha = 1/K`` puts the switch at chance level. An
example the model rates at chance (``p_y = 1/K``) keeps ``w = 1 / (2 - 1/K)``
(0.53 at K = 10) of CE's gradient, one it fits (``p_y >= 0.5``) at least
``1 / (1 + alpha)`` (0.91), and one whose label it contradicts
(``p_y << alpha``, most often a mislabelled one) ``w ~ p_y / alpha``; the loss
is capped at ``-log(alpha) / (1 - alpha)``. The registry's default is this
constant whatever the number of classes: for K != 10 pass
``alpha=default_tce_alpha(K)`` (0.01 for 100 classes), as configs/cifar100.py
does. How other alphas fare: the alpha study in
results/fashion_mnist_noise/README.md; sweep reports also show TCE with alpha
chosen on the noisy validation split (tce_jax/analysis/report.py).
"""


def default_tce_alpha(num_classes: int) -> float:
    """TCE's ``alpha`` for ``num_classes`` classes by the rule ``alpha = 1/K``.

    See ``DEFAULT_TCE_ALPHA`` for why: the gradient weight halves at chance.

    Raises:
      ValueError: if ``num_classes`` is not an int >= 2.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes}")
    return 1.0 / num_classes


PAPER_LOG_ZERO = -4.0
"""``A = log 0`` of reverse cross entropy as the SCE paper states it (Wang et al.)."""

CODE_LOG_ZERO = math.log(1e-4)
"""``A = log 0`` as the public SCE and active-passive code computes it: ln 1e-4.

That code clamps the one-hot label at 1e-4 before taking its log, so the
constant it uses is ``ln 1e-4 = -9.21``, 2.3 times the paper's -4; the
``*_code`` losses of the registry use it (docs/losses.md, "The published code").
"""


# ----------------------------------------------------------------------------
# Hyperparameter checking (shared by the loss functions and the registry).


@dataclasses.dataclass(frozen=True)
class _Range:
    """Allowed values of one hyperparameter; ``describe()`` is shown in errors."""

    low: float = -math.inf
    high: float = math.inf
    low_closed: bool = True
    high_closed: bool = True
    integer: bool = False

    def contains(self, value: float) -> bool:
        above = value >= self.low if self.low_closed else value > self.low
        below = value <= self.high if self.high_closed else value < self.high
        return above and below

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        left = "[" if self.low_closed and math.isfinite(self.low) else "("
        right = "]" if self.high_closed and math.isfinite(self.high) else ")"
        low = "-inf" if self.low == -math.inf else f"{self.low:g}"
        high = "inf" if self.high == math.inf else f"{self.high:g}"
        return f"{kind} in {left}{low}, {high}{right}"


_TCE_ALPHA = _Range(0.0, 1.0, high_closed=False)
_NONNEGATIVE = _Range(0.0)
_GCE_Q = _Range(0.0, 1.0, low_closed=False)
_LOG_ZERO = _Range(high=0.0, high_closed=False)
_TAYLOR_ORDER = _Range(1, integer=True)
_PHUBER_TAU = _Range(1.0, low_closed=False)
_BI_TEMPERED_T1 = _Range(0.0, 1.0)
_BI_TEMPERED_T2 = _Range(1.0)
_NUM_ITERS = _Range(1, integer=True)
_SMOOTHING = _Range(0.0, 1.0, high_closed=False)


def _check_tce_alpha(loss: str, alpha: Any) -> float | jax.Array:
    """TCE's ``alpha``: a checked Python number, or a traced float scalar.

    A traced ``alpha`` (under ``jit``/``grad``, e.g. read from a train state)
    cannot be range-checked at trace time; values outside ``[0, 1)`` turn into
    NaN, so the loss is NaN rather than silently wrong.
    """
    if not isinstance(alpha, jax.core.Tracer):
        return _check_hparam(loss, "alpha", alpha, _TCE_ALPHA)
    if alpha.shape != () or not jnp.issubdtype(alpha.dtype, jnp.floating):
        raise TypeError(
            f"{loss}: a traced alpha must be a floating scalar, got "
            f"{alpha.dtype}{list(alpha.shape)}"
        )
    return jnp.where((alpha >= 0.0) & (alpha < 1.0), alpha, jnp.nan)


def _check_hparam(loss: str, name: str, value: Any, allowed: _Range) -> float:
    """Returns ``value`` as a Python number or raises a clear error.

    Hyperparameters are static: they select constants and code paths at trace
    time, so a traced value is rejected with a ``TypeError`` (TCE's ``alpha``
    alone may be traced: ``_check_tce_alpha``).
    """
    if isinstance(value, jax.core.Tracer):
        raise TypeError(
            f"{loss}: {name} must be a static Python number, got a traced value; "
            "close over it (functools.partial) instead of passing it through jit."
        )
    try:
        number = float(value)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{loss}: {name} must be {allowed.describe()}, got {value!r}"
        ) from error
    if allowed.integer:
        if isinstance(value, bool) or number != int(number):
            raise ValueError(
                f"{loss}: {name} must be {allowed.describe()}, got {value!r}"
            )
        number = int(number)
    if not allowed.contains(number):
        raise ValueError(f"{loss}: {name} must be {allowed.describe()}, got {value!r}")
    return number


# ----------------------------------------------------------------------------
# Input canonicalisation shared by every loss.


def _class_axes(axis: Axis, ndim: int) -> tuple[int, ...]:
    if isinstance(axis, bool) or not isinstance(axis, int | tuple):
        raise TypeError(f"axis must be an int or a tuple of ints, got {axis!r}")
    axes = (axis,) if isinstance(axis, int) else axis
    if not axes or not all(
        isinstance(a, int) and not isinstance(a, bool) for a in axes
    ):
        raise TypeError(
            f"axis must be an int or a non-empty tuple of ints, got {axis!r}"
        )
    if any(not -ndim <= a < ndim for a in axes):
        raise ValueError(f"axis {axis!r} is out of range for logits of rank {ndim}")
    canonical = tuple(a % ndim for a in axes)
    if len(set(canonical)) != len(canonical):
        raise ValueError(f"axis {axis!r} repeats an axis")
    return canonical


def _classes_last(array: jax.Array, class_axes: tuple[int, ...]) -> jax.Array:
    """Moves the class axes to the end (in the given order) and flattens them."""
    batch_axes = tuple(a for a in range(array.ndim) if a not in class_axes)
    if class_axes != tuple(range(len(batch_axes), array.ndim)):
        array = jnp.transpose(array, batch_axes + class_axes)
    return array.reshape((*array.shape[: len(batch_axes)], -1))


def _prepare(
    loss: str,
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    axis: Axis,
    where: jax.typing.ArrayLike | None,
    *,
    soft_labels: bool = False,
) -> tuple[jax.Array, jax.Array, jax.Array | None]:
    """Checks the inputs and returns ``(logits[..., K], labels, where)``.

    Logits come back in the compute dtype (at least float32) with the class
    axis last. Masked examples get logits 0 and label 0 so that nothing they
    held (NaN, out-of-range padding labels) reaches the value or the gradient.
    """
    logits = jnp.asarray(logits)
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(logits.dtype, jnp.floating):
        raise TypeError(f"{loss}: logits must be floating point, got {logits.dtype}")
    if logits.ndim == 0:
        raise ValueError(f"{loss}: logits must have a class axis, got a scalar")
    class_axes = _class_axes(axis, logits.ndim)
    batch_shape = tuple(n for a, n in enumerate(logits.shape) if a not in class_axes)
    if math.prod(logits.shape[a] for a in class_axes) == 0:
        raise ValueError(f"{loss}: logits have no classes (shape {logits.shape})")
    if soft_labels:
        if not jnp.issubdtype(labels.dtype, jnp.floating):
            raise TypeError(
                f"{loss}: soft labels must be floating point, got {labels.dtype}"
            )
        if labels.shape != logits.shape:
            raise ValueError(
                f"{loss}: soft labels shape {labels.shape} must equal the logits "
                f"shape {logits.shape}"
            )
    else:
        if not jnp.issubdtype(labels.dtype, jnp.integer):
            raise TypeError(f"{loss}: labels must be integers, got {labels.dtype}")
        if labels.shape != batch_shape:
            raise ValueError(
                f"{loss}: labels shape {labels.shape} must be the logits shape "
                f"without the class axis, {batch_shape}"
            )
    compute_dtype = jnp.promote_types(logits.dtype, jnp.float32)
    logits = _classes_last(logits, class_axes).astype(compute_dtype)
    if soft_labels:
        labels = _classes_last(labels, class_axes).astype(compute_dtype)
    if where is not None:
        where = jnp.asarray(where)
        if where.dtype != jnp.bool_:
            raise TypeError(f"{loss}: where must be boolean, got {where.dtype}")
        try:
            jnp.broadcast_shapes(where.shape, batch_shape)
            where = jnp.broadcast_to(where, batch_shape)
        except ValueError as error:
            raise ValueError(
                f"{loss}: where shape {where.shape} must broadcast to the "
                f"per-example shape {batch_shape}"
            ) from error
        logits = jnp.where(where[..., None], logits, 0.0)
        labels = jnp.where(where[..., None] if soft_labels else where, labels, 0)
    return logits, labels, where


def _masked(loss: jax.Array, where: jax.Array | None) -> jax.Array:
    return loss if where is None else jnp.where(where, loss, 0.0)


def _label_logit(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return jnp.take_along_axis(logits, labels[..., None], axis=-1)[..., 0]


def _label_log_prob(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """``l_y = z_y - logsumexp(z)`` without forming the whole log-softmax."""
    return _label_logit(logits, labels) - jax.nn.logsumexp(logits, axis=-1)


def _one_minus_prob(label_log_prob: jax.Array) -> jax.Array:
    """``1 - p_y`` with full relative precision as ``p_y -> 1``."""
    return -jnp.expm1(label_log_prob)


# ----------------------------------------------------------------------------
# Tamed cross entropy.


@dataclasses.dataclass(frozen=True)
class _TceConstants:
    """The constants of one ``alpha``.

    For a static ``alpha`` they are float64 Python numbers folded into the
    traced program; for a traced one, arrays computed in the loss's dtype.
    """

    one_minus_alpha: float | jax.Array
    log_alpha: float | jax.Array
    log_one_minus_alpha: float | jax.Array

    @classmethod
    def of(cls, alpha: float) -> "_TceConstants":
        return cls(1.0 - alpha, math.log(alpha), math.log1p(-alpha))

    @classmethod
    def of_traced(cls, alpha: jax.Array) -> "_TceConstants":
        return cls(1.0 - alpha, jnp.log(alpha), jnp.log1p(-alpha))


def _tame_and_weight(
    cross_entropy: jax.Array, c: _TceConstants
) -> tuple[jax.Array, jax.Array]:
    r"""TCE and its derivative ``w = dTCE/dCE`` from per-example CE (``alpha > 0``).

    With ``D = alpha + (1 - alpha) p_y`` and the log-odds
    ``delta = log((1 - alpha) p_y / alpha)``:

    * ``D >= 1/2`` (well-fit examples, or ``alpha -> 1``):
      ``log D = log1p((1 - alpha) expm1(-CE))``, which keeps full relative
      precision when ``log D`` is near 0, where the loss tends to ``1 - p_y``;
    * ``D < 1/2``: ``log D = logaddexp(log alpha, log(1 - alpha) - CE)``, which
      never forms ``p_y`` and so survives ``CE`` in the thousands.

    Both branches share one ``log1p`` (on a selected argument), and
    ``w = sigmoid(delta) / (1 - alpha)`` reuses ``exp(-|delta|)`` from the
    logaddexp, so the map costs three transcendentals per example.
    """
    delta = (c.log_one_minus_alpha - c.log_alpha) - cross_entropy
    exp_neg_abs_delta = jnp.exp(-jnp.abs(delta))
    prob_minus_one = jnp.expm1(-cross_entropy)
    scaled = c.one_minus_alpha * prob_minus_one
    near_one = scaled >= -0.5
    far_offset = jnp.where(
        delta >= 0.0, c.log_one_minus_alpha - cross_entropy, c.log_alpha
    )
    log_d = jnp.log1p(jnp.where(near_one, scaled, exp_neg_abs_delta)) + jnp.where(
        near_one, 0.0, far_offset
    )
    sigmoid_delta = jnp.where(delta >= 0.0, 1.0, exp_neg_abs_delta) / (
        1.0 + exp_neg_abs_delta
    )
    # Rounding may push the ratio a hair above its mathematical maximum of 1.
    weight = jnp.minimum(sigmoid_delta / c.one_minus_alpha, 1.0)
    return -log_d / c.one_minus_alpha, weight


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _tame(cross_entropy: jax.Array, c: _TceConstants) -> jax.Array:
    """Maps per-example CE to TCE; the VJP multiplies by the saved weight."""
    return _tame_and_weight(cross_entropy, c)[0]


def _tame_fwd(
    cross_entropy: jax.Array, c: _TceConstants
) -> tuple[jax.Array, jax.Array]:
    return _tame_and_weight(cross_entropy, c)


def _tame_bwd(c: _TceConstants, weight: jax.Array, cotangent: jax.Array):
    del c
    return (cotangent * weight,)


_tame.defvjp(_tame_fwd, _tame_bwd)


@jax.custom_vjp
def _tame_traced(cross_entropy: jax.Array, alpha: jax.Array) -> jax.Array:
    """``_tame`` for a traced ``alpha``, differentiable in ``alpha`` too.

    ``alpha = 0`` needs no branch here: ``log alpha = -inf`` makes the
    log-odds infinite, so ``w = 1`` exactly (the gradient is CE's, bit for
    bit) and the value is CE exactly where ``CE >= log 2``; below, it is CE
    passed through ``log1p(expm1(-CE))``: within 5 ulps of CE in float32, 127
    in float64 on XLA:CPU (tests/test_tce_precision.py). A static ``alpha =
    0`` returns CE itself (``_tamed``).
    """
    return _tame_and_weight(cross_entropy, _TceConstants.of_traced(alpha))[0]


def _tame_traced_fwd(cross_entropy: jax.Array, alpha: jax.Array):
    loss, weight = _tame_and_weight(cross_entropy, _TceConstants.of_traced(alpha))
    return loss, (loss, weight, alpha)


def _tame_traced_bwd(residuals, cotangent: jax.Array):
    # With D = alpha + (1 - alpha) p_y: dTCE/dalpha = (TCE - (1 - p_y) / D)
    # / (1 - alpha), and (1 - p_y) / D = 1/D - w = expm1((1 - alpha) TCE) + 1 - w.
    loss, weight, alpha = residuals
    one_minus_alpha = 1.0 - alpha
    dloss_dalpha = (
        loss - jnp.expm1(one_minus_alpha * loss) - (1.0 - weight)
    ) / one_minus_alpha
    return cotangent * weight, jnp.sum(cotangent * dloss_dalpha).astype(alpha.dtype)


_tame_traced.defvjp(_tame_traced_fwd, _tame_traced_bwd)


def _tamed(cross_entropy: jax.Array, alpha: float | jax.Array) -> jax.Array:
    if isinstance(alpha, jax.Array):
        return _tame_traced(cross_entropy, alpha.astype(cross_entropy.dtype))
    if alpha == 0.0:
        # TCE_0 is CE; returning it unchanged makes value and gradient exact.
        return cross_entropy
    return _tame(cross_entropy, _TceConstants.of(alpha))


def tamed_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    alpha: float = DEFAULT_TCE_ALPHA,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Tamed cross entropy (TCE) with integer labels.

    This project's closed form, built to have the properties the TCE paper
    states (same training as CE without noise, tamed gradient of contradicted
    examples); the paper's own formula is not available to the project:

    .. math::
      \mathrm{TCE}_\alpha(z, y) = -\frac{\log\left(\alpha + (1 - \alpha)\,
        p_y\right)}{1 - \alpha},
      \qquad
      \frac{\partial\,\mathrm{TCE}_\alpha}{\partial z}
        = w\,(p - e_y),\quad w = \frac{p_y}{\alpha + (1 - \alpha)\, p_y}.

    ``alpha = 0`` is CE (exactly for a Python 0; a traced 0 gives CE's
    gradient exactly and its value to a few ulps); ``w -> 1`` as ``p_y -> 1``
    and ``w -> 0`` as ``p_y -> 0``; ``0 <= TCE <= -log(alpha) / (1 - alpha)``;
    ``alpha -> 1`` tends to ``1 - p_y``.

    TCE is a scalar function of CE with derivative ``w``, so this computes CE
    the way optax does and applies that map under a ``jax.custom_vjp`` that
    saves only ``w`` (one number per example): the backward pass is CE's times
    ``w``, and besides ``w`` it keeps no more memory than CE's (no
    ``[..., num_classes]`` buffer of its own). The map works in log space
    (``logaddexp(log alpha, log(1 - alpha) - CE)``, switching per example to
    ``log1p((1 - alpha) expm1(-CE))`` where that keeps relative precision:
    given the CE it receives, the result is within 7 ulps of the exact map in
    float32, and within 2.7e-14 relative in float64 on XLA:CPU, whose float64
    ``log1p`` is that far off near ``log1p(-0.41)`` (up to ~180 ulps of the
    loss); CE itself is rounded as optax's is, to about
    ``eps * |logsumexp(z)|``; tests/test_tce_precision.py), so values and
    gradients stay finite for logits of magnitude 1e4 and for ``alpha`` of 0
    and ``1 - 1e-6``. Forward-mode differentiation of the loss itself is not
    supported (``jax.custom_vjp``); ``jax.hessian`` (forward-over-reverse)
    works.

    Args:
      logits: Unnormalised log-probabilities, shape ``[..., num_classes]``
        (class axis chosen by ``axis``), any floating dtype; 16-bit inputs are
        computed in float32.
      labels: Integer class indices, shape ``logits.shape`` without the class
        axis, values in ``[0, num_classes)``.
      alpha: Taming level in ``[0, 1)``; defaults to ``DEFAULT_TCE_ALPHA``
        (0.1, the rule ``alpha = 1/K`` for 10 classes; pass
        ``default_tce_alpha(K)`` for other K). A Python number, or a float
        scalar traced under ``jit``/``grad`` (e.g. one that changes during
        training, as ``alpha_rule`` sets it), which is differentiable and
        compiles once for every value; a traced value outside ``[0, 1)``
        gives NaN.
      axis: Class axis, or a tuple of axes flattened into one (labels then
        index the flattened classes), as in optax.
      where: Optional boolean mask of shape ``labels.shape``; masked examples
        get loss 0 and gradient 0.

    Returns:
      Per-example loss of shape ``labels.shape``, in float32 (or float64 for
      float64 logits).

    Raises:
      TypeError: non-floating logits, non-integer labels, non-boolean
        ``where``, or a traced ``alpha`` that is not a floating scalar.
      ValueError: mismatched shapes, bad ``axis`` or ``alpha`` outside
        ``[0, 1)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from tce_jax import losses
      >>> logits = jnp.array([[2.0, 0.0, -1.0], [2.0, 0.0, -1.0]])
      >>> labels = jnp.array([0, 2])
      >>> losses.tamed_cross_entropy(logits, labels, alpha=0.0)  # = CE
      Array([0.16984606, 3.169846  ], dtype=float32)
      >>> losses.tamed_cross_entropy(logits, labels, alpha=0.1)
      Array([0.16833675, 2.2020957 ], dtype=float32)

    References:
      M. Martinez and R. Stiefelhagen, "Taming the Cross Entropy Loss",
      GCPR 2018, LNCS 11269, https://arxiv.org/abs/1810.05075 (properties);
      formula and its derivation: this project, ``docs/losses.md``.
    """
    alpha = _check_tce_alpha("tamed_cross_entropy", alpha)
    logits, labels, where = _prepare("tamed_cross_entropy", logits, labels, axis, where)
    cross_entropy = jax.nn.logsumexp(logits, axis=-1) - _label_logit(logits, labels)
    return _masked(_tamed(cross_entropy, alpha), where)


def tamed_cross_entropy_with_soft_labels(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    alpha: float = DEFAULT_TCE_ALPHA,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Tamed cross entropy against a target distribution (soft/one-hot labels).

    The same scalar map as :func:`tamed_cross_entropy`, applied to the soft
    cross entropy :math:`c = -\sum_k q_k \ell_k`; for one-hot ``q`` the two
    functions agree. :math:`e^{-c}` (the ``q``-weighted geometric mean of the
    probabilities) plays the part of :math:`p_y`:

    .. math::
      \mathrm{TCE}_\alpha(z, q) = -\frac{\log\left(\alpha + (1 - \alpha)
        e^{-c}\right)}{1 - \alpha},
      \qquad
      \frac{\partial\,\mathrm{TCE}_\alpha}{\partial z}
        = w\,\Big(p \textstyle\sum_k q_k - q\Big),\quad
        w = \frac{e^{-c}}{\alpha + (1 - \alpha) e^{-c}}.

    Args:
      logits: Unnormalised log-probabilities, shape ``[..., num_classes]``.
      labels: Target probabilities (floating), same shape as ``logits``; rows
        are expected to sum to 1.
      alpha: Taming level in ``[0, 1)``, static or traced (as in
        :func:`tamed_cross_entropy`).
      axis: Class axis or tuple of axes, as in optax.
      where: Optional boolean mask of the per-example shape.

    Returns:
      Per-example loss, shape ``logits.shape`` without the class axis.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from tce_jax import losses
      >>> logits = jnp.array([[2.0, 0.0, -1.0]])
      >>> target = jax.nn.one_hot(jnp.array([2]), 3)
      >>> losses.tamed_cross_entropy_with_soft_labels(logits, target, alpha=0.1)
      Array([2.2020957], dtype=float32)

    References:
      As :func:`tamed_cross_entropy`.
    """
    loss = "tamed_cross_entropy_with_soft_labels"
    alpha = _check_tce_alpha(loss, alpha)
    logits, labels, where = _prepare(
        loss, logits, labels, axis, where, soft_labels=True
    )
    cross_entropy = -jnp.sum(labels * jax.nn.log_softmax(logits, axis=-1), axis=-1)
    return _masked(_tamed(cross_entropy, alpha), where)


def tce_gradient_weight(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    alpha: float = DEFAULT_TCE_ALPHA,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""The factor TCE puts on each example's CE gradient.

    .. math::
      w = \frac{p_y}{\alpha + (1 - \alpha)\, p_y}
        = \frac{\sigma(\delta)}{1 - \alpha},\quad
      \delta = \log\frac{(1 - \alpha)\, p_y}{\alpha},\qquad 0 \le w \le 1,

    computed from :math:`\ell_y` in log space (exact 1 for ``alpha = 0``).
    ``w`` near 1: the example trains as under CE; near 0: it is tamed. Not
    differentiated through (wrapped in ``stop_gradient``); it is a diagnostic.

    Args:
      logits: Unnormalised log-probabilities, shape ``[..., num_classes]``.
      labels: Integer labels, shape ``logits.shape`` without the class axis.
      alpha: Taming level in ``[0, 1)``, static or traced.
      axis: Class axis or tuple of axes.
      where: Optional boolean mask; masked examples get ``w = 0``.

    Returns:
      ``w`` per example, shape ``labels.shape``.

    Example:
      >>> import jax.numpy as jnp
      >>> from tce_jax import losses
      >>> logits = jnp.array([[2.0, 0.0, -1.0], [2.0, 0.0, -1.0]])
      >>> losses.tce_gradient_weight(logits, jnp.array([0, 2]), alpha=0.1)
      Array([0.98182434, 0.30484256], dtype=float32)

    References:
      ``docs/losses.md`` (the gradient of this project's TCE form).
    """
    alpha = _check_tce_alpha("tce_gradient_weight", alpha)
    logits, labels, where = _prepare("tce_gradient_weight", logits, labels, axis, where)
    logits = jax.lax.stop_gradient(logits)
    cross_entropy = jax.nn.logsumexp(logits, axis=-1) - _label_logit(logits, labels)
    if isinstance(alpha, jax.Array):
        constants = _TceConstants.of_traced(
            jax.lax.stop_gradient(alpha).astype(cross_entropy.dtype)
        )
        weight = _tame_and_weight(cross_entropy, constants)[1]
    elif alpha == 0.0:
        weight = jnp.ones_like(cross_entropy)
    else:
        weight = _tame_and_weight(cross_entropy, _TceConstants.of(alpha))[1]
    return _masked(weight, where)


# ----------------------------------------------------------------------------
# Baselines.


def cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Softmax cross entropy with integer labels.

    .. math::
      \mathrm{CE}(z, y) = -\ell_y = \log\textstyle\sum_k e^{z_k} - z_y

    Computed as optax's ``softmax_cross_entropy_with_integer_labels`` does
    (log-normaliser minus the label logit), with this module's checks, mask
    and float32 compute.

    Args:
      logits: Unnormalised log-probabilities, shape ``[..., num_classes]``.
      labels: Integer labels, shape ``logits.shape`` without the class axis.
      axis: Class axis or tuple of axes.
      where: Optional boolean per-example mask.

    Returns:
      Per-example loss, shape ``labels.shape``.

    Example:
      >>> import jax.numpy as jnp
      >>> from tce_jax import losses
      >>> losses.cross_entropy(jnp.array([[2.0, 0.0, -1.0]]), jnp.array([2]))
      Array([3.169846], dtype=float32)

    References:
      Any textbook; optax ``softmax_cross_entropy_with_integer_labels``.
    """
    logits, labels, where = _prepare("cross_entropy", logits, labels, axis, where)
    loss = jax.nn.logsumexp(logits, axis=-1) - _label_logit(logits, labels)
    return _masked(loss, where)


def generalized_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    q: float = 0.7,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Generalized cross entropy (the :math:`L_q` loss).

    .. math::
      \mathrm{GCE}_q(z, y) = \frac{1 - p_y^{\,q}}{q}
        = -\frac{\operatorname{expm1}(q\,\ell_y)}{q}

    ``q -> 0`` is CE, ``q = 1`` is MAE (``1 - p_y``). Computed from
    :math:`\ell_y` so it stays exact when ``p_y`` underflows.

    Args:
      logits: Unnormalised log-probabilities, shape ``[..., num_classes]``.
      labels: Integer labels, shape ``logits.shape`` without the class axis.
      q: Exponent in ``(0, 1]``; the paper uses 0.7.
      axis: Class axis or tuple of axes.
      where: Optional boolean per-example mask.

    Returns:
      Per-example loss, shape ``labels.shape``.

    Example:
      >>> import jax.numpy as jnp
      >>> from tce_jax import losses
      >>> losses.generalized_cross_entropy(
      ...     jnp.array([[2.0, 0.0, -1.0]]), jnp.array([2]), q=0.7)
      Array([1.2732437], dtype=float32)

    References:
      Z. Zhang and M. Sabuncu, "Generalized Cross Entropy Loss for Training
      Deep Neural Networks with Noisy Labels", NeurIPS 2018,
      https://arxiv.org/abs/1805.07836
    """
    q = _check_hparam("generalized_cross_entropy", "q", q, _GCE_Q)
    logits, labels, where = _prepare(
        "generalized_cross_entropy", logits, labels, axis, where
    )
    loss = -jnp.expm1(q * _label_log_prob(logits, labels)) / q
    return _masked(loss, where)


def reverse_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    log_zero: float = PAPER_LOG_ZERO,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Reverse cross entropy: CE with prediction and one-hot label swapped.

    .. math::
      \mathrm{RCE}(z, y) = -\sum_k p_k \log e_{y,k}
        = -A\,(1 - p_y),\qquad \log 0 := A

    ``A`` (``log_zero``) is used directly; public code that clamps the one-hot
    label at 1e-4 silently uses ``A = log 1e-4 = -9.21`` instead.

    Args:
      logits: Unnormalised log-probabilities, shape ``[..., num_classes]``.
      labels: Integer labels, shape ``logits.shape`` without the class axis.
      log_zero: ``A``, the value given to ``log 0``, negative; the paper
        uses -4.
      axis: Class axis or tuple of axes.
      where: Optional boolean per-example mask.

    Returns:
      Per-example loss, shape ``labels.shape``.

    Example:
      >>> import jax.numpy as jnp
      >>> from tce_jax import losses
      >>> losses.reverse_cross_entropy(jnp.array([[2.0, 0.0, -1.0]]), jnp.array([2]))
      Array([3.8319597], dtype=float32)

    References:
      Y. Wang et al., "Symmetric Cross Entropy for Robust Learning with Noisy
      Labels", ICCV 2019, https://arxiv.org/abs/1908.06112
    """
    log_zero = _check_hparam("reverse_cross_entropy", "log_zero", log_zero, _LOG_ZERO)
    logits, labels, where = _prepare(
        "reverse_cross_entropy", logits, labels, axis, where
    )
    loss = -log_zero * _one_minus_prob(_label_log_prob(logits, labels))
    return _masked(loss, where)


def symmetric_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    alpha: float = 0.1,
    beta: float = 1.0,
    log_zero: float = PAPER_LOG_ZERO,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Symmetric cross entropy: CE plus reverse CE.

    .. math::
      \mathrm{SCE}(z, y) = \alpha\,\mathrm{CE}(z, y) - \beta A\,(1 - p_y)

    Args:
      logits: Unnormalised log-probabilities, shape ``[..., num_classes]``.
      labels: Integer labels, shape ``logits.shape`` without the class axis.
      alpha: CE weight (>= 0). Paper: 0.1 on CIFAR-10 (default), 6 on
        CIFAR-100, 0.01 on MNIST.
      beta: RCE weight (>= 0). Paper: 1 on CIFAR-10 (default) and MNIST, 0.1
        on CIFAR-100.
      log_zero: ``A = log 0`` of the RCE term, used directly; paper: -4.
      axis: Class axis or tuple of axes.
      where: Optional boolean per-example mask.

    Returns:
      Per-example loss, shape ``labels.shape``.

    Example:
      >>> import jax.numpy as jnp
      >>> from tce_jax import losses
      >>> losses.symmetric_cross_entropy(
      ...     jnp.array([[2.0, 0.0, -1.0]]), jnp.array([2]))
      Array([4.1489444], dtype=float32)

    References:
      Y. Wang et al., "Symmetric Cross Entropy for Robust Learning with Noisy
      Labels", ICCV 2019, https://arxiv.org/abs/1908.06112
    """
    loss = "symmetric_cross_entropy"
    alpha = _check_hparam(loss, "alpha", alpha, _NONNEGATIVE)
    beta = _check_hparam(loss, "beta", beta, _NONNEGATIVE)
    log_zero = _check_hparam(loss, "log_zero", log_zero, _LOG_ZERO)
    logits, labels, where = _prepare(loss, logits, labels, axis, where)
    label_log_prob = _label_log_prob(logits, labels)
    value = -alpha * label_log_prob - beta * log_zero * _one_minus_prob(label_log_prob)
    return _masked(value, where)


def _normalized_ce(logits: jax.Array, labels: jax.Array) -> jax.Array:
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return _label_logit(log_probs, labels) / jnp.sum(log_probs, axis=-1)


def normalized_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Normalized cross entropy (CE divided by the CE summed over all labels).

    .. math::
      \mathrm{NCE}(z, y) = \frac{\ell_y}{\sum_k \ell_k} \in [0, 1]

    Needs at least two classes (the denominator is 0 for one class).

    Args:
      logits: Unnormalised log-probabilities, shape ``[..., num_classes]``.
      labels: Integer labels, shape ``logits.shape`` without the class axis.
      axis: Class axis or tuple of axes.
      where: Optional boolean per-example mask.

    Returns:
      Per-example loss, shape ``labels.shape``.

    Example:
      >>> import jax.numpy as jnp
      >>> from tce_jax import losses
      >>> losses.normalized_cross_entropy(
      ...     jnp.array([[2.0, 0.0, -1.0]]), jnp.array([2]))
      Array([0.5753379], dtype=float32)

    References:
      X. Ma et al., "Normalized Loss Functions for Deep Learning with Noisy
      Labels", ICML 2020, https://arxiv.org/abs/2006.13554
    """
    logits, labels, where = _prepare(
        "normalized_cross_entropy", logits, labels, axis, where
    )
    return _masked(_normalized_ce(logits, labels), where)


def nce_plus_rce(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    log_zero: float = PAPER_LOG_ZERO,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Active-passive loss NCE+RCE.

    .. math::
      \mathrm{NCE{+}RCE}(z, y) = \alpha\,\frac{\ell_y}{\sum_k \ell_k}
        - \beta A\,(1 - p_y)

    Args:
      logits: Unnormalised log-probabilities, shape ``[..., num_classes]``.
      labels: Integer labels, shape ``logits.shape`` without the class axis.
      alpha: NCE weight (>= 0). Paper: 1 on CIFAR-10 (default) and MNIST, 10
        on CIFAR-100.
      beta: RCE weight (>= 0). Paper: 1 on CIFAR-10 (default), 10 on MNIST,
        0.1 on CIFAR-100.
      log_zero: ``A = log 0`` of the RCE term, used directly; paper: -4.
      axis: Class axis or tuple of axes.
      where: Optional boolean per-example mask.

    Returns:
      Per-example loss, shape ``labels.shape``.

    Example:
      >>> import jax.numpy as jnp
      >>> from tce_jax import losses
      >>> losses.nce_plus_rce(jnp.array([[2.0, 0.0, -1.0]]), jnp.array([2]))
      Array([4.4072976], dtype=float32)

    References:
      X. Ma et al., "Normalized Loss Functions for Deep Learning with Noisy
      Labels", ICML 2020, https://arxiv.org/abs/2006.13554
    """
    loss = "nce_plus_rce"
    alpha = _check_hparam(loss, "alpha", alpha, _NONNEGATIVE)
    beta = _check_hparam(loss, "beta", beta, _NONNEGATIVE)
    log_zero = _check_hparam(loss, "log_zero", log_zero, _LOG_ZERO)
    logits, labels, where = _prepare(loss, logits, labels, axis, where)
    label_log_prob = _label_log_prob(logits, labels)
    value = alpha * _normalized_ce(logits, labels) - beta * log_zero * _one_minus_prob(
        label_log_prob
    )
    return _masked(value, where)


def nce_plus_mae(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Active-passive loss NCE+MAE.

    .. math::
      \mathrm{NCE{+}MAE}(z, y) = \alpha\,\frac{\ell_y}{\sum_k \ell_k}
        + \beta\,(1 - p_y)

    Args:
      logits: Unnormalised log-probabilities, shape ``[..., num_classes]``.
      labels: Integer labels, shape ``logits.shape`` without the class axis.
      alpha: NCE weight (>= 0). Paper: 1 on CIFAR-10 (default) and MNIST, 10
        on CIFAR-100.
      beta: MAE weight (>= 0). Paper: 1 on CIFAR-10 (default) and CIFAR-100,
        10 on MNIST.
      axis: Class axis or tuple of axes.
      where: Optional boolean per-example mask.

    Returns:
      Per-example loss, shape ``labels.shape``.

    Example:
      >>> import jax.numpy as jnp
      >>> from tce_jax import losses
      >>> losses.nce_plus_mae(jnp.array([[2.0, 0.0, -1.0]]), jnp.array([2]))
      Array([1.5333278], dtype=float32)

    References:
      X. Ma et al., "Normalized Loss Functions for Deep Learning with Noisy
      Labels", ICML 2020, https://arxiv.org/abs/2006.13554
    """
    loss = "nce_plus_mae"
    alpha = _check_hparam(loss, "alpha", alpha, _NONNEGATIVE)
    beta = _check_hparam(loss, "beta", beta, _NONNEGATIVE)
    logits, labels, where = _prepare(loss, logits, labels, axis, where)
    label_log_prob = _label_log_prob(logits, labels)
    value = alpha * _normalized_ce(logits, labels) + beta * _one_minus_prob(
        label_log_prob
    )
    return _masked(value, where)


def mean_absolute_error(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Mean absolute error between the softmax and the one-hot label.

    .. math::
      \mathrm{MAE}(z, y) = 1 - p_y = \tfrac12 \lVert p - e_y \rVert_1

    (Some papers use the full L1 distance, ``2 (1 - p_y)``; this is half.)

    Args:
      logits: Unnormalised log-probabilities, shape ``[..., num_classes]``.
      labels: Integer labels, shape ``logits.shape`` without the class axis.
      axis: Class axis or tuple of axes.
      where: Optional boolean per-example mask.

    Returns:
      Per-example loss, shape ``labels.shape``.

    Example:
      >>> import jax.numpy as jnp
      >>> from tce_jax import losses
      >>> losses.mean_absolute_error(jnp.array([[2.0, 0.0, -1.0]]), jnp.array([2]))
      Array([0.95798993], dtype=float32)

    References:
      A. Ghosh, H. Kumar and P. S. Sastry, "Robust Loss Functions under Label
      Noise for Deep Neural Networks", AAAI 2017,
      https://arxiv.org/abs/1712.09482
    """
    logits, labels, where = _prepare("mean_absolute_error", logits, labels, axis, where)
    return _masked(_one_minus_prob(_label_log_prob(logits, labels)), where)


def taylor_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    t: int = 2,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Taylor cross entropy: CE's Taylor series around ``p_y = 1``, truncated.

    .. math::
      \mathrm{TCE}^{\mathrm{Taylor}}_t(z, y) = \sum_{k=1}^{t}
        \frac{(1 - p_y)^k}{k}

    ``t = 1`` is MAE; ``t -> inf`` is CE.

    Args:
      logits: Unnormalised log-probabilities, shape ``[..., num_classes]``.
      labels: Integer labels, shape ``logits.shape`` without the class axis.
      t: Order, an integer >= 1; 2 is the common choice in the paper's
        experiments (default).
      axis: Class axis or tuple of axes.
      where: Optional boolean per-example mask.

    Returns:
      Per-example loss, shape ``labels.shape``.

    Example:
      >>> import jax.numpy as jnp
      >>> from tce_jax import losses
      >>> losses.taylor_cross_entropy(
      ...     jnp.array([[2.0, 0.0, -1.0]]), jnp.array([2]), t=2)
      Array([1.4168622], dtype=float32)

    References:
      L. Feng et al., "Can Cross Entropy Loss Be Robust to Label Noise?",
      IJCAI 2020, https://www.ijcai.org/proceedings/2020/305
    """
    t = _check_hparam("taylor_cross_entropy", "t", t, _TAYLOR_ORDER)
    logits, labels, where = _prepare(
        "taylor_cross_entropy", logits, labels, axis, where
    )
    gap = _one_minus_prob(_label_log_prob(logits, labels))
    # Horner's scheme: gap * (1 + gap * (1/2 + gap * (1/3 + ...))).
    series = jnp.full_like(gap, 1.0 / t)
    for order in range(t - 1, 0, -1):
        series = 1.0 / order + gap * series
    return _masked(gap * series, where)


def partially_huberised_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    tau: float = 2.0,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Partially Huberised cross entropy: CE linearised below ``p_y = 1/tau``.

    .. math::
      \mathrm{PHuber}_\tau(z, y) =
      \begin{cases}
        -\tau\, p_y + \log\tau + 1 & p_y \le 1/\tau \\
        -\log p_y & \text{otherwise}
      \end{cases}

    Continuous with a continuous derivative in ``p_y``; the gradient in the
    logits is bounded, unlike CE's weight ``1/p_y``.

    Args:
      logits: Unnormalised log-probabilities, shape ``[..., num_classes]``.
      labels: Integer labels, shape ``logits.shape`` without the class axis.
      tau: Threshold ``> 1``. Paper: 2 on CIFAR-10 (default), 10 on MNIST.
      axis: Class axis or tuple of axes.
      where: Optional boolean per-example mask.

    Returns:
      Per-example loss, shape ``labels.shape``.

    Example:
      >>> import jax.numpy as jnp
      >>> from tce_jax import losses
      >>> losses.partially_huberised_cross_entropy(
      ...     jnp.array([[2.0, 0.0, -1.0]]), jnp.array([2]), tau=2.0)
      Array([1.609127], dtype=float32)

    References:
      A. K. Menon et al., "Can Gradient Clipping Mitigate Label Noise?",
      ICLR 2020, https://openreview.net/forum?id=rklB76EKPr
    """
    tau = _check_hparam("partially_huberised_cross_entropy", "tau", tau, _PHUBER_TAU)
    logits, labels, where = _prepare(
        "partially_huberised_cross_entropy", logits, labels, axis, where
    )
    label_log_prob = _label_log_prob(logits, labels)
    log_tau = math.log(tau)
    linear = -tau * jnp.exp(label_log_prob) + (log_tau + 1.0)
    loss = jnp.where(label_log_prob <= -log_tau, linear, -label_log_prob)
    return _masked(loss, where)


def _log_t(log_x: jax.Array, t: float) -> jax.Array:
    """Tempered logarithm ``(x^(1-t) - 1) / (1 - t)`` of ``x = exp(log_x)``."""
    if t == 1.0:
        return log_x
    return jnp.expm1((1.0 - t) * log_x) / (1.0 - t)


def _tempered_log_softmax(logits: jax.Array, t: float, max_iters: int) -> jax.Array:
    """Log of the tempered softmax ``exp_t(z - lambda(z))`` for ``t >= 1``.

    Returned as a log so that powers of the probabilities stay differentiable
    where a probability is tiny.
    """
    if t == 1.0:
        return jax.nn.log_softmax(logits, axis=-1)
    return _tempered_log_probs(logits, t, max_iters)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _tempered_log_probs(logits: jax.Array, t: float, max_iters: int) -> jax.Array:
    r"""``log exp_t(z - lambda)``, ``lambda`` making the values sum to 1 (``t > 1``).

    With ``c = t - 1``, ``a_k = c (max z - z_k) >= 0`` and ``u`` the largest
    probability, every probability is a function of ``u`` alone,
    ``p_k = u (1 + a_k u^c)^(-1/c)``, and ``F(u) = sum_k p_k`` is increasing
    and concave in ``u`` (``F'(u) = sum_k (1 + a_k u^c)^(-1/c - 1)``, which
    decreases), with ``F(1/K) <= 1 <= F(1)``. Newton's method on
    ``F(u) = 1`` from ``u = 1/K`` therefore increases ``u`` monotonically to
    the root, without overshooting, and converges quadratically: 0-10
    iterations over 2-32,000 classes, ``t`` in [1.001, 10] and logits up to
    1e4 in float32 and float64 (benchmarks/bi_tempered_bench.py,
    tests/test_baseline_references.py). An example stops (its ``u`` is
    frozen) once ``|F(u) - 1| <= 4 eps`` (rounding leaves ``F`` within about
    3 eps of 1 at the root) or once a step would no longer change ``u``; the
    ``lax.while_loop`` ends when every example has stopped, or after
    ``max_iters`` steps. The gradient is not taken through the loop (see the
    JVP below).
    """
    c = t - 1.0
    power = 1.0 / c
    gaps = c * (jnp.max(logits, axis=-1, keepdims=True) - logits)
    eps = jnp.finfo(logits.dtype).eps
    tolerance = 4.0 * eps

    def residual_and_slope(u):
        x = gaps * u**c
        tails = jnp.exp(-power * jnp.log1p(x))  # p_k / u = (1 + x_k)^(-1/c)
        residual = 1.0 - u * jnp.sum(tails, axis=-1, keepdims=True)
        slope = jnp.sum(tails / (1.0 + x), axis=-1, keepdims=True)
        return residual, slope

    def moving(u, residual, slope):
        # Off 1 by more than rounding, and a step that still changes u.
        return (jnp.abs(residual) > tolerance) & (jnp.abs(residual) > eps * u * slope)

    def not_converged(state):
        i, u, residual, slope = state
        return (i < max_iters) & jnp.any(moving(u, residual, slope))

    def newton(state):
        i, u, residual, slope = state
        u = jnp.where(moving(u, residual, slope), u + residual / slope, u)
        return i + 1, u, *residual_and_slope(u)

    start = jnp.full_like(gaps[..., :1], 1.0 / logits.shape[-1])
    _, u, _, _ = jax.lax.while_loop(
        not_converged, newton, (0, start, *residual_and_slope(start))
    )
    return jnp.log(u) - power * jnp.log1p(gaps * u**c)


@_tempered_log_probs.defjvp
def _tempered_log_probs_jvp(t, max_iters, primals, tangents):
    # The normaliser's exact derivative (implicit function theorem): from
    # sum_k exp_t(z_k - lambda) = 1 and d exp_t(v) = exp_t(v)^t dv,
    # d lambda = sum_j q_j dz_j with the escort q = p^t / sum p^t, so
    # d log p_k = p_k^(t - 1) (dz_k - d lambda). Linear in the tangent, so
    # reverse mode transposes it; the primal's loop is never differentiated.
    (logits,), (logits_dot,) = primals, tangents
    log_probs = _tempered_log_probs(logits, t, max_iters)
    escort = jax.nn.softmax(t * log_probs, axis=-1)
    normaliser_dot = jnp.sum(escort * logits_dot, axis=-1, keepdims=True)
    log_probs_dot = jnp.exp((t - 1.0) * log_probs) * (logits_dot - normaliser_dot)
    return log_probs, log_probs_dot


def bi_tempered_logistic_loss(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    t1: float = 0.8,
    t2: float = 1.2,
    num_iters: int = 50,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Bi-tempered logistic loss with integer labels.

    With :math:`\log_t x = \frac{x^{1-t} - 1}{1 - t}`,
    :math:`\exp_t x = [1 + (1 - t)x]_+^{1/(1-t)}` and the tempered softmax
    :math:`\hat p_k = \exp_{t_2}(z_k - \lambda_{t_2}(z))`,
    :math:`\sum_k \hat p_k = 1`:

    .. math::
      \mathrm{BT}_{t_1,t_2}(z, y) = -\log_{t_1} \hat p_y
        - \frac{1}{2 - t_1}\Big(1 - \sum_k \hat p_k^{\,2 - t_1}\Big)

    ``t1 < 1`` bounds the loss, ``t2 > 1`` gives the softmax a heavy tail;
    ``t1 = t2 = 1`` is CE. The normaliser ``lambda`` is solved for, not
    approximated: Newton's method on a concave reformulation
    (``_tempered_log_probs``) iterates until the probabilities sum to 1 to
    rounding (within 1e-6 in float32, 2e-15 in float64), at most
    ``num_iters`` times.
    The gradient is the exact normaliser's, from the implicit function theorem
    under a ``jax.custom_jvp`` (so forward mode, reverse mode and their
    compositions all work), not autodiff through the iterations. The paper's
    reference code instead runs 5 fixed-point iterations, which leave sums off
    1 by up to 0.2 on extreme logits (docs/losses.md, "The published code").

    Args:
      logits: Unnormalised log-probabilities, shape ``[..., num_classes]``.
      labels: Integer labels, shape ``logits.shape`` without the class axis.
      t1: Temperature of the logarithm, in ``[0, 1]``; default 0.8.
      t2: Temperature of the exponential, ``>= 1``; default 1.2 (the paper's
        noisy-label settings range over ``t1`` in 0.2-0.9, ``t2`` in 1.0-4.0).
      num_iters: The most Newton iterations for the normaliser, ``>= 1``;
        default 50, far above the 0-10 that convergence takes.
      axis: Class axis or tuple of axes.
      where: Optional boolean per-example mask.

    Returns:
      Per-example loss, shape ``labels.shape``.

    Example:
      >>> import jax.numpy as jnp
      >>> from tce_jax import losses
      >>> losses.bi_tempered_logistic_loss(
      ...     jnp.array([[2.0, 0.0, -1.0]]), jnp.array([2]), t1=0.8, t2=1.2)
      Array([1.878744...], dtype=float32)

    References:
      E. Amid, M. K. Warmuth, R. Anil and T. Koren, "Robust Bi-Tempered
      Logistic Loss Based on Bregman Divergences", NeurIPS 2019,
      https://arxiv.org/abs/1906.03361
    """
    loss = "bi_tempered_logistic_loss"
    t1 = _check_hparam(loss, "t1", t1, _BI_TEMPERED_T1)
    t2 = _check_hparam(loss, "t2", t2, _BI_TEMPERED_T2)
    num_iters = _check_hparam(loss, "num_iters", num_iters, _NUM_ITERS)
    logits, labels, where = _prepare(loss, logits, labels, axis, where)
    log_probs = _tempered_log_softmax(logits, t2, num_iters)
    power_sum = jnp.sum(jnp.exp((2.0 - t1) * log_probs), axis=-1)
    value = -_log_t(_label_logit(log_probs, labels), t1) - (1.0 - power_sum) / (
        2.0 - t1
    )
    return _masked(value, where)


def focal_loss(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    gamma: float = 0.5,
    stop_gradient_weight: bool = False,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Focal loss: CE scaled down on well-classified examples.

    .. math::
      \mathrm{FL}_\gamma(z, y) = -(1 - p_y)^\gamma\, \ell_y

    ``gamma = 0`` is CE. ``(1 - p_y)`` comes from ``expm1`` and its power is
    guarded so the gradient is 0, not NaN, where ``p_y`` rounds to 1.

    By default the gradient is that of the formula. With
    ``stop_gradient_weight=True`` the weight ``(1 - p_y)^gamma`` is a constant
    of the backward pass, as in the public code the noisy-label baseline comes
    from (registry name ``focal_code``): the gradient is then
    ``(1 - p_y)^gamma`` times CE's, and the value is unchanged.

    Args:
      logits: Unnormalised log-probabilities, shape ``[..., num_classes]``.
      labels: Integer labels, shape ``logits.shape`` without the class axis.
      gamma: Focusing exponent ``>= 0``. Default 0.5, the setting used as a
        noisy-label baseline (Ma et al. 2020); the focal-loss paper uses 2 for
        dense detection.
      stop_gradient_weight: Treat the weight as a constant in the gradient
        (a static bool).
      axis: Class axis or tuple of axes.
      where: Optional boolean per-example mask.

    Returns:
      Per-example loss, shape ``labels.shape``.

    Example:
      >>> import jax.numpy as jnp
      >>> from tce_jax import losses
      >>> losses.focal_loss(
      ...     jnp.array([[2.0, 0.0, -1.0]]), jnp.array([2]), gamma=0.5)
      Array([3.102549], dtype=float32)

    References:
      T.-Y. Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017,
      https://arxiv.org/abs/1708.02002
    """
    gamma = _check_hparam("focal_loss", "gamma", gamma, _NONNEGATIVE)
    if not isinstance(stop_gradient_weight, bool):
        raise TypeError(
            f"focal_loss: stop_gradient_weight must be a bool, got "
            f"{stop_gradient_weight!r}"
        )
    logits, labels, where = _prepare("focal_loss", logits, labels, axis, where)
    label_log_prob = _label_log_prob(logits, labels)
    if gamma == 0.0:
        return _masked(-label_log_prob, where)
    gap = _one_minus_prob(label_log_prob)
    positive = gap > 0.0
    # Double where: the power's derivative is infinite at 0 for gamma < 1.
    modulator = jnp.where(positive, jnp.where(positive, gap, 1.0) ** gamma, 0.0)
    if stop_gradient_weight:
        modulator = jax.lax.stop_gradient(modulator)
    return _masked(-modulator * label_log_prob, where)


def label_smoothed_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    epsilon: float = 0.1,
    axis: Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Cross entropy against the label smoothed towards the uniform distribution.

    .. math::
      q = (1 - \epsilon)\, e_y + \frac{\epsilon}{K},\qquad
      \mathrm{LS}_\epsilon(z, y) = -\sum_k q_k \ell_k
        = (1 - \epsilon)(-\ell_y) + \frac{\epsilon}{K}\sum_k (-\ell_k)

    ``q`` sums to 1 (the true class gets ``1 - epsilon + epsilon / K``).

    Args:
      logits: Unnormalised log-probabilities, shape ``[..., num_classes]``.
      labels: Integer labels, shape ``logits.shape`` without the class axis.
      epsilon: Smoothing in ``[0, 1)``; default 0.1 (Szegedy et al.).
      axis: Class axis or tuple of axes.
      where: Optional boolean per-example mask.

    Returns:
      Per-example loss, shape ``labels.shape``.

    Example:
      >>> import jax.numpy as jnp
      >>> from tce_jax import losses
      >>> losses.label_smoothed_cross_entropy(
      ...     jnp.array([[2.0, 0.0, -1.0]]), jnp.array([2]), epsilon=0.1)
      Array([3.0365126], dtype=float32)

    References:
      C. Szegedy et al., "Rethinking the Inception Architecture for Computer
      Vision", CVPR 2016, https://arxiv.org/abs/1512.00567
    """
    epsilon = _check_hparam(
        "label_smoothed_cross_entropy", "epsilon", epsilon, _SMOOTHING
    )
    logits, labels, where = _prepare(
        "label_smoothed_cross_entropy", logits, labels, axis, where
    )
    log_normaliser = jax.nn.logsumexp(logits, axis=-1)
    label_term = log_normaliser - _label_logit(logits, labels)
    uniform_term = log_normaliser - jnp.mean(logits, axis=-1)
    return _masked((1.0 - epsilon) * label_term + epsilon * uniform_term, where)


# ----------------------------------------------------------------------------
# Registry.


@dataclasses.dataclass(frozen=True)
class _Entry:
    """A registered loss.

    Attributes:
      fn: the loss function.
      hparams: each hyperparameter's registry default and allowed range.
      options: fixed keyword arguments (a variant of ``fn``), not
        hyperparameters.
      settings_of: the loss whose per-dataset settings this one takes (a
        variant takes its base loss's); default: its own name.
    """

    fn: LossFn
    hparams: dict[str, tuple[float, _Range]]
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    settings_of: str | None = None


def _sce_hparams(log_zero: float) -> dict[str, tuple[float, _Range]]:
    return {
        "alpha": (0.1, _NONNEGATIVE),
        "beta": (1.0, _NONNEGATIVE),
        "log_zero": (log_zero, _LOG_ZERO),
    }


def _nce_rce_hparams(log_zero: float) -> dict[str, tuple[float, _Range]]:
    return {
        "alpha": (1.0, _NONNEGATIVE),
        "beta": (1.0, _NONNEGATIVE),
        "log_zero": (log_zero, _LOG_ZERO),
    }


# The ``*_code`` entries are the losses as the public code their published
# settings come from computes them, where that differs from the formula
# (docs/losses.md, "The published code"): A = ln 1e-4 instead of the paper's
# -4 in RCE, SCE and NCE+RCE, and the focal weight held constant in the
# backward pass. Their defaults and per-dataset settings are their base's.
_REGISTRY: dict[str, _Entry] = {
    "ce": _Entry(cross_entropy, {}),
    "tce": _Entry(tamed_cross_entropy, {"alpha": (DEFAULT_TCE_ALPHA, _TCE_ALPHA)}),
    "gce": _Entry(generalized_cross_entropy, {"q": (0.7, _GCE_Q)}),
    "sce": _Entry(symmetric_cross_entropy, _sce_hparams(PAPER_LOG_ZERO)),
    "sce_code": _Entry(
        symmetric_cross_entropy, _sce_hparams(CODE_LOG_ZERO), settings_of="sce"
    ),
    "rce": _Entry(reverse_cross_entropy, {"log_zero": (PAPER_LOG_ZERO, _LOG_ZERO)}),
    "rce_code": _Entry(
        reverse_cross_entropy,
        {"log_zero": (CODE_LOG_ZERO, _LOG_ZERO)},
        settings_of="rce",
    ),
    "nce": _Entry(normalized_cross_entropy, {}),
    "nce_rce": _Entry(nce_plus_rce, _nce_rce_hparams(PAPER_LOG_ZERO)),
    "nce_rce_code": _Entry(
        nce_plus_rce, _nce_rce_hparams(CODE_LOG_ZERO), settings_of="nce_rce"
    ),
    "nce_mae": _Entry(
        nce_plus_mae, {"alpha": (1.0, _NONNEGATIVE), "beta": (1.0, _NONNEGATIVE)}
    ),
    "mae": _Entry(mean_absolute_error, {}),
    "taylor_ce": _Entry(taylor_cross_entropy, {"t": (2, _TAYLOR_ORDER)}),
    "phuber_ce": _Entry(partially_huberised_cross_entropy, {"tau": (2.0, _PHUBER_TAU)}),
    "bi_tempered": _Entry(
        bi_tempered_logistic_loss,
        {
            "t1": (0.8, _BI_TEMPERED_T1),
            "t2": (1.2, _BI_TEMPERED_T2),
            "num_iters": (50, _NUM_ITERS),
        },
    ),
    "focal": _Entry(focal_loss, {"gamma": (0.5, _NONNEGATIVE)}),
    "focal_code": _Entry(
        focal_loss,
        {"gamma": (0.5, _NONNEGATIVE)},
        options={"stop_gradient_weight": True},
        settings_of="focal",
    ),
    "ls_ce": _Entry(label_smoothed_cross_entropy, {"epsilon": (0.1, _SMOOTHING)}),
}


def _entry(name: str) -> _Entry:
    if name not in _REGISTRY:
        raise ValueError(f"Unknown loss {name!r}; known losses: {', '.join(names())}")
    return _REGISTRY[name]


# ----------------------------------------------------------------------------
# Per-dataset settings of the baselines.

DATASET_NAMES = ("cifar10", "cifar100", "mnist", "svhn_cropped", "fashion_mnist")
"""The datasets of the settings table (``config.data.dataset`` names)."""

FALLBACK_DATASET = "cifar10"
"""Whose published setting a dataset takes when none was published for it."""

# Each baseline's hyperparameters as published for a dataset, by the paper
# that proposed the loss or, where it ran the loss as a baseline, the
# active-passive paper's code (Ma et al. 2020). The one table: configs get
# these through defaults(name, dataset); docs/losses.md shows it (checked by
# tests/test_baseline_settings.py). A dataset without an entry takes
# FALLBACK_DATASET's; a loss without a row takes its registry defaults on
# every dataset; registry defaults are the CIFAR-10 settings.
_PUBLISHED_SETTINGS: dict[str, dict[str, dict[str, float]]] = {
    # Zhang & Sabuncu 2018 (CIFAR-10, CIFAR-100, Fashion-MNIST); Ma et al.'s
    # configs for MNIST.
    "gce": {
        "cifar10": {"q": 0.7},
        "cifar100": {"q": 0.7},
        "mnist": {"q": 0.7},
        "fashion_mnist": {"q": 0.7},
    },
    # Wang et al. 2019; Ma et al.'s configs agree.
    "sce": {
        "cifar10": {"alpha": 0.1, "beta": 1.0},
        "cifar100": {"alpha": 6.0, "beta": 0.1},
        "mnist": {"alpha": 0.01, "beta": 1.0},
    },
    # Ma et al. 2020.
    "nce_rce": {
        "cifar10": {"alpha": 1.0, "beta": 1.0},
        "cifar100": {"alpha": 10.0, "beta": 0.1},
        "mnist": {"alpha": 1.0, "beta": 10.0},
    },
    "nce_mae": {
        "cifar10": {"alpha": 1.0, "beta": 1.0},
        "cifar100": {"alpha": 10.0, "beta": 1.0},
        "mnist": {"alpha": 1.0, "beta": 10.0},
    },
    # Menon et al. 2020.
    "phuber_ce": {
        "cifar10": {"tau": 2.0},
        "cifar100": {"tau": 10.0},
        "mnist": {"tau": 10.0},
    },
    # Ma et al.'s focal-loss baseline.
    "focal": {
        "cifar10": {"gamma": 0.5},
        "cifar100": {"gamma": 0.5},
        "mnist": {"gamma": 0.5},
    },
}


def _settings_name(name: str) -> str:
    entry = _entry(name)
    return entry.settings_of or name


def published_settings(name: str) -> dict[str, dict[str, float]]:
    """The settings published for a registered loss: ``{dataset: hparams}``.

    Only the datasets with a published setting, and only the hyperparameters
    that vary between datasets; ``{}`` for a loss without per-dataset settings
    (e.g. ``ce``, ``rce``, ``taylor_ce``, ``bi_tempered``, ``ls_ce``). A
    ``*_code`` variant has its base loss's. TCE has none: its alpha follows
    the rule ``alpha = 1/K`` (:func:`default_tce_alpha`).
    """
    return {
        dataset: dict(hparams)
        for dataset, hparams in _PUBLISHED_SETTINGS.get(
            _settings_name(name), {}
        ).items()
    }


class UnknownHyperparameterError(ValueError):
    """``get`` was given a hyperparameter the loss does not take.

    Attributes:
      loss: the loss name.
      unknown: the names it does not take, in the order given.
      allowed: the names it takes.
    """

    def __init__(self, loss: str, unknown: list[str], allowed: tuple[str, ...]):
        super().__init__(
            f"Loss {loss!r} takes no hyperparameter {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(allowed) or 'none'}"
        )
        self.loss, self.unknown, self.allowed = loss, unknown, allowed


def names() -> tuple[str, ...]:
    """The registered loss names, sorted."""
    return tuple(sorted(_REGISTRY))


def hparam_names(name: str) -> tuple[str, ...]:
    """The hyperparameters ``get(name, ...)`` accepts (may be empty)."""
    return tuple(_entry(name).hparams)


def defaults(
    name: str, dataset: str | None = None, *, num_classes: int | None = None
) -> dict[str, float]:
    """The default hyperparameters of a registered loss, or its setting for a dataset.

    Args:
      name: One of :func:`names`.
      dataset: None for the registry defaults (the CIFAR-10 settings); or one
        of ``DATASET_NAMES`` for the setting published for that dataset
        (:func:`published_settings`), ``FALLBACK_DATASET``'s where none was
        published for it, and the registry default for every hyperparameter
        without per-dataset settings.
      num_classes: With ``dataset``, for ``tce``: its alpha is
        ``default_tce_alpha(num_classes)`` (required for ``tce``).

    Returns:
      ``{hyperparameter: value}`` for every hyperparameter of the loss.

    Raises:
      ValueError: unknown ``name`` or ``dataset``, or ``tce`` with a dataset
        but no ``num_classes``.

    Example:
      >>> from tce_jax import losses
      >>> losses.defaults("sce", "cifar100")
      {'alpha': 6.0, 'beta': 0.1, 'log_zero': -4.0}
    """
    values = {key: default for key, (default, _) in _entry(name).hparams.items()}
    if dataset is None:
        return values
    if dataset not in DATASET_NAMES:
        raise ValueError(
            f"Unknown dataset {dataset!r} for the per-dataset settings; known: "
            f"{', '.join(DATASET_NAMES)}"
        )
    if name == "tce":
        if num_classes is None:
            raise ValueError("tce: its alpha for a dataset needs num_classes (1/K)")
        return values | {"alpha": default_tce_alpha(num_classes)}
    published = published_settings(name)
    if published:
        values |= published.get(dataset, published[FALLBACK_DATASET])
    return values


def get(name: str, **hparams: Any) -> LossFn:
    """Returns the per-example loss ``fn(logits, labels, *, axis=-1, where=None)``.

    Hyperparameters not given take the loss's documented default. ``None``
    values count as not given, so a config can carry every hyperparameter as
    an optional placeholder.

    Args:
      name: One of :func:`names`.
      **hparams: Hyperparameters of that loss (see :func:`hparam_names`).

    Returns:
      The loss function with its hyperparameters bound.

    Raises:
      ValueError: unknown ``name``, a hyperparameter the loss does not take,
        or a value outside its allowed range (the message lists what is
        allowed).

    Example:
      >>> import jax.numpy as jnp
      >>> from tce_jax import losses
      >>> loss_fn = losses.get("gce", q=0.7)
      >>> loss_fn(jnp.array([[2.0, 0.0, -1.0]]), jnp.array([2]))
      Array([1.2732437], dtype=float32)
    """
    entry = _entry(name)
    given = {key: value for key, value in hparams.items() if value is not None}
    unknown = [key for key in given if key not in entry.hparams]
    if unknown:
        # The one check of hyperparameter names: library users call get()
        # directly, and config_validation words its error for a config field.
        raise UnknownHyperparameterError(name, unknown, tuple(entry.hparams))
    bound = {
        key: _check_hparam(name, key, given.get(key, default), allowed)
        for key, (default, allowed) in entry.hparams.items()
    }
    return functools.partial(entry.fn, **entry.options, **bound)


__all__ = (
    "CODE_LOG_ZERO",
    "DATASET_NAMES",
    "DEFAULT_TCE_ALPHA",
    "FALLBACK_DATASET",
    "PAPER_LOG_ZERO",
    "UnknownHyperparameterError",
    "bi_tempered_logistic_loss",
    "cross_entropy",
    "default_tce_alpha",
    "defaults",
    "focal_loss",
    "generalized_cross_entropy",
    "get",
    "hparam_names",
    "label_smoothed_cross_entropy",
    "mean_absolute_error",
    "names",
    "nce_plus_mae",
    "nce_plus_rce",
    "normalized_cross_entropy",
    "partially_huberised_cross_entropy",
    "published_settings",
    "reverse_cross_entropy",
    "symmetric_cross_entropy",
    "tamed_cross_entropy",
    "tamed_cross_entropy_with_soft_labels",
    "taylor_cross_entropy",
    "tce_gradient_weight",
)

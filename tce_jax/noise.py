"""Deterministic, exact label noise: the noisy labels are a function of a PRNG key.

`corrupt_labels(key, labels, ...)` flips an exact number of labels (never a
per-example coin toss, whose realised rate drifts from seed to seed; the
``instance`` kind alone is per-example by definition) and reports the realised
noise rate and transition matrix beside the noisy labels.

Determinism: the key's raw words seed a numpy PCG64 bit generator, and only its
float64 draws (`Generator.random`, a fixed function of the 64-bit stream) and
stable sorts are used. The result is therefore a function of (key, labels,
arguments) alone: identical on every platform, device count and process count,
and independent of how the labels are later batched or sharded, because it is
computed once for the whole label array. One million labels take about 0.4 s
on a busy 2-core CPU (benchmarks/pipeline_bench.py). The ``instance`` kind also
turns float64 draws into normals by the inverse normal CDF (scipy.special, in
float64) and projects images in float64; the matrix product's summation order
may differ between BLAS builds by about 1e-16 relative, which changes a label
only if a draw falls about that close to a boundary of its row.

Kinds (`KINDS`), with N examples and N_c of clean class c:

* ``symmetric``: exactly round(rate * N) examples, chosen uniformly without
  replacement, each relabelled uniformly among the other K - 1 classes.
* ``uniform``: exactly round(rate * N) examples, chosen the same way, get a label
  drawn uniformly from all K classes (about 1/K of them keep theirs, so the
  realised rate is about rate * (K - 1) / K).
* ``pair``: in each class c exactly round(rate * N_c) examples flip to
  (c + 1) mod K.
* ``asymmetric_cifar10``: the standard CIFAR-10 map truck->automobile,
  bird->airplane, deer->horse, cat->dog, dog->cat; round(rate * N_c) examples of
  each source class flip, chosen from the clean labels, so flips never chain.
* ``matrix``: for a row-stochastic matrix T (rows = clean class), class c sends
  exactly n_cj examples to class j, where n_cj is T[c, j] * N_c rounded by the
  largest-remainder method (floor every entry, then give the leftover units to
  the largest fractional parts, ties to the lower class index), so each row of
  counts sums to N_c. `rate` is not used by this kind.
* ``instance``: instance-dependent noise, the generator of Xia et al. 2020
  ("Part-dependent label noise", NeurIPS, Algorithm 2) as the label-noise
  literature runs it; it needs the images (`images=`). Each example i draws its
  own flip rate q_i from a normal with mean `rate` and std 0.1 truncated to
  [0, 1]; one projection W [K, D, K] with standard normal entries is drawn for
  the whole dataset. For an example with clean label y and flattened image x_i
  (D values), s = x_i W[y] (K scores), s_y = -inf, and the noisy label is one
  draw from q_i * softmax(s) + (1 - q_i) * onehot(y): with probability q_i the
  label flips, never back to y, to a class chosen by the image's content. The
  number of flips is random (not exact as for the other kinds): its expectation
  is N * E[q_i]: 0.2055 N at rate 0.2 and 0.4000 N at rate 0.4 (the truncation
  at 0 lifts the mean of small rates; rate 0 gives the clean labels, not the
  truncated normal's mean of 0.08).

  Where public copies differ, this one takes: the images as the caller passes
  them, flattened (the input pipeline passes them normalised per channel, as
  the model sees them; copies feed raw, [0, 1] or normalised pixels); W
  unnormalised, as in the original (some copies normalise it); q_i truncated
  to [0, 1] and not capped further. With normalised images |s| is in the
  tens, so softmax(s) is nearly one-hot: the flip target is, in effect, a
  function of the image. The draw is two-stage, the same distribution as one
  categorical draw from the row: flip if u_i < q_i, then pick the target by
  inverse CDF of softmax(s) over the K - 1 other classes in class order.
  Memory: W is drawn one class at a time (D x K floats) and the images are
  projected in chunks, so CIFAR-100 (D = 3072, K = 100) never holds the
  30.7M-entry W or a float64 copy of the split.

Python's `round` (half to even) defines every "round" above.
"""

import dataclasses
import math
import numbers

import jax
import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from tce_jax import seeding

KINDS = ("symmetric", "uniform", "pair", "asymmetric_cifar10", "matrix", "instance")

# CIFAR-10 class ids: 0 airplane, 1 automobile, 2 bird, 3 cat, 4 deer, 5 dog,
# 6 frog, 7 horse, 8 ship, 9 truck.
ASYMMETRIC_CIFAR10_MAP = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}

_ROW_SUM_TOLERANCE = 1e-6

# Xia et al.'s std of the per-example flip rate around the nominal rate.
INSTANCE_FLIP_RATE_STD = 0.1
# Images projected at once: bounds the float64 copy (1024 x 3072 for CIFAR, 25 MB).
_INSTANCE_CHUNK = 1024


@dataclasses.dataclass(frozen=True)
class NoisyLabels:
    """Noisy labels and what the noise realised.

    Attributes:
      labels: int32 [N], the noisy labels.
      is_noisy: bool [N], True where the noisy label differs from the clean one.
      transition_matrix: float64 [K, K], realised P(noisy = j | clean = c) with
        rows indexed by the clean class; a class absent from the labels gets the
        identity row.
      rate: the realised fraction of examples whose label changed.
    """

    labels: np.ndarray
    is_noisy: np.ndarray
    transition_matrix: np.ndarray
    rate: float


def check_arguments(
    *,
    num_classes: int,
    rate: float,
    kind: str,
    transition_matrix: ArrayLike | None = None,
) -> np.ndarray | None:
    """Validates the noise arguments that do not depend on the labels.

    Args:
      num_classes: number of classes K, an int >= 2.
      rate: noise rate, a real number in [0, 1).
      kind: one of `KINDS`.
      transition_matrix: None, or for kind "matrix" a row-stochastic K x K
        array-like (rows = clean class).

    Returns:
      The transition matrix as float64 [K, K] rows normalised to sum to 1, or
      None for the other kinds.

    Raises:
      ValueError: saying which argument is wrong and what is allowed.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise ValueError(f"rate must be a real number in [0, 1), got {rate!r}")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be in [0, 1), got {rate}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "asymmetric_cifar10" and num_classes != 10:
        raise ValueError(
            f"kind='asymmetric_cifar10' needs num_classes=10 (the CIFAR-10 map), "
            f"got {num_classes}"
        )
    if kind != "matrix":
        if transition_matrix is not None:
            raise ValueError(
                f"transition_matrix is only used with kind='matrix', not {kind!r}; "
                "pass None"
            )
        return None
    if transition_matrix is None:
        raise ValueError(
            "kind='matrix' needs a transition_matrix (K x K, rows sum to 1)"
        )
    try:
        matrix = np.asarray(transition_matrix, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"transition_matrix must be a K x K array of numbers: {error}"
        ) from error
    if matrix.shape != (num_classes, num_classes):
        raise ValueError(
            f"transition_matrix must have shape ({num_classes}, {num_classes}), "
            f"got {matrix.shape}"
        )
    if not np.all(np.isfinite(matrix)) or np.any(matrix < 0):
        raise ValueError("transition_matrix entries must be finite and >= 0")
    row_sums = matrix.sum(axis=1)
    if not np.allclose(row_sums, 1.0, rtol=0.0, atol=_ROW_SUM_TOLERANCE):
        raise ValueError(
            "transition_matrix must be row-stochastic (every row sums to 1 within "
            f"{_ROW_SUM_TOLERANCE}), got row sums {row_sums.tolist()}"
        )
    return matrix / row_sums[:, None]


def corrupt_labels(
    key: jax.Array,
    labels: ArrayLike,
    *,
    num_classes: int,
    rate: float,
    kind: str = "symmetric",
    transition_matrix: ArrayLike | None = None,
    images: ArrayLike | None = None,
) -> NoisyLabels:
    """Corrupts integer labels with noise of the given kind.

    See the module docstring for the exact definition of each kind.

    Args:
      key: a JAX PRNG key (typed `jax.random.key` or raw `jax.random.PRNGKey`).
      labels: int array-like [N] of clean labels in [0, num_classes).
      num_classes: number of classes K >= 2.
      rate: fraction to corrupt, in [0, 1) (unused by kind "matrix"; the mean
        per-example flip rate for kind "instance").
      kind: one of `KINDS`.
      transition_matrix: row-stochastic K x K array (rows = clean class), only
        for kind "matrix".
      images: real array [N, ...] (e.g. [N, H, W, C]), only for kind
        "instance": the images of the N examples, each flattened to D values,
        as the model sees them (normalised).

    Returns:
      A `NoisyLabels`.

    Raises:
      ValueError: on a bad key, labels, rate, kind, K, matrix or images.

    Example:
      >>> key = jax.random.key(0)
      >>> noisy = corrupt_labels(key, np.arange(10) % 2, num_classes=2, rate=0.2)
      >>> int(noisy.is_noisy.sum())
      2
    """
    matrix = check_arguments(
        num_classes=num_classes,
        rate=rate,
        kind=kind,
        transition_matrix=transition_matrix,
    )
    clean = _check_labels(labels, num_classes)
    if kind != "instance" and images is not None:
        raise ValueError(
            f"images are only used with kind='instance', not {kind!r}; pass None"
        )
    if kind == "instance":
        features = _check_images(images, clean.shape[0])
    rng = _numpy_generator(key)
    if kind in ("symmetric", "uniform"):
        noisy = _corrupt_chosen_examples(rng, clean, num_classes, rate, kind)
    elif kind == "instance":
        noisy = _corrupt_by_instance(rng, clean, features, num_classes, rate)
    else:
        counts = _target_counts(clean, num_classes, rate, kind, matrix)
        noisy = _assign_counts_per_class(rng, clean, counts)
    return _summarise(clean, noisy, num_classes)


def _check_labels(labels: ArrayLike, num_classes: int) -> np.ndarray:
    clean = np.asarray(labels)
    if clean.ndim != 1:
        raise ValueError(f"labels must be a 1-D array [N], got shape {clean.shape}")
    if clean.size and not np.issubdtype(clean.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {clean.dtype}")
    if clean.size and (clean.min() < 0 or clean.max() >= num_classes):
        raise ValueError(
            f"labels must be in [0, {num_classes}), got values in "
            f"[{clean.min()}, {clean.max()}]"
        )
    return clean.astype(np.int32)


def _check_images(images: ArrayLike | None, num_examples: int) -> np.ndarray:
    """The images as a [N, D] real array (a view: converted chunk by chunk later)."""
    if images is None:
        raise ValueError(
            "kind='instance' needs images=: a real array [N, ...] of the N "
            "examples' images (normalised, as the model sees them)"
        )
    array = np.asarray(images)
    if array.ndim < 2 or array.shape[0] != num_examples or 0 in array.shape[1:]:
        raise ValueError(
            f"images must be an array [N, ...] with one non-empty image per label "
            f"(N={num_examples}), got shape {array.shape}"
        )
    if array.dtype.kind not in "iuf":
        raise ValueError(f"images must be real numbers, got dtype {array.dtype}")
    features = array.reshape(num_examples, math.prod(array.shape[1:]))
    # In chunks: a boolean copy of a whole CIFAR split would be 150 MB.
    for start in range(0, num_examples, _INSTANCE_CHUNK):
        if not np.isfinite(features[start : start + _INSTANCE_CHUNK]).all():
            raise ValueError("images must be finite (no NaN or inf)")
    return features


def _numpy_generator(key: jax.Array) -> np.random.Generator:
    """A numpy Generator seeded by the raw words of a JAX PRNG key."""
    try:
        if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
            key = jax.random.key_data(key)
        words = np.asarray(key)
    except (AttributeError, TypeError) as error:
        raise ValueError(
            f"key must be a JAX PRNG key (jax.random.key or PRNGKey), got {key!r}"
        ) from error
    if words.dtype != np.uint32 or words.ndim != 1:
        raise ValueError(
            "key must be a single JAX PRNG key (jax.random.key or PRNGKey), got an "
            f"array of dtype {words.dtype} and shape {words.shape}"
        )
    return seeding.numpy_generator(*words.tolist())


def _corrupt_chosen_examples(
    rng: np.random.Generator,
    clean: np.ndarray,
    num_classes: int,
    rate: float,
    kind: str,
) -> np.ndarray:
    """symmetric/uniform: relabels exactly round(rate * N) uniformly chosen examples."""
    num_examples = clean.shape[0]
    num_chosen = round(rate * num_examples)
    selection_keys = rng.random(num_examples)
    label_draws = rng.random(num_examples)
    chosen = np.argsort(selection_keys, kind="stable")[:num_chosen]
    noisy = clean.copy()
    if kind == "symmetric":
        offset = 1 + np.floor(label_draws[chosen] * (num_classes - 1)).astype(np.int32)
        noisy[chosen] = (clean[chosen] + offset) % num_classes
    else:
        noisy[chosen] = np.floor(label_draws[chosen] * num_classes).astype(np.int32)
    return noisy


def _corrupt_by_instance(
    rng: np.random.Generator,
    clean: np.ndarray,
    features: np.ndarray,
    num_classes: int,
    rate: float,
) -> np.ndarray:
    """instance: Xia et al.'s per-example flip rate and image-driven target.

    The draws, in this order: the N flip-rate uniforms, the N flip uniforms, the
    N target uniforms, then W[0], ..., W[K-1] (D x K normals each, drawn even for
    classes absent from the labels so that every class's W is a function of the
    key alone).
    """
    num_examples, num_features = features.shape
    flip_rates = _truncated_normal_flip_rates(rng.random(num_examples), rate)
    flips = rng.random(num_examples) < flip_rates
    target_draws = rng.random(num_examples)
    noisy = clean.copy()
    classes = np.arange(num_classes)
    for label in range(num_classes):
        others = classes[classes != label]
        # W[y] without column y: s_y = -inf is the same as leaving y out of
        # the softmax.
        projection = _standard_normal(rng.random((num_features, num_classes)))
        projection = projection[:, others]
        flipping = np.flatnonzero(flips & (clean == label))
        for start in range(0, flipping.size, _INSTANCE_CHUNK):
            chunk = flipping[start : start + _INSTANCE_CHUNK]
            scores = features[chunk].astype(np.float64) @ projection
            noisy[chunk] = others[_inverse_cdf(scores, target_draws[chunk])]
    return noisy


def _truncated_normal_flip_rates(uniforms: np.ndarray, rate: float) -> np.ndarray:
    """q_i ~ N(rate, 0.1^2) truncated to [0, 1], by inverse CDF; 0 when rate is 0."""
    if rate == 0:
        return np.zeros_like(uniforms)
    std = INSTANCE_FLIP_RATE_STD
    low, high = special.ndtr(-rate / std), special.ndtr((1 - rate) / std)
    return np.clip(rate + std * special.ndtri(low + uniforms * (high - low)), 0, 1)


def _standard_normal(uniforms: np.ndarray) -> np.ndarray:
    """Standard normals: the inverse normal CDF at the midpoints of the draws' grid.

    `Generator.random` gives k / 2^53; the normal is taken at (k + 1/2) / 2^53,
    never 0 or 1. The upper half goes through the symmetry of the CDF, from
    the tail 1 - u - 2^-54 below 1/2, where it is exact (u + 2^-54 near 1
    would round to 1).
    """
    half_step = 2.0**-54
    lower = uniforms < 0.5
    tail = np.where(lower, uniforms + half_step, (1.0 - uniforms) - half_step)
    magnitude = special.ndtri(tail)
    return np.where(lower, magnitude, -magnitude)


def _inverse_cdf(scores: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Per row, the index drawn from softmax(scores) by inverse CDF of `uniforms`.

    Indices at most K' - 1 (K' = columns), so rounding at the top of the
    cumulative sum can never give an index out of range.
    """
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    cumulative = np.cumsum(weights, axis=1)
    thresholds = uniforms * cumulative[:, -1]
    return np.sum(cumulative[:, :-1] <= thresholds[:, None], axis=1)


def _target_counts(
    clean: np.ndarray,
    num_classes: int,
    rate: float,
    kind: str,
    matrix: np.ndarray | None,
) -> np.ndarray:
    """counts[c, j]: how many clean-class-c examples get noisy label j."""
    class_sizes = np.bincount(clean, minlength=num_classes)
    if kind == "matrix":
        return _largest_remainder_counts(matrix, class_sizes)
    targets = {
        "pair": {c: (c + 1) % num_classes for c in range(num_classes)},
        "asymmetric_cifar10": ASYMMETRIC_CIFAR10_MAP,
    }[kind]
    counts = np.diag(class_sizes).astype(np.int64)
    for source, target in targets.items():
        flips = round(rate * int(class_sizes[source]))
        counts[source, source] -= flips
        counts[source, target] += flips
    return counts


def _largest_remainder_counts(
    matrix: np.ndarray, class_sizes: np.ndarray
) -> np.ndarray:
    """Rounds matrix * N_c to integers per row, each row summing exactly to N_c."""
    ideal = matrix * class_sizes[:, None]
    counts = np.floor(ideal).astype(np.int64)
    leftover = class_sizes - counts.sum(axis=1)
    fractions = ideal - counts
    # Stable sort of the negated fractions: ties go to the lower class index.
    by_fraction = np.argsort(-fractions, axis=1, kind="stable")
    ranks = np.empty_like(by_fraction)
    np.put_along_axis(ranks, by_fraction, np.arange(matrix.shape[1])[None, :], axis=1)
    return counts + (ranks < leftover[:, None])


def _assign_counts_per_class(
    rng: np.random.Generator, clean: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """Gives counts[c, j] uniformly chosen class-c examples the label j.

    Sorting by (clean class, random key) puts each class in a contiguous block in
    uniformly random order; the block of class c is then cut into runs of
    counts[c, 0], counts[c, 1], ... labels, all in one vectorised pass.
    """
    num_classes = counts.shape[0]
    order = np.lexsort((rng.random(clean.shape[0]), clean))
    labels_in_order = np.repeat(
        np.tile(np.arange(num_classes), num_classes), counts.ravel()
    )
    noisy = np.empty_like(clean)
    noisy[order] = labels_in_order
    return noisy


def _summarise(clean: np.ndarray, noisy: np.ndarray, num_classes: int) -> NoisyLabels:
    is_noisy = noisy != clean
    joint = np.bincount(
        clean.astype(np.int64) * num_classes + noisy, minlength=num_classes**2
    ).reshape(num_classes, num_classes)
    class_sizes = joint.sum(axis=1, keepdims=True)
    realised = np.where(
        class_sizes > 0, joint / np.maximum(class_sizes, 1), np.eye(num_classes)
    )
    rate = float(is_noisy.mean()) if clean.size else 0.0
    return NoisyLabels(
        labels=noisy.astype(np.int32),
        is_noisy=is_noisy,
        transition_matrix=realised.astype(np.float64),
        rate=rate,
    )

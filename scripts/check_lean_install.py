"""Checks the library-only install: `pip install tce_jax` without extras.

Run by .ci/run in a fresh virtual environment holding only the package and its
required dependencies. tce_jax.losses and tce_jax.noise must work with JAX,
NumPy and SciPy alone; the training harness's dependencies must be absent.
"""

import importlib
import math

import jax
import jax.numpy as jnp
import numpy as np

from tce_jax import losses, noise

HARNESS_ONLY = ("tensorflow", "tensorflow_datasets", "flax", "optax", "orbax", "clu")


def main() -> None:
    logits = jnp.array([[2.0, 0.0, -1.0], [2.0, 0.0, -1.0]])
    labels = jnp.array([0, 2])
    alpha = 0.1
    value = losses.tamed_cross_entropy(logits, labels, alpha=alpha)
    grad = jax.grad(lambda z: losses.tamed_cross_entropy(z, labels, alpha=alpha).sum())(
        logits
    )
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    p_y = probs[np.arange(2), labels]
    expected = -np.log(alpha + (1 - alpha) * p_y) / (1 - alpha)
    weight = p_y / (alpha + (1 - alpha) * p_y)
    expected_grad = weight[:, None] * (probs - np.eye(3)[labels])
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)

    noisy = noise.corrupt_labels(
        jax.random.key(0),
        np.arange(100) % 10,
        num_classes=10,
        rate=0.4,
        kind="symmetric",
    )
    assert math.isclose(noisy.rate, 0.4), noisy.rate

    for module in HARNESS_ONLY:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            continue
        raise SystemExit(
            f"lean install: {module} is importable, but must not be needed"
        )
    print(f"lean install OK: TCE {np.asarray(value)}, noise rate {noisy.rate}")


if __name__ == "__main__":
    main()

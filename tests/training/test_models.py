"""Tests for tce_jax.training.models: every family builds, runs and keeps its contracts.

Networks are run at a fraction of their width on 8x8 inputs so that the whole
file compiles each architecture once or twice and stays well under a minute on
two cores; parameter counts are checked at full width with ``jax.eval_shape``
(no compilation, no memory).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import absltest, parameterized

from tce_jax.training import models

# One network per block type: basic blocks with option-A shortcuts, pre-activation
# blocks, bottlenecks with projection shortcuts (ResNet-18/34 reuse these parts and
# are built by the parameter-count tests).
_FAMILIES = ("resnet8", "preact_resnet18", "resnet50")
_NUM_CLASSES = 7


def _param_count(name: str, image_shape=(32, 32, 3), width_multiplier=1) -> int:
    model = models.get(name, num_classes=10, width_multiplier=width_multiplier)
    variables = jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((1, *image_shape)), train=False)
    )
    return sum(leaf.size for leaf in jax.tree.leaves(variables["params"]))


def _run(name: str, *, dtype=jnp.float32, width_multiplier=0.25, channels=3):
    """Inits a narrow model on an 8x8 batch and runs one train and one eval pass."""
    model = models.get(
        name, num_classes=_NUM_CLASSES, width_multiplier=width_multiplier, dtype=dtype
    )
    images = jax.random.normal(jax.random.key(1), (4, 8, 8, channels))
    variables = model.init(jax.random.key(0), images[:1], train=False)

    @jax.jit
    def forward(variables, images):
        train_logits, updates = model.apply(
            variables, images, train=True, mutable=["batch_stats"]
        )
        eval_logits, eval_updates = model.apply(
            variables, images, train=False, mutable=["batch_stats"]
        )
        return train_logits, updates, eval_logits, eval_updates

    return variables, *forward(variables, images)


# Forward passes of every family: compiling the large ResNets takes most of it.
@pytest.mark.slow
class ModelFamiliesTest(parameterized.TestCase):
    @parameterized.parameters(*_FAMILIES)
    def test_train_and_eval_forward(self, name):
        variables, train_logits, updates, eval_logits, eval_updates = _run(name)
        self.assertEqual(train_logits.shape, (4, _NUM_CLASSES))
        self.assertEqual(eval_logits.shape, (4, _NUM_CLASSES))
        self.assertEqual(train_logits.dtype, jnp.float32)
        self.assertTrue(np.all(np.isfinite(train_logits)))
        self.assertTrue(np.all(np.isfinite(eval_logits)))
        # Train mode normalises with batch statistics, eval mode with the
        # running ones: the two outputs must differ.
        self.assertFalse(np.allclose(train_logits, eval_logits))

        old = jax.tree.leaves(variables["batch_stats"])
        new = jax.tree.leaves(updates["batch_stats"])
        changed = [not np.allclose(a, b) for a, b in zip(old, new, strict=True)]
        self.assertTrue(all(changed))
        # Eval mode must leave the running statistics untouched.
        eval_stats = jax.tree.leaves(eval_updates["batch_stats"])
        for a, b in zip(old, eval_stats, strict=True):
            np.testing.assert_array_equal(a, b)

    def test_bfloat16_runs_with_float32_params_pooling_and_head(self):
        variables, train_logits, _, eval_logits, _ = _run(
            "resnet8", dtype=jnp.bfloat16, channels=1
        )
        for leaf in jax.tree.leaves(variables):
            self.assertEqual(leaf.dtype, jnp.float32)
        self.assertEqual(train_logits.dtype, jnp.float32)
        self.assertTrue(np.all(np.isfinite(train_logits)))
        self.assertTrue(np.all(np.isfinite(eval_logits)))
        # A bfloat16 head would round the logits to 8 significant bits.
        for logits in (np.asarray(train_logits), np.asarray(eval_logits)):
            rounded = logits.astype(jnp.bfloat16).astype(np.float32)
            self.assertGreater(np.mean(logits != rounded), 0.5)
        # The head (the only dot_general; every family shares it) is float32.
        model = models.get(
            "resnet8",
            num_classes=_NUM_CLASSES,
            width_multiplier=0.25,
            dtype=jnp.bfloat16,
        )
        images = jnp.zeros((2, 8, 8, 1))
        jaxpr = jax.make_jaxpr(lambda v: model.apply(v, images, train=False))(
            variables
        ).jaxpr
        [head] = [e for e in jaxpr.eqns if e.primitive.name == "dot_general"]
        self.assertEqual(
            [v.aval.dtype for v in (*head.invars, *head.outvars)], [jnp.float32] * 3
        )


class ModelNamesTest(parameterized.TestCase):
    def test_names(self):
        self.assertEqual(
            set(models.names()),
            {
                "resnet8",
                "resnet20",
                "resnet32",
                "resnet44",
                "resnet56",
                "resnet110",
                "preact_resnet18",
                "resnet18",
                "resnet34",
                "resnet50",
            },
        )
        self.assertEqual(list(models.names()), sorted(models.names()))

    def test_unknown_name_lists_allowed(self):
        with pytest.raises(ValueError, match="resnet20") as error:
            models.get("resnet21", num_classes=10)
        self.assertIn("preact_resnet18", str(error.value))

    def test_bad_sizes_rejected(self):
        with pytest.raises(ValueError, match="num_classes"):
            models.get("resnet20", num_classes=0)
        with pytest.raises(ValueError, match="width_multiplier"):
            models.get("resnet20", num_classes=10, width_multiplier=0)


class ParameterCountTest(parameterized.TestCase):
    @parameterized.parameters(
        # Published sizes: He et al. (2016) table 6 and the CIFAR ResNet-18.
        ("resnet20", 0.26e6, 0.28e6),
        ("resnet56", 0.84e6, 0.86e6),
        ("resnet110", 1.7e6, 1.75e6),
        ("resnet18", 11.1e6, 11.25e6),
        ("preact_resnet18", 11.1e6, 11.25e6),
    )
    def test_parameter_count(self, name, low, high):
        self.assertBetween(_param_count(name), low, high)

    def test_count_depends_only_on_input_channels(self):
        self.assertEqual(
            _param_count("resnet20", (28, 28, 1)), _param_count("resnet20") - 2 * 144
        )

    def test_width_multiplier_scales_parameters(self):
        # Conv weights grow with the square of the width.
        ratio = _param_count("resnet20", width_multiplier=2) / _param_count("resnet20")
        self.assertBetween(ratio, 3.5, 4.0)


if __name__ == "__main__":
    absltest.main()

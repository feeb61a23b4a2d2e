"""tce_jax: the Tamed Cross Entropy loss and a label-noise training harness in JAX."""

__version__ = "0.1.0"

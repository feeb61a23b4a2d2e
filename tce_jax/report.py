"""``python3 -m tce_jax.report``, as the pre-registered plans that predate the
subpackages name it: runs ``tce_jax.analysis.report``, the report's home."""

from absl import app

from tce_jax.analysis.report import define_flags, main

if __name__ == "__main__":
    define_flags()
    app.run(main)

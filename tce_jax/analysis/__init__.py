"""Analysis of finished runs: reports, comparisons, label-error rankings.

It reads run folders through ``tce_jax.run_files`` alone, never through
training code, so a report needs neither TensorFlow nor the training loop.
"""

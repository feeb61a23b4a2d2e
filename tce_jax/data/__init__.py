"""The data path: datasets, their noisy splits and the batches a run trains on.

Above the library (``losses``, ``noise``, ``alpha_rules``, ``seeding``) and
the run folder (``run_files``); below the training harness, which it never
imports.
"""

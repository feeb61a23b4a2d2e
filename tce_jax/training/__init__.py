"""The training harness: a run config read once, the model, the train loop and
its records in the run folder.

Uses the library and the data path; sweeps and analysis stand above it.
"""

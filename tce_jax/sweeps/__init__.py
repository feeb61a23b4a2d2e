"""Sweeps: a grid of runs, the plan that lays out their run folders, and the
executors that launch ``launch.py`` for each (this machine, or SLURM).
"""

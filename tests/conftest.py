"""Test-session setup: four emulated CPU devices for the multi-device tests.

XLA reads the flag when the backend starts, so it must be set before anything
imports jax.
"""

import os

_FLAG = "--xla_force_host_platform_device_count=4"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()
# TensorFlow only feeds data here; keep it off the (emulated) accelerators and quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

"""benchmarks/accelerator_check.py --quick runs end to end and prints its table.

Run as a user runs it, in a subprocess on one CPU device (without the four
emulated devices of conftest.py, whose partitioned programs compile slower);
the figures are not checked, only that every part ran.
"""

import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_quick_check_prints_every_row_of_the_table():
    env = dict(os.environ)
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "").replace(
        "--xla_force_host_platform_device_count=4", ""
    )
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.accelerator_check", "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout
    table = output[output.index("| check |") :].splitlines()
    rows = [line.split(" | ") for line in table[2:] if line.startswith("| ")]
    checks = [row[0].removeprefix("| ") for row in rows]
    assert checks == ["step", "loss", "loss", "cifar10 2 epochs"]
    step = rows[0]
    assert (step[3], step[4]) == ("bfloat16", "tce")
    # Step and host images/s are numbers, and so is their ratio.
    assert re.fullmatch(r"[\d,]+", step[5]) and re.fullmatch(r"[\d,]+", step[6])
    assert re.fullmatch(r"[\d.]+x", step[7])
    assert re.search(r"wall \d+ s for 2 epochs", rows[-1][-1])

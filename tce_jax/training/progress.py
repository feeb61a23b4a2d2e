"""Progress during training: the log lines, and the stop at a non-finite loss."""

import dataclasses
import time

import numpy as np
from absl import logging


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the message names epoch and step."""


@dataclasses.dataclass
class StepProgress:
    """Progress lines during training: epoch, step, loss, images/s and ETA.

    Throughput is over the steps since the previous line; the ETA extrapolates
    the average time per step of this launch (evaluation included).
    """

    total_steps: int
    batch_size: int
    start_step: int
    start_time: float = dataclasses.field(default_factory=time.perf_counter)

    def __post_init__(self):
        self.last_step, self.last_time = self.start_step, self.start_time

    def restart_window(self) -> None:
        """Starts the next throughput window now (after an evaluation pass)."""
        self.last_time = time.perf_counter()

    def report(self, epoch: int, step: int, loss: float) -> None:
        now = time.perf_counter()
        images_per_second = (
            (step - self.last_step) * self.batch_size / max(now - self.last_time, 1e-9)
        )
        per_step = (now - self.start_time) / max(step - self.start_step, 1)
        eta = (self.total_steps - step) * per_step
        self.last_step, self.last_time = step, now
        logging.info(
            "epoch %d step %d/%d loss %.4f %.1f images/s ETA %s",
            epoch,
            step,
            self.total_steps,
            loss,
            images_per_second,
            time.strftime("%H:%M:%S", time.gmtime(eta)),
        )


def check_finite(values: np.ndarray, first_step: int, epoch: int) -> None:
    """Raises NonFiniteLossError naming the first step whose loss is not finite.

    ``values`` are the losses of consecutive steps from ``first_step`` on.
    """
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        step = first_step + int(bad[0])
        kept = (
            f"the checkpoint of epoch {epoch - 1} is kept"
            if epoch > 1
            else "no epoch had finished, so there is no checkpoint"
        )
        raise NonFiniteLossError(
            f"training loss is {values[bad[0]]} at epoch {epoch}, step {step}; "
            f"stopped without saving epoch {epoch} ({kept})"
        )

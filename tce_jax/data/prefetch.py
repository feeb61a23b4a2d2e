"""A background thread that keeps the next items of an iterator ready."""

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class _ProducerFailure:
    def __init__(self, error: Exception):
        self.error = error


_END = object()


def prefetch(batches: Iterable[T], buffer_size: int) -> Iterator[T]:
    """Runs the `batches` iterable in a thread, `buffer_size` items ahead.

    Numpy and the host-to-device copies release the GIL, so the next batches are
    built while the consumer's jitted step runs. Closing the returned generator
    stops the thread.
    """
    ready = queue.Queue(maxsize=buffer_size)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(_END)
        except Exception as error:
            # Handed to the consumer thread, which re-raises it.
            put(_ProducerFailure(error))

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, _ProducerFailure):
                raise item.error
            yield item
    finally:
        stop.set()

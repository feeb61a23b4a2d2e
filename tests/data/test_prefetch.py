"""The background prefetch thread: order kept, errors raised in the consumer,
and a consumer that stops early stops the thread."""

import threading
import time

import pytest

from tce_jax.data.prefetch import prefetch


def test_items_arrive_in_order_and_all_of_them():
    assert list(prefetch(iter(range(50)), buffer_size=3)) == list(range(50))
    assert list(prefetch([], buffer_size=1)) == []


def test_a_producer_error_is_raised_in_the_consumer_after_the_good_items():
    def batches():
        yield 1
        yield 2
        raise OSError("disk gone")

    received = []
    with pytest.raises(OSError, match="disk gone"):
        for item in prefetch(batches(), buffer_size=2):
            received.append(item)
    assert received == [1, 2]


def test_closing_the_consumer_stops_the_producer_thread():
    produced = []

    def endless():
        while True:
            produced.append(len(produced))
            yield produced[-1]

    before = threading.active_count()
    iterator = prefetch(endless(), buffer_size=2)
    assert next(iterator) == 0
    iterator.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == before
    count = len(produced)
    time.sleep(0.3)
    assert len(produced) == count  # Nothing more is built once it stopped.

"""tfds loading: a dataset that is not there says how to get it; one is
prepared once per data dir, however many processes ask at once."""

import threading
import time

import pytest
import tensorflow_datasets as tfds

from tce_jax.data import fashion_mnist_debian, tfds_data


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist_debian, "DEBIAN_DIR", str(tmp_path / "none"))

    def offline(self, *args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    with pytest.raises(RuntimeError) as error:
        tfds_data.prepare("fashion_mnist", str(tmp_path / "tfds"))
    message = str(error.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "python3 -m tce_jax.data.prepare_data --dataset=fashion_mnist" in message
    assert "no route to host" in message


class _FakeDownload:
    """tfds' download_and_prepare, slow enough for others to queue behind it:
    the first call builds a marker (or fails offline), later ones reuse it."""

    def __init__(self, marker, *, offline=False):
        self.marker, self.offline, self.builds = marker, offline, 0

    def install(self, monkeypatch):
        monkeypatch.setattr(
            tfds.core.DatasetBuilder,
            "download_and_prepare",
            lambda builder, *args, **kwargs: self.download(),
        )

    def download(self):
        if self.marker.exists():
            return  # tfds: "Reusing dataset".
        self.builds += 1
        time.sleep(0.5)
        if self.offline:
            raise ConnectionError("no route to host")
        self.marker.write_text("prepared")


def _prepare_in_threads(tmp_path, count):
    """`tfds_data.prepare("mnist", tmp_path)` in `count` threads at once: the
    error or None of each."""
    outcomes = [None] * count

    def prepare(i):
        try:
            tfds_data.prepare("mnist", str(tmp_path))
        except RuntimeError as error:
            outcomes[i] = str(error)

    threads = [threading.Thread(target=prepare, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_concurrent_preparations_build_once_and_reuse_it(tmp_path, monkeypatch):
    download = _FakeDownload(tmp_path / "mnist_marker")
    download.install(monkeypatch)
    assert _prepare_in_threads(tmp_path, 3) == [None] * 3
    assert download.builds == 1


def test_those_that_waited_for_a_failed_preparation_fail_at_once(tmp_path, monkeypatch):
    download = _FakeDownload(tmp_path / "mnist_marker", offline=True)
    download.install(monkeypatch)
    outcomes = _prepare_in_threads(tmp_path, 3)
    assert download.builds == 1, "a waiting process tried again"
    assert len(set(outcomes)) == 1 and "no route to host" in outcomes[0]
    assert "python3 -m tce_jax.data.prepare_data --dataset=mnist" in outcomes[0]
    # A later attempt, which waited for nobody, tries again.
    assert _prepare_in_threads(tmp_path, 1) == outcomes[:1]
    assert download.builds == 2


@pytest.mark.slow
def test_a_preparer_that_dies_leaves_the_lock_to_the_next(
    tmp_path, monkeypatch, lock_holder
):
    download = _FakeDownload(tmp_path / "mnist_marker")
    download.install(monkeypatch)
    holder = lock_holder(tmp_path / ".mnist.prepare.lock")
    waiter = threading.Thread(target=_prepare_in_threads, args=(tmp_path, 1))
    waiter.start()
    time.sleep(0.5)
    assert download.builds == 0, "prepared while the lock was held"
    holder.kill()  # Killed mid-preparation: it recorded no failure.
    waiter.join(timeout=30)
    assert not waiter.is_alive() and download.builds == 1

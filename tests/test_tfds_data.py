"""tfds loading: a dataset that is not there says how to get it."""

import pytest
import tensorflow_datasets as tfds

from tce_jax import fashion_mnist_debian, tfds_data


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist_debian, "DEBIAN_DIR", str(tmp_path / "none"))

    def offline(self, *args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    with pytest.raises(RuntimeError) as error:
        tfds_data.prepare("fashion_mnist", str(tmp_path / "tfds"))
    message = str(error.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "python3 -m tce_jax.prepare_data --dataset=fashion_mnist" in message
    assert "no route to host" in message

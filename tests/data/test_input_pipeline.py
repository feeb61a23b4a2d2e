"""Tests for tce_jax.data.input_pipeline on tfds mock data and a Fashion-MNIST slice.

The emulated mesh has the four CPU devices that tests/conftest.py asks for;
multi-process runs are emulated through `local_*_batches(rows=...)` with the
rows `process_rows` gives each process of a mesh, which is what `train_batches`
and `eval_batches` do with the real process index. Meshes of multi-host TPU
pods are laid out by `jax.make_mesh` itself on mock TPU devices. The on-device
half (crop, flip, normalisation) is tested in test_preprocessing.py.
"""

import dataclasses
import os

import jax
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds
from jax.sharding import NamedSharding, PartitionSpec

from tce_jax import noise, seeding
from tce_jax.data import input_pipeline, preprocessing

NUM_MOCK_EXAMPLES = 45
BATCH = 8


def _config(dataset="cifar10", **overrides):
    """A run config's data part; overrides like {"noise.rate": 0.2, "seed": 1}."""
    fields = {
        "seed": 3,
        "data": {
            "dataset": dataset,
            "data_dir": None,
            "train_subset": 0,
            "validation_fraction": 0.2,
            "validation_examples": 0,
            "holdout_folds": 0,
            "holdout_fold": 0,
            "augment": True,
        },
        "noise": {"kind": "symmetric", "rate": 0.4, "transition_matrix": None},
    }
    for path, value in overrides.items():
        *sections, name = path.split(".")
        node = fields
        for section in sections:
            node = node[section]
        node[name] = value
    return ml_collections.ConfigDict(fields)


def _mesh(num_devices=4):
    return jax.make_mesh((num_devices,), ("data",), devices=jax.devices()[:num_devices])


def _mock_datasets(config, workdir=None, mesh=None):
    with tfds.testing.mock_data(num_examples=NUM_MOCK_EXAMPLES):
        return input_pipeline.create_datasets(
            config, mesh=mesh or _mesh(), workdir=workdir
        )


def _as_numpy(batches):
    return [{name: np.asarray(value) for name, value in b.items()} for b in batches]


@pytest.fixture(scope="module", params=sorted(input_pipeline.DATASETS))
def mock(request, tmp_path_factory):
    """(datasets, workdir) for every dataset on mock data, built once per module."""
    workdir = str(tmp_path_factory.mktemp(request.param))
    return _mock_datasets(_config(request.param), workdir=workdir), workdir


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("cifar_again"))
    return _mock_datasets(_config("cifar10"), workdir=workdir)


# ------------------------------------------------------------------ every dataset


def test_split_sizes_and_noise(mock):
    datasets, _ = mock
    num_val = round(0.2 * NUM_MOCK_EXAMPLES)
    assert (datasets.num_train, datasets.num_val) == (
        NUM_MOCK_EXAMPLES - num_val,
        num_val,
    )
    assert datasets.num_test == NUM_MOCK_EXAMPLES
    assert datasets.noise.is_noisy.sum() == round(0.4 * NUM_MOCK_EXAMPLES)
    np.testing.assert_array_equal(
        np.sort(np.concatenate([datasets.train_index, datasets.val_index])),
        np.arange(NUM_MOCK_EXAMPLES),
    )
    assert datasets.realised_noise_rate == pytest.approx(
        datasets.noise.is_noisy[datasets.train_index].mean()
    )


def test_train_batches_shapes_dtypes_sharding_and_label_join(mock):
    datasets, _ = mock
    info = datasets.info
    batches = list(datasets.train_batches(0, BATCH))
    assert len(batches) == datasets.steps_per_epoch(BATCH) == datasets.num_train // 8
    expected = {
        "image": ((BATCH, *info.image_shape), np.uint8),
        "label": ((BATCH,), np.int32),
        "clean_label": ((BATCH,), np.int32),
        "index": ((BATCH,), np.int32),
    }
    for batch in batches:
        assert {k: (v.shape, v.dtype) for k, v in batch.items()} == expected
        for value in batch.values():
            assert value.sharding.spec == PartitionSpec("data")
            assert len(value.sharding.device_set) == 4
    seen = np.concatenate([np.asarray(b["index"]) for b in batches])
    assert len(set(seen.tolist())) == seen.size
    assert set(seen.tolist()) <= set(datasets.train_index.tolist())
    for batch in _as_numpy(batches):
        np.testing.assert_array_equal(
            batch["label"], datasets.noise.labels[batch["index"]]
        )
        np.testing.assert_array_equal(
            batch["clean_label"], datasets.clean_labels[batch["index"]]
        )
        assert np.all((batch["label"] >= 0) & (batch["label"] < info.num_classes))


@pytest.mark.parametrize("split", ("train", "val", "test"))
def test_eval_batches_pad_and_mask_so_each_example_counts_once(mock, split):
    datasets, _ = mock
    expected = {
        "train": datasets.train_index,
        "val": datasets.val_index,
        "test": np.arange(datasets.num_test),
    }[split]
    batches = _as_numpy(datasets.eval_batches(split, BATCH))
    assert len(batches) == -(-expected.size // BATCH)
    masks = np.concatenate([b["mask"] for b in batches])
    indices = np.concatenate([b["index"] for b in batches])
    np.testing.assert_array_equal(indices[masks], expected)
    assert np.all(indices[~masks] == input_pipeline.PADDING_INDEX)
    assert masks.sum() == expected.size and masks.size % BATCH == 0
    last = batches[-1]
    assert np.all(last["image"][~last["mask"]] == 0.0)
    labels = np.concatenate([b["label"] for b in batches])[masks]
    clean = np.concatenate([b["clean_label"] for b in batches])[masks]
    is_noisy = np.concatenate([b["is_noisy"] for b in batches])[masks]
    if split == "test":  # Test is always clean.
        np.testing.assert_array_equal(labels, clean)
        assert not is_noisy.any()
    else:
        np.testing.assert_array_equal(labels, datasets.noise.labels[expected])
        np.testing.assert_array_equal(clean, datasets.clean_labels[expected])
        np.testing.assert_array_equal(is_noisy, labels != clean)


def _contiguous_rows(batch_size, process_index, process_count):
    """The rows of one of `process_count` processes that each hold a block."""
    return np.split(np.arange(batch_size), process_count)[process_index]


@pytest.mark.parametrize("process_count", [1, 2, 4])
def test_processes_build_their_rows_and_cover_each_example_once(mock, process_count):
    datasets, _ = mock
    reference = list(datasets.local_train_batches(1, BATCH, rows=np.arange(BATCH)))
    per_process = [
        list(
            datasets.local_train_batches(
                1, BATCH, rows=_contiguous_rows(BATCH, p, process_count)
            )
        )
        for p in range(process_count)
    ]
    for step, full in enumerate(reference):
        for name in full:
            joined = np.concatenate([rows[step][name] for rows in per_process])
            np.testing.assert_array_equal(joined, full[name])
    trained = np.concatenate([batch["index"] for rows in per_process for batch in rows])
    assert trained.size == len(set(trained.tolist())) == len(reference) * BATCH

    evaluated = np.concatenate(
        [
            batch["index"][batch["mask"]]
            for p in range(process_count)
            for batch in datasets.local_eval_batches(
                "test", BATCH, rows=_contiguous_rows(BATCH, p, process_count)
            )
        ]
    )
    np.testing.assert_array_equal(np.sort(evaluated), np.arange(datasets.num_test))


# ------------------------------------------------------------- multi-host TPU pods


@dataclasses.dataclass(frozen=True)
class MockTpuDevice:
    """What jax.make_mesh reads of a TPU device to lay out the chip torus."""

    id: int
    process_index: int
    coords: tuple[int, int, int]
    device_kind: str
    core_on_chip: int = 0
    slice_index: int = 0
    platform: str = "tpu"


CHIPS_PER_HOST = 4


def _mock_tpu_pod(device_kind, topology):
    """One slice of `topology` chips (x, y, z), 2x2x1 chips per host, as jax.devices().

    Hosts tile the torus x fastest, then y, then z; devices are numbered host by
    host, each host's chips x fastest (jax.devices() is process-major).
    """
    size_x, size_y, size_z = topology
    hosts = [
        (x, y, z)
        for z in range(size_z)
        for y in range(0, size_y, 2)
        for x in range(0, size_x, 2)
    ]
    return [
        MockTpuDevice(
            id=CHIPS_PER_HOST * host + chip,
            process_index=host,
            coords=(x + chip % 2, y + chip // 2, z),
            device_kind=device_kind,
        )
        for host, (x, y, z) in enumerate(hosts)
        for chip in range(CHIPS_PER_HOST)
    ]


# (device kind, chip topology, mesh axes, whether jax.make_mesh interleaves the
# hosts along "data"). Only interleaved layouts broke a block of contiguous rows
# per process; the others check that the general rule keeps them right.
TPU_POD_MESHES = [
    ("TPU v4", (2, 2, 4), {"data": 16}, True),
    ("TPU v4", (2, 4, 4), {"data": 32}, True),
    ("TPU v4", (4, 4, 4), {"data": 64}, True),
    ("TPU v5p", (2, 2, 4), {"data": 16}, True),
    ("TPU v5p", (4, 4, 4), {"data": 64}, True),
    ("TPU v5 lite", (4, 4, 1), {"data": 16}, True),
    ("TPU v5 lite", (4, 8, 1), {"data": 32}, True),
    ("TPU v6 lite", (4, 4, 1), {"data": 16}, True),
    ("TPU v6 lite", (4, 8, 1), {"data": 32}, True),
    # Batches replicated over a second axis: processes share rows.
    ("TPU v4", (2, 2, 4), {"data": 8, "model": 2}, True),
    ("TPU v5p", (4, 4, 4), {"data": 16, "model": 4}, True),
    ("TPU v6 lite", (4, 4, 1), {"data": 4, "model": 4}, False),
]


def _random_cifar_datasets(mesh):
    """cifar10-shaped random data with enough examples for a 64-chip batch."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 200).astype(np.int32)
    return input_pipeline.build_datasets(
        _config("cifar10"),
        mesh=mesh,
        train_images=images,
        train_labels=labels,
        test_images=images[:70],
        test_labels=labels[:70],
    )


@pytest.fixture(scope="module")
def pod_datasets():
    return _random_cifar_datasets(_mesh())


@pytest.mark.parametrize(
    ("device_kind", "topology", "axes", "interleaved"), TPU_POD_MESHES
)
def test_each_process_feeds_the_rows_its_devices_hold_on_tpu_pods(
    pod_datasets, device_kind, topology, axes, interleaved
):
    devices = _mock_tpu_pod(device_kind, topology)
    mesh = jax.make_mesh(tuple(axes.values()), tuple(axes), devices=devices)
    num_processes = len(devices) // CHIPS_PER_HOST
    batch_size = 2 * axes["data"]
    rows = [
        input_pipeline.process_rows(mesh, batch_size, p) for p in range(num_processes)
    ]
    assert interleaved == any(np.any(np.diff(process) != 1) for process in rows)

    # A process feeds exactly the rows its devices hold, in increasing order,
    # which is how jax.make_array_from_process_local_data reads them.
    device_rows = NamedSharding(mesh, PartitionSpec("data")).devices_indices_map(
        (batch_size,)
    )
    for p, process in enumerate(rows):
        held = {
            row
            for device, (index,) in device_rows.items()
            if device.process_index == p
            for row in range(batch_size)[index]
        }
        np.testing.assert_array_equal(process, sorted(held))

    # Every device gets its rows of the global batch.
    global_batch = next(
        pod_datasets.local_train_batches(0, batch_size, rows=np.arange(batch_size))
    )
    local_batches = [
        next(pod_datasets.local_train_batches(0, batch_size, rows=process))
        for process in rows
    ]
    for device, (index,) in device_rows.items():
        process = rows[device.process_index]
        local = local_batches[device.process_index]
        in_local = np.searchsorted(process, range(batch_size)[index])
        for name, values in global_batch.items():
            np.testing.assert_array_equal(local[name][in_local], values[index])

    # Evaluation covers each test example once over the processes' distinct rows.
    distinct = {tuple(process) for process in rows}
    evaluated = np.concatenate(
        [
            batch["index"][batch["mask"]]
            for process in distinct
            for batch in pod_datasets.local_eval_batches(
                "test", batch_size, rows=np.asarray(process)
            )
        ]
    )
    np.testing.assert_array_equal(np.sort(evaluated), np.arange(pod_datasets.num_test))


def test_batches_are_normalised_as_the_platform_of_the_mesh_needs(pod_datasets):
    # The table lookup on CPU (bit-exact with the committed results), a
    # multiply-add on accelerators (see test_preprocessing.py).
    assert pod_datasets.preprocessing.platform == "cpu"
    pod = jax.make_mesh((16,), ("data",), devices=_mock_tpu_pod("TPU v4", (2, 2, 4)))
    assert _random_cifar_datasets(pod).preprocessing.platform == "tpu"


def test_process_rows_rejects_a_process_without_devices_and_a_ragged_batch():
    mesh = jax.make_mesh((16,), ("data",), devices=_mock_tpu_pod("TPU v4", (2, 2, 4)))
    with pytest.raises(ValueError, match="process 4 has no device in the mesh"):
        input_pipeline.process_rows(mesh, 32, 4)
    with pytest.raises(ValueError, match="multiple of the 16 positions"):
        input_pipeline.process_rows(mesh, 40, 0)


def test_labels_saved_in_workdir(mock):
    datasets, workdir = mock
    saved = np.load(os.path.join(workdir, "labels.npz"))
    np.testing.assert_array_equal(saved["noisy_labels"], datasets.noise.labels)
    np.testing.assert_array_equal(saved["clean_labels"], datasets.clean_labels)
    np.testing.assert_array_equal(saved["is_noisy"], datasets.noise.is_noisy)
    np.testing.assert_array_equal(saved["train_index"], datasets.train_index)
    np.testing.assert_array_equal(saved["val_index"], datasets.val_index)
    np.testing.assert_array_equal(saved["source_index"], datasets.source_index)
    np.testing.assert_array_equal(
        saved["transition_matrix"], datasets.noise.transition_matrix
    )
    assert float(saved["rate"]) == datasets.noise.rate


# ------------------------------------------------------------ determinism, resume


def test_rebuilt_pipeline_gives_identical_data_so_resume_is_exact(cifar):
    # An independent build of the same config, as a resumed run would make.
    rebuilt = _mock_datasets(_config("cifar10"))
    np.testing.assert_array_equal(rebuilt.noise.labels, cifar.noise.labels)
    resumed = _as_numpy(rebuilt.train_batches(2, BATCH))
    uninterrupted = _as_numpy(cifar.train_batches(2, BATCH))
    for got, want in zip(resumed, uninterrupted, strict=True):
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])
    other_epoch = _as_numpy(cifar.train_batches(3, BATCH))
    assert not np.array_equal(other_epoch[0]["index"], uninterrupted[0]["index"])


def test_order_does_not_depend_on_batch_size(cifar):
    small = list(cifar.local_train_batches(0, 4, rows=np.arange(4)))
    large = list(cifar.local_train_batches(0, 8, rows=np.arange(8)))
    small_indices = np.concatenate([b["index"] for b in small])
    large_indices = np.concatenate([b["index"] for b in large])
    common = min(small_indices.size, large_indices.size)
    np.testing.assert_array_equal(small_indices[:common], large_indices[:common])
    small_images = np.concatenate([b["image"] for b in small])
    large_images = np.concatenate([b["image"] for b in large])
    np.testing.assert_array_equal(small_images[:common], large_images[:common])


def test_seed_changes_noise_and_order():
    base = _mock_datasets(_config("mnist"))
    other = _mock_datasets(_config("mnist", seed=4))
    assert not np.array_equal(base.noise.labels, other.noise.labels)
    assert not np.array_equal(base.train_order(0), other.train_order(0))


def test_single_device_mesh(cifar):
    datasets = _mock_datasets(_config("cifar10"), mesh=_mesh(1))
    batch = next(iter(datasets.train_batches(0, 6)))
    assert batch["image"].shape == (6, 32, 32, 3)
    assert len(batch["image"].sharding.device_set) == 1
    np.testing.assert_array_equal(np.asarray(batch["index"]), cifar.train_order(0)[:6])


@pytest.mark.parametrize("kind", ["symmetric", "instance"])
def test_same_labels_splits_and_batches_on_one_and_four_devices(kind):
    config = _config("cifar10", **{"noise.kind": kind})
    one, four = (_mock_datasets(config, mesh=_mesh(n)) for n in (1, 4))
    for name in ("clean_labels", "source_index", "train_index", "val_index"):
        np.testing.assert_array_equal(getattr(one, name), getattr(four, name))
    np.testing.assert_array_equal(one.noise.labels, four.noise.labels)
    np.testing.assert_array_equal(one.noise.is_noisy, four.noise.is_noisy)
    assert one.noise.is_noisy.any()
    for got, want in zip(
        one.train_batches(1, BATCH), four.train_batches(1, BATCH), strict=True
    ):
        for key in want:
            np.testing.assert_array_equal(np.asarray(got[key]), np.asarray(want[key]))


def test_train_subset_and_asymmetric_noise():
    config = _config(
        "cifar10",
        **{"data.train_subset": 30, "noise.kind": "asymmetric_cifar10"},
    )
    datasets = _mock_datasets(config)
    assert datasets.num_train + datasets.num_val == 30
    assert datasets.source_index.size == 30
    assert np.all(np.diff(datasets.source_index) > 0)
    assert np.all(datasets.source_index < NUM_MOCK_EXAMPLES)
    flipped = datasets.noise.is_noisy
    for source, target in noise.ASYMMETRIC_CIFAR10_MAP.items():
        moved = flipped & (datasets.clean_labels == source)
        np.testing.assert_array_equal(datasets.noise.labels[moved], target)


def test_instance_noise_projects_the_subset_images_as_the_model_sees_them():
    config = _config("cifar10", **{"data.train_subset": 30, "noise.kind": "instance"})
    datasets = _mock_datasets(config)
    with tfds.testing.mock_data(num_examples=NUM_MOCK_EXAMPLES):
        info = input_pipeline.DATASETS["cifar10"]
        images, _ = input_pipeline.load_split(info, "train")
    expected = noise.corrupt_labels(
        seeding.purpose_key(config.seed, "noise"),
        datasets.clean_labels,
        num_classes=10,
        rate=0.4,
        kind="instance",
        images=preprocessing.normalise_on_host(
            images[datasets.source_index], mean=info.mean, std=info.std
        ),
    )
    np.testing.assert_array_equal(datasets.noise.labels, expected.labels)
    assert datasets.noise.rate > 0


def test_validation_examples_replace_the_fraction():
    by_fraction = _mock_datasets(_config("cifar10", **{"data.train_subset": 30}))
    config = _config(
        "cifar10", **{"data.train_subset": 30, "data.validation_examples": 17}
    )
    datasets = _mock_datasets(config)
    assert (datasets.num_train, datasets.num_val) == (13, 17)
    assert (by_fraction.num_train, by_fraction.num_val) == (24, 6)
    # The same subset and noisy labels: only the split between train and val moves.
    np.testing.assert_array_equal(datasets.source_index, by_fraction.source_index)
    np.testing.assert_array_equal(datasets.noise.labels, by_fraction.noise.labels)
    assert not set(datasets.train_index) & set(datasets.val_index)


def test_cross_fitting_folds_partition_the_training_examples():
    whole = _mock_datasets(_config("cifar10"))
    heldout = []
    for fold in range(3):
        config = _config(
            "cifar10", **{"data.holdout_folds": 3, "data.holdout_fold": fold}
        )
        datasets = _mock_datasets(config)
        # Same subset, noisy labels and validation split as without folds.
        np.testing.assert_array_equal(datasets.noise.labels, whole.noise.labels)
        np.testing.assert_array_equal(datasets.val_index, whole.val_index)
        np.testing.assert_array_equal(
            np.union1d(datasets.train_index, datasets.heldout_index), whole.train_index
        )
        assert not np.intersect1d(datasets.train_index, datasets.heldout_index).size
        assert datasets.num_heldout == 12  # 36 training examples / 3.
        batches = _as_numpy(datasets.eval_batches("heldout", BATCH))
        indices = np.concatenate([b["index"][b["mask"]] for b in batches])
        np.testing.assert_array_equal(indices, datasets.heldout_index)
        heldout.append(datasets.heldout_index)
    np.testing.assert_array_equal(np.sort(np.concatenate(heldout)), whole.train_index)
    assert whole.num_heldout == 0


# ---------------------------------------------------------------------- bad input


def test_bad_runtime_arguments(cifar):
    with pytest.raises(ValueError, match="multiple of the 4 devices"):
        cifar.train_batches(0, 6)
    with pytest.raises(ValueError, match="split must be one of"):
        cifar.eval_batches("validation", 8)
    with pytest.raises(ValueError, match="epoch must be an int >= 0"):
        cifar.train_batches(-1, 8)
    with pytest.raises(ValueError, match="exceeds the 36 training examples"):
        cifar.train_batches(0, 40)
    with pytest.raises(ValueError, match=r"train_subset: got 50; allowed: at most the"):
        _mock_datasets(_config(**{"data.train_subset": 50}))
    with pytest.raises(ValueError, match="axis named 'data'"):
        _mock_datasets(_config(), mesh=jax.make_mesh((1,), ("batch",)))


# ------------------------------------------------------------ real Fashion-MNIST


def test_real_fashion_mnist_slice_through_the_pipeline(fashion_mnist_arrays):
    train_images, train_labels = fashion_mnist_arrays["train"]
    test_images, test_labels = fashion_mnist_arrays["test"]
    config = _config("fashion_mnist", **{"data.train_subset": 2000})
    datasets = input_pipeline.build_datasets(
        config,
        mesh=_mesh(),
        train_images=train_images[:5000],
        train_labels=train_labels[:5000],
        test_images=test_images[:512],
        test_labels=test_labels[:512],
    )
    assert datasets.noise.is_noisy.sum() == round(0.4 * 2000)
    # The device's normalisation gives the test images mean 0 and variance 1.
    images = np.concatenate(
        [
            np.asarray(jax.jit(datasets.preprocessing.eval_images)(b["image"]))
            for b in datasets.eval_batches("test", 128)
        ]
    )
    assert abs(images.mean()) < 0.05 and abs(images.std() - 1.0) < 0.05
    batch = next(iter(datasets.train_batches(0, 128)))
    np.testing.assert_array_equal(
        np.asarray(batch["clean_label"]),
        train_labels[datasets.source_index[np.asarray(batch["index"])]],
    )

"""Tests of the training loop: steps, sharding, schedules, resume, checkpoints, NaN.

The end-to-end runs use the real input pipeline on a small synthetic
Fashion-MNIST-shaped dataset (``tiny_run.fake_load_split`` replaces the tfds
loading) and a tiny ResNet-8, on the 4 emulated CPU devices of conftest.py.
"""

import collections
import contextlib
import json
import os
import pathlib
import re
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tiny_run import (
    NUM_FAKE_TEST,
    NUM_FAKE_TRAIN,
    comparable_summary,
    read_history,
    tiny_config,
    without_timing,
)

from tce_jax import alpha_rules, losses, run_environment
from tce_jax.data import input_pipeline, preprocessing
from tce_jax.training import (
    config_validation,
    evaluation,
    loop,
    models,
    optim,
    progress,
    steps,
)

# Crop and flip on, as for CIFAR: the steps below run the whole augmentation.
PREPROCESSING = preprocessing.Preprocessing(
    mean=(0.5,) * 3, std=(0.25,) * 3, crop_padding=2, random_flip=True, seed=0
)
# The monitoring event JAX records for every XLA compilation (also when the
# executable comes from the persistent cache); its fun_name names the function.
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


# The fake data, the compilation cache and the reference run: conftest.py.
pytestmark = pytest.mark.usefixtures("compilation_cache", "fake_data")


# ----------------------------------------------------------------------------
# Outputs of a run.


@pytest.mark.slow
def test_run_writes_the_documented_outputs(reference_run):
    workdir, summary = reference_run
    history = read_history(workdir)
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert list(history[0]) == [
        "epoch",
        "step",
        "learning_rate",
        "train_loss",
        "train_accuracy",
        "train_clean_accuracy",
        "memorized_fraction",
        "contradicted_fraction",
        "val_accuracy",
        "test_accuracy",
        "images_per_second",
        "elapsed_seconds",
    ]
    steps_per_epoch = (NUM_FAKE_TRAIN - 80) // 32
    assert [r["step"] for r in history] == [steps_per_epoch * e for e in (1, 2, 3)]
    for record in history:
        assert np.isfinite(record["train_loss"])
        for key in ("train_accuracy", "train_clean_accuracy", "val_accuracy"):
            assert 0.0 <= record[key] <= 1.0

    on_disk = json.loads(pathlib.Path(workdir, "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert summary["final_test_accuracy"] == history[-1]["test_accuracy"]
    best = max(history, key=lambda r: r["val_accuracy"])
    assert summary["best_val_epoch"] == best["epoch"]
    assert summary["best_val_test_accuracy"] == best["test_accuracy"]
    assert summary["memorized_fraction"] == history[-1]["memorized_fraction"]
    assert summary["config"]["loss"]["name"] == "tce"
    assert summary["num_epochs"] == 3
    assert 0.3 < summary["realised_noise_rate"] < 0.5
    commit = summary["git_commit"]
    assert commit is None or len(commit.removesuffix("-dirty")) == 40
    # Where it ran: this process, on the 4 devices of its mesh; also in the
    # TensorBoard hparams.
    assert summary["environment"] == run_environment.collect()
    assert summary["platform"] == "cpu (4 x cpu)"
    # The config the run trained with, recorded when it started (relaunch).
    recorded = json.loads(pathlib.Path(workdir, "effective_config.json").read_text())
    assert recorded == on_disk["effective_config"]
    events = b"".join(p.read_bytes() for p in pathlib.Path(workdir).glob("*tfevents*"))
    assert b"environment.machine_signature" in events
    assert summary["environment"]["machine_signature"].encode() in events

    predictions = np.load(pathlib.Path(workdir, "train_predictions.npz"))
    labels = np.load(pathlib.Path(workdir, "labels.npz"))
    np.testing.assert_array_equal(predictions["index"], labels["train_index"])
    np.testing.assert_array_equal(
        predictions["label"], labels["noisy_labels"][labels["train_index"]]
    )
    np.testing.assert_array_equal(
        predictions["is_noisy"], labels["is_noisy"][labels["train_index"]]
    )
    np.testing.assert_allclose(
        predictions["prob_label"], np.exp(predictions["log_prob_label"]), rtol=1e-6
    )
    assert list(pathlib.Path(workdir).glob("events.out.tfevents.*"))

    # Full probabilities after the last epoch and at the selected epoch, each
    # consistent with that epoch's metrics.
    selected = history[summary["best_val_epoch"] - 1]
    for name, record in (
        ("train_predictions.npz", history[-1]),
        ("train_predictions_best_val.npz", selected),
    ):
        saved = np.load(pathlib.Path(workdir, name))
        np.testing.assert_array_equal(saved["index"], labels["train_index"])
        np.testing.assert_allclose(saved["probs"].sum(axis=1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(
            np.take_along_axis(saved["probs"], saved["label"][:, None], axis=1)[:, 0],
            saved["prob_label"],
            rtol=1e-5,
        )
        predicted = saved["probs"].argmax(axis=1)
        assert np.mean(predicted == saved["clean_label"]) == pytest.approx(
            record["train_clean_accuracy"]
        ), name
    assert not list(pathlib.Path(workdir).glob("heldout_*"))


@contextlib.contextmanager
def count_compilations():
    """Counts XLA compilations by function name (e.g. "jit(_train_step)")."""
    counts = collections.Counter()

    def listener(event, duration, *, fun_name=None, **kwargs):
        del duration, kwargs
        if event == BACKEND_COMPILE_EVENT:
            counts[fun_name] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield counts
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@pytest.mark.slow
def test_eval_every_epochs_skips_evaluation_but_not_training(reference_run, tmp_path):
    workdir, reference_summary = reference_run
    with count_compilations() as compilations:
        summary = loop.train_and_evaluate(
            tiny_config(eval_every_epochs=2), str(tmp_path)
        )
    # Three epochs (each passing its own epoch number) run one program.
    assert compilations["jit(_train_step)"] == 1
    assert compilations["jit(_eval_step)"] == 1
    history, reference = read_history(tmp_path), read_history(workdir)
    accuracy_keys = evaluation.ACCURACY_KEYS
    # Epoch 1 is not evaluated; epoch 2 is (every 2nd) and so is the last one.
    assert all(history[0][key] is None for key in accuracy_keys)
    for epoch in (2, 3):
        for key in accuracy_keys:
            assert history[epoch - 1][key] == reference[epoch - 1][key], (epoch, key)
    # Training itself is unchanged: same losses every epoch.
    assert [r["train_loss"] for r in history] == [r["train_loss"] for r in reference]
    best = max(history[1:], key=lambda r: r["val_accuracy"])
    assert summary["best_val_epoch"] == best["epoch"]
    assert summary["best_test_accuracy"] == max(r["test_accuracy"] for r in history[1:])
    assert summary["final_test_accuracy"] == reference_summary["final_test_accuracy"]


@pytest.mark.slow
def test_losses_and_eval_outputs_reach_the_host_in_one_copy_per_window_and_split(
    tmp_path, monkeypatch
):
    copies = []
    to_host = evaluation.to_host

    def recording_to_host(tree):
        copies.append(jax.tree.map(lambda x: (x.shape, x.dtype), tree))
        return to_host(tree)

    monkeypatch.setattr(evaluation, "to_host", recording_to_host)
    config = tiny_config(num_epochs=2)
    loop.train_and_evaluate(config, str(tmp_path))
    loss_copies = [copy for copy in copies if not isinstance(copy, dict)]
    eval_copies = [copy for copy in copies if isinstance(copy, dict)]
    # 10 steps per epoch, a progress line every 4 steps and at the end of an
    # epoch: steps 4, 8, 10, 12, 16 and 20, one array each, every window
    # padded to 4 so that one program joins them.
    assert config.log_every_steps == 4
    assert loss_copies == [((4,), np.float32)] * 6
    # Each evaluated split comes back as one array per output, all its padded
    # batches together: train 320 examples, val 80, test 150, in batches of 64.
    lengths = set()
    for copy in eval_copies:
        (length,) = {shape[0] for shape, _ in copy.values()}
        lengths.add(length)
    assert lengths == {5 * 64, 2 * 64, 3 * 64}


@pytest.mark.slow
def test_test_set_is_skipped_except_where_a_reported_number_needs_it(
    reference_run, tmp_path
):
    """test_eval_every_epochs=0: test only at new best noisy-val epochs and the
    last, and every reported test number equals the every-epoch run's."""
    workdir, reference_summary = reference_run
    summary = loop.train_and_evaluate(
        tiny_config(test_eval_every_epochs=0), str(tmp_path)
    )
    history, reference = read_history(tmp_path), read_history(workdir)
    best_so_far = -1.0
    for record, ref in zip(history, reference, strict=True):
        improves = record["val_accuracy"] > best_so_far
        best_so_far = max(best_so_far, record["val_accuracy"])
        last = record["epoch"] == len(history)
        expected = ref["test_accuracy"] if improves or last else None
        assert record["test_accuracy"] == expected, record["epoch"]
        for key in ("train_loss", "train_clean_accuracy", "val_accuracy"):
            assert record[key] == ref[key], (record["epoch"], key)
    for key in ("final_test_accuracy", "best_val_epoch", "best_val_test_accuracy"):
        assert summary[key] == reference_summary[key], key
    with pytest.raises(config_validation.ConfigError, match="test_eval_every_epochs"):
        loop.train_and_evaluate(
            tiny_config(test_eval_every_epochs=-1), str(tmp_path / "bad")
        )
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_cross_fitting_run_predicts_its_held_out_fold(tmp_path):
    loop.train_and_evaluate(
        tiny_config(num_epochs=2, **{"data.holdout_folds": 3, "data.holdout_fold": 2}),
        str(tmp_path),
    )
    labels = np.load(tmp_path / "labels.npz")
    heldout = labels["heldout_index"]
    assert heldout.size == (NUM_FAKE_TRAIN - 80) // 3  # Folds 0 and 1 get one more.
    assert not np.intersect1d(heldout, labels["train_index"]).size
    for name in ("heldout_predictions.npz", "heldout_predictions_best_val.npz"):
        saved = np.load(tmp_path / name)
        np.testing.assert_array_equal(saved["index"], heldout)
        np.testing.assert_array_equal(saved["label"], labels["noisy_labels"][heldout])
        np.testing.assert_array_equal(saved["is_noisy"], labels["is_noisy"][heldout])
    train_saved = np.load(tmp_path / "train_predictions.npz")
    np.testing.assert_array_equal(train_saved["index"], labels["train_index"])


def test_train_split_metrics_count_fit_noise_and_labels_rated_below_chance():
    # K = 4 classes: chance is 0.25; the third label is rated at 0.1, the rest
    # at 0.25 (not below) or more.
    split = {
        "prediction": np.array([1, 2, 0, 3]),
        "label": np.array([1, 2, 2, 3]),
        "clean_label": np.array([1, 0, 2, 0]),
        "is_noisy": np.array([False, True, False, True]),
        "log_prob_label": np.log(np.array([0.9, 0.25, 0.1, 0.6], np.float32)),
        "probs": np.zeros((4, 4), np.float32),
    }
    metrics = evaluation.train_split_metrics(split)
    assert metrics == {
        "train_accuracy": 0.75,
        "train_clean_accuracy": 0.25,
        "memorized_fraction": 1.0,
        "contradicted_fraction": 0.25,
    }


def test_every_example_is_evaluated_exactly_once():
    mesh = jax.make_mesh((4,), ("data",))
    config = tiny_config(eval_batch_size=48)
    datasets = input_pipeline.create_datasets(config, mesh=mesh)
    state = _tiny_state(mesh, image_shape=datasets.info.image_shape)
    eval_step = steps.make_eval_step(mesh, datasets.preprocessing)
    expected = {
        "train": datasets.train_index,
        "val": datasets.val_index,
        "test": np.arange(NUM_FAKE_TEST),
    }
    for split, indices in expected.items():
        # 48 divides no split size: the last batch is padded.
        assert len(indices) % config.eval_batch_size
        result = evaluation.evaluate_split(
            eval_step, state, datasets.eval_batches(split, config.eval_batch_size)
        )
        np.testing.assert_array_equal(result["index"], indices)


# ----------------------------------------------------------------------------
# Steps, models, devices.


def _tiny_state(
    mesh, *, image_shape, model_name="resnet8", width=0.25, dtype=jnp.float32
):
    model = models.get(model_name, num_classes=10, width_multiplier=width, dtype=dtype)
    optimizer = optax.chain(
        optax.add_decayed_weights(1e-4), optax.sgd(0.1, momentum=0.9)
    )
    return steps.create_train_state(
        model, optimizer, image_shape=image_shape, seed=0, mesh=mesh
    )


def _batch(mesh, *, size=16, image_shape=(8, 8, 3), seed=0):
    """A training batch as the pipeline sends it: uint8 images, labels, indices."""
    rng = np.random.default_rng(seed)
    batch = {
        "image": rng.integers(0, 256, (size, *image_shape), dtype=np.uint8),
        "label": rng.integers(0, 10, size).astype(np.int32),
        "index": np.arange(seed * size, (seed + 1) * size, dtype=np.int32),
    }
    return jax.device_put(batch, NamedSharding(mesh, P("data")))


# One model per family: CIFAR ResNet-6n+2, pre-activation, ImageNet-style (the
# bottleneck variant compiles for 20+ s here; tests/training/test_models.py covers it).
@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["resnet8", "preact_resnet18", "resnet18"])
def test_a_few_train_steps_of_every_model_family(model_name):
    mesh = jax.make_mesh((4,), ("data",))
    state = _tiny_state(
        mesh, image_shape=(8, 8, 3), model_name=model_name, width=1 / 16
    )
    initial_params = jax.tree.map(np.asarray, state.params)
    train_step = steps.make_train_step(losses.get("tce"), mesh, PREPROCESSING)
    step_losses = []
    for seed in range(3):
        state, loss = train_step(state, _batch(mesh, seed=seed), seed)
        step_losses.append(float(loss))
    assert np.all(np.isfinite(step_losses))
    assert int(state.step) == 3
    changed = jax.tree.map(
        lambda a, b: not np.allclose(a, b), initial_params, state.params
    )
    assert all(jax.tree.leaves(changed))
    assert train_step._cache_size() == 1  # One compilation for all steps.


@pytest.mark.slow
def test_one_device_and_four_devices_agree():
    results = []
    for num_devices in (1, 4):
        mesh = jax.make_mesh(
            (num_devices,), ("data",), devices=jax.devices()[:num_devices]
        )
        # The 4-device program is the resnet8 one above: the cache compiles it once.
        state = _tiny_state(mesh, image_shape=(8, 8, 3), width=1 / 16)
        train_step = steps.make_train_step(losses.get("tce"), mesh, PREPROCESSING)
        step_losses = []
        for seed in range(3):
            state, loss = train_step(state, _batch(mesh, seed=seed), seed)
            step_losses.append(float(loss))
        assert len(state.params["head"]["kernel"].sharding.device_set) == num_devices
        results.append((step_losses, jax.tree.map(np.asarray, state.params)))
    (losses_1, params_1), (losses_4, params_4) = results
    np.testing.assert_allclose(losses_1, losses_4, rtol=1e-5)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
        params_1,
        params_4,
    )


# ----------------------------------------------------------------------------
# Optimiser and schedules.


def test_weight_decay_is_coupled_l2_on_every_parameter_like_torch_sgd():
    config = tiny_config(**{"optimizer.weight_decay": 0.5})
    optimizer = optim.create_optimizer(config, optax.constant_schedule(0.1))
    params = {"kernel": jnp.array([1.0, -2.0]), "bias": jnp.array([3.0])}
    grads = {"kernel": jnp.array([0.1, 0.2]), "bias": jnp.array([0.0])}
    opt_state = optimizer.init(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    # First step: momentum buffer = g + wd * p; update = -lr * buffer.
    np.testing.assert_allclose(
        updates["kernel"], -0.1 * (grads["kernel"] + 0.5 * params["kernel"])
    )
    np.testing.assert_allclose(updates["bias"], -0.1 * 0.5 * params["bias"])
    updates, _ = optimizer.update(grads, opt_state, params)
    # Second step: buffer = momentum * buffer + (g + wd * p).
    np.testing.assert_allclose(
        updates["kernel"],
        -0.1 * 1.9 * (grads["kernel"] + 0.5 * params["kernel"]),
        rtol=1e-6,
    )


def test_piecewise_schedule_with_warmup():
    config = tiny_config(
        **{
            "schedule.name": "piecewise",
            "schedule.warmup_epochs": 1.0,
            "schedule.decay_epochs": (2, 3),
            "schedule.decay_factor": 0.1,
            "optimizer.learning_rate": 1.0,
            "num_epochs": 4,
        }
    )
    schedule = optim.create_learning_rate_schedule(config, steps_per_epoch=10)
    rates = [float(schedule(step)) for step in range(40)]
    np.testing.assert_allclose(rates[:10], np.arange(10) / 10, rtol=1e-6)
    np.testing.assert_allclose(rates[10:20], 1.0)
    np.testing.assert_allclose(rates[20:30], 0.1, rtol=1e-6)
    np.testing.assert_allclose(rates[30:40], 0.01, rtol=1e-6)


def test_cosine_schedule_decays_to_zero_at_the_last_step():
    config = tiny_config(
        **{"schedule.name": "cosine", "optimizer.learning_rate": 0.5, "num_epochs": 2}
    )
    schedule = optim.create_learning_rate_schedule(config, steps_per_epoch=10)
    assert float(schedule(0)) == pytest.approx(0.5)
    assert float(schedule(10)) == pytest.approx(0.25)
    assert float(schedule(20)) == pytest.approx(0.0, abs=1e-7)


# ----------------------------------------------------------------------------
# Resume, corrupt checkpoints, NaN.


@pytest.mark.slow
def test_resume_after_stopping_gives_the_uninterrupted_metrics(reference_run, tmp_path):
    reference_dir, reference_summary = reference_run
    workdir = str(tmp_path / "run")
    loop.train_and_evaluate(tiny_config(num_epochs=2), workdir)
    summary = loop.train_and_evaluate(tiny_config(), workdir)
    assert without_timing(read_history(workdir)) == without_timing(
        read_history(reference_dir)
    )
    expected = comparable_summary(reference_summary)
    got = comparable_summary(summary)
    assert got == expected
    for key in ("label", "prob_label", "log_prob_label"):
        np.testing.assert_array_equal(
            np.load(os.path.join(workdir, "train_predictions.npz"))[key],
            np.load(reference_dir / "train_predictions.npz")[key],
        )

    # A relaunch of a finished run trains nothing and rewrites the same results.
    again = loop.train_and_evaluate(tiny_config(), workdir)
    assert comparable_summary(again) == expected
    assert len(read_history(workdir)) == 3


class _Stopped(Exception):
    pass


def _stopped_and_resumed(config, workdir, monkeypatch, stop_epoch):
    """Launches ``config`` into ``workdir``, stops it as ``stop_epoch`` begins
    (after the previous epoch's checkpoint), then relaunches it to the end."""
    run_epoch = loop._run_epoch

    def stop(epoch, *args, **kwargs):
        if epoch == stop_epoch:
            raise _Stopped
        return run_epoch(epoch, *args, **kwargs)

    monkeypatch.setattr(loop, "_run_epoch", stop)
    with pytest.raises(_Stopped):
        loop.train_and_evaluate(config, workdir)
    monkeypatch.setattr(loop, "_run_epoch", run_epoch)
    loop.train_and_evaluate(config, workdir)


@pytest.mark.slow
def test_self_tuning_alpha_is_checkpointed_so_a_resumed_run_equals_an_uninterrupted_one(
    tmp_path, monkeypatch
):
    # The same config both times (the rule's window depends on num_epochs).
    config = tiny_config(**{"loss.alpha_rule": "auto", "num_epochs": 4})
    uninterrupted, resumed = str(tmp_path / "uninterrupted"), str(tmp_path / "resumed")
    loop.train_and_evaluate(config, uninterrupted)
    _stopped_and_resumed(config, resumed, monkeypatch, stop_epoch=3)
    history = without_timing(read_history(uninterrupted))
    assert without_timing(read_history(resumed)) == history

    # Epochs 1-2 (the first half) train at 1/K; the reading after epoch 2
    # sets alpha for epochs 3 and 4.
    alphas = [record["alpha"] for record in history]
    reading = history[1]["contradicted_fraction"]
    expected = min(max(reading, 0.1), alpha_rules.DEFAULT_MAX_ALPHA)
    np.testing.assert_allclose(alphas, [0.1, 0.1, expected, expected], rtol=1e-6)
    assert expected != pytest.approx(0.1)


@pytest.mark.slow
def test_a_validation_rule_resumes_with_its_memory(tmp_path, monkeypatch):
    """val_track moves alpha at every new best of noisy-val accuracy, to the
    median of the last three readings: a resumed run must restore those
    readings and the best so far, not only alpha."""
    config = tiny_config(**{"loss.alpha_rule": "val_track", "num_epochs": 4})
    uninterrupted, resumed = str(tmp_path / "uninterrupted"), str(tmp_path / "resumed")
    loop.train_and_evaluate(config, uninterrupted)
    _stopped_and_resumed(config, resumed, monkeypatch, stop_epoch=3)
    history = without_timing(read_history(uninterrupted))
    assert without_timing(read_history(resumed)) == history

    # Replaying the rule on the recorded readings gives the recorded alphas.
    state = alpha_rules.init("val_track", num_classes=10)
    for record in history:
        assert record["alpha"] == pytest.approx(float(state.alpha), rel=1e-6)
        reading = alpha_rules.Reading(
            record["epoch"], record["contradicted_fraction"], record["val_accuracy"]
        )
        state = alpha_rules.update(state, reading)
    assert history[1]["alpha"] != pytest.approx(0.1)


@pytest.mark.slow
def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(
    reference_run, tmp_path
):
    reference_dir, reference_summary = reference_run
    workdir = tmp_path / "run"
    shutil.copytree(reference_dir, workdir)
    checkpoints = workdir / "checkpoints"
    assert (
        sorted(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit())[-1] == 3
    )
    for path in (checkpoints / "3" / "state").rglob("*"):
        if path.is_file():
            path.write_bytes(b"\x00garbage" * 7)

    summary = loop.train_and_evaluate(tiny_config(), str(workdir))

    # Epoch 3 was retrained from the epoch-2 checkpoint, with the same result;
    # the damaged checkpoint was moved aside, not deleted.
    assert comparable_summary(summary) == comparable_summary(reference_summary)
    assert (workdir / "checkpoints_damaged" / "3" / "state").is_dir()
    assert without_timing(read_history(workdir)) == without_timing(
        read_history(reference_dir)
    )


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
    reference_run, tmp_path, monkeypatch
):
    reference_dir, _ = reference_run
    workdir = tmp_path / "run"
    shutil.copytree(reference_dir, workdir)
    # The run extended to 5 epochs (a relaunch may do that), its loss NaN from
    # epoch 4 on.
    loss_of_the_run = losses.get

    def nan_loss(name, **hparams):
        loss_fn = loss_of_the_run(name, **hparams)
        return lambda logits, labels, **kw: loss_fn(logits, labels, **kw) * jnp.nan

    monkeypatch.setattr(losses, "get", nan_loss)
    with pytest.raises(progress.NonFiniteLossError, match=r"at epoch 4, step \d+"):
        loop.train_and_evaluate(tiny_config(num_epochs=5), str(workdir))
    assert len(read_history(workdir)) == 3
    steps = sorted(
        int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()
    )
    assert steps[-1] == 3


# ----------------------------------------------------------------------------
# The compiled step: device-only, donated; bfloat16.

# Host callbacks (jax.debug.print/callback, pure_callback, io_callback) are
# custom calls into Python; host-device transfers are send/recv, infeed/outfeed
# or copies to the host memory space (S(5)) and their offloading custom calls.
_HOST_CALLBACK = re.compile(r'custom_call_target="[^"]*(callback|MoveTo(Host|Device))')
_TRANSFER = re.compile(r"\b(send|recv|send-done|recv-done|infeed|outfeed)\(|:S\(5\)")
_ALIAS = re.compile(r"\{[\d,]*\}: \((\d+), \{[\d,]*\}, (may|must)-alias\)")


@pytest.mark.slow
def test_train_step_program_stays_on_the_device_and_donates_the_state():
    mesh = jax.make_mesh((4,), ("data",))
    state = _tiny_state(mesh, image_shape=(8, 8, 3), width=1 / 16)
    train_step = steps.make_train_step(losses.get("tce"), mesh, PREPROCESSING)
    program = train_step.lower(state, _batch(mesh), 0).compile().as_text()
    assert not _HOST_CALLBACK.search(program)
    assert not _TRANSFER.search(program)
    # Every buffer of the state (parameters 0..n-1 of the program) is donated
    # to an output.
    header = program.splitlines()[0]
    aliased = {int(match.group(1)) for match in _ALIAS.finditer(header)}
    assert aliased == set(range(len(jax.tree.leaves(state))))

    # The patterns do catch a callback.
    with_print = jax.jit(lambda x: (jax.debug.print("{}", x), x + 1)[1])
    assert _HOST_CALLBACK.search(with_print.lower(1.0).compile().as_text())


@pytest.mark.slow
def test_bfloat16_run_trains_with_float32_logits_loss_and_state(tmp_path, monkeypatch):
    seen = {}
    make_train_step = steps.make_train_step

    def recording_make_train_step(loss_fn, mesh, preprocessing):
        def recording_loss(logits, labels):
            seen["logits"] = logits.dtype
            return loss_fn(logits, labels)

        step = make_train_step(recording_loss, mesh, preprocessing)

        def recording_step(state, batch, epoch):
            state, loss = step(state, batch, epoch)
            seen["loss"] = loss.dtype
            # Parameters, BatchNorm statistics and the optimiser state.
            leaves = jax.tree.leaves((state.params, state.batch_stats, state.opt_state))
            seen["state"] = {
                x.dtype for x in leaves if jnp.issubdtype(x.dtype, jnp.floating)
            }
            return state, loss

        return recording_step

    monkeypatch.setattr(steps, "make_train_step", recording_make_train_step)
    config = tiny_config(**{"model.dtype": "bfloat16", "num_epochs": 2})
    summary = loop.train_and_evaluate(config, str(tmp_path))
    float32 = jnp.dtype("float32")
    assert seen == {"logits": float32, "loss": float32, "state": {float32}}
    history = read_history(tmp_path)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert summary["final_test_accuracy"] > 0.3  # Chance is 0.1.


# A bfloat16 model hands the loss logits rounded to bfloat16 (8 significant
# bits, relative rounding <= 2^-9) and takes its gradient back in bfloat16:
# TCE's gradient then stays within 2^-6 of the largest float32 gradient entry
# (each entry's error is about |logit| * 2^-9 * softmax plus the output's
# rounding), measured over 1,024 examples of 10 and 64 of 1,000 classes.
BF16_GRADIENT_TOLERANCE = 2.0**-6


@pytest.mark.parametrize("shape", [(1024, 10), (64, 1000)])
def test_tce_gradient_in_bfloat16_matches_float32(shape):
    rng = np.random.default_rng(0)
    logits = (3.0 * rng.normal(size=shape)).astype(np.float32)
    labels = rng.integers(0, shape[1], shape[0])
    grad = jax.jit(jax.grad(lambda z: jnp.mean(losses.get("tce")(z, labels))))
    want = np.asarray(grad(jnp.asarray(logits)))
    got = grad(jnp.asarray(logits, jnp.bfloat16))
    assert got.dtype == jnp.bfloat16
    error = np.abs(np.asarray(got, np.float32) - want).max() / np.abs(want).max()
    assert error < BF16_GRADIENT_TOLERANCE, error

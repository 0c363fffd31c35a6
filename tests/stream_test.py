"""The streaming input pipeline: ImageNet-shaped data, several processes, exact resume, corrupt images."""

import json
import math
import shutil
import signal
import socket
import time

import jax
import numpy as np
import pytest

from resjax.train import config, loop, order, records, stream, synthetic, transforms

CIFAR = "../shared/data/cifar10-jpeg"

# imagenet34 reduced to test size: widths 4-16, 64-pixel crops, 10 classes, a few steps
REDUCED = ["test_split=test", "num_classes=10", "image_size=64", "model.stem=[7,4,2]", "model.widths=[4,8,8,16]",
           "steps=6", "batch_size=16", "log_every=2", "eval_every=6", "checkpoint_every=2", "loader_workers=1"]


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory):
    """2,000 generated JPEGs of 256-500 pixels a side in 10 classes (1,800 train, 200 test)."""
    return synthetic.write_image_folder(tmp_path_factory.mktemp("imagenet") / "ds")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, imagenet, train):
    workdir = tmp_path_factory.mktemp("one_process")
    out = train(workdir, imagenet, *REDUCED, devices=4, config="imagenet34")
    assert out.returncode == 0, out.stderr
    return workdir


def params(workdir):
    return loop.load_checkpoint(workdir)["params"]


def test_reduced_imagenet34_streams_on_four_devices(one_process):
    summary = json.loads((one_process / "summary.json").read_text())
    assert summary["input_pipeline"] == "stream" and summary["devices"] == 4 and summary["steps"] == 6
    assert 0 <= summary["test_accuracy"] <= summary["test_top5_accuracy"] <= 1
    assert summary["config"]["augmentation"] == "imagenet" and summary["config"]["lr_schedule"] == "exponential"
    assert sorted(p.name for p in (one_process / "checkpoints" / "6").iterdir() if not p.name.startswith("_")) == [
        "commit_success.txt", "default", "pipeline"]
    rows = [json.loads(line) for line in (one_process / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in rows if "loss" in r)


def test_two_processes_with_two_devices_each_equal_one_process(tmp_path, imagenet, one_process, train):
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    procs = [train(tmp_path, imagenet, *REDUCED, devices=2, wait=False, config="imagenet34",
                   flags=("--coordinator", f"localhost:{port}", "--num-processes", "2", "--process-id", str(i)))
             for i in range(2)]
    for p in procs:
        assert p.wait(timeout=600) == 0, p.stderr.read()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["devices"] == 4 and summary["processes"] == 2
    for a, b in zip(jax.tree.leaves(params(tmp_path)), jax.tree.leaves(params(one_process))):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    reference = json.loads((one_process / "summary.json").read_text())
    assert summary["test_accuracy"] == pytest.approx(reference["test_accuracy"], abs=0.011)  # one image of 200


def test_sigkill_then_resume_is_bitwise(tmp_path, imagenet, one_process, train):
    proc = train(tmp_path, imagenet, *REDUCED, devices=4, wait=False, config="imagenet34")
    deadline = time.time() + 300
    while time.time() < deadline and not (tmp_path / "checkpoints" / "2" / "commit_success.txt").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (tmp_path / "checkpoints" / "2").exists(), proc.stderr.read()
    out = train(tmp_path, imagenet, *REDUCED, devices=4, config="imagenet34")
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "summary.json").read_text())["resumed_from"] in (2, 4)
    for a, b in zip(jax.tree.leaves(params(tmp_path)), jax.tree.leaves(params(one_process))):
        np.testing.assert_array_equal(a, b)


def _cfg(folder, *extra):
    return config.load("tiny").override([f"data={folder}", "num_classes=2", "input_pipeline=stream", *extra])


def _batches(feed, start, saved, count):
    out, gen = [], feed.batches(start, saved)
    for _, (images, labels, _) in gen:
        out.append((np.asarray(images), np.asarray(labels)))
        if len(out) == count:
            position = feed.position
            gen.close()
            return out, position


@pytest.mark.parametrize("workers", [0, 2])
def test_a_resumed_stream_sees_the_batches_of_an_uninterrupted_one(folder, workers):
    cfg = _cfg(folder, f"loader_workers={workers}", "steps=8", "batch_size=12")  # 64 images: epochs cross batches
    train, test = loop.open_splits(cfg)
    mesh = loop.make_mesh()
    whole, _ = _batches(stream.StreamFeed(cfg, train, test, mesh), 0, None, 8)
    first, position = _batches(stream.StreamFeed(cfg, train, test, mesh), 0, None, 3)
    assert position["step"] == 3 and position["workers"] == workers
    resumed, _ = _batches(stream.StreamFeed(cfg, train, test, mesh), 3, json.loads(json.dumps(position)), 5)
    rebuilt, _ = _batches(stream.StreamFeed(cfg, train, test, mesh), 3, None, 5)  # from the step alone
    for (a, la), (b, lb), (c, lc) in zip(whole[3:], resumed, rebuilt):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
        assert la.tolist() == lb.tolist() == lc.tolist()
    # the batches hold the records that resjax.train.order assigns to each step
    for s, (_, labels) in enumerate(whole):
        assert labels.tolist() == train.labels[order.batch_indices(cfg.seed, s, 12, len(train))].tolist()


@pytest.mark.parametrize("shrink", [[], ["progressive_resizing=[[4, 4]]"]], ids=["full-size", "progressive"])
def test_cifar_shaped_data_stream_as_they_train_on_the_device(tmp_path, folder, shrink):
    """Without augmentation, and with the statistics of every image (64 < STATS_IMAGES), the
    streaming pipeline feeds the step exactly the batches the device pipeline gathers."""
    base = ["augment=false", "steps=6", "eval_every=6", "checkpoint_every=6", "loader_workers=0", *shrink]
    summaries = {}
    for pipeline in ("device", "stream"):
        cfg = _cfg(folder, *base).override([f"input_pipeline={pipeline}"])
        train_set, test_set = loop.load_splits(cfg)
        trainer = loop.Trainer(cfg, tmp_path / pipeline, train_set, test_set, progress=False)
        summaries[pipeline] = trainer.run()
        assert summaries[pipeline]["input_pipeline"] == pipeline
    assert summaries["stream"]["test_accuracy"] == summaries["device"]["test_accuracy"]
    for a, b in zip(jax.tree.leaves(params(tmp_path / "stream")), jax.tree.leaves(params(tmp_path / "device"))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not (loop.pathlib.Path(CIFAR) / "train.tar.gz").exists(), reason="CIFAR-10 JPEGs not present")
def test_cifar10_through_the_streaming_path_trains_and_evaluates(tmp_path, train):
    out = train(tmp_path, CIFAR, "input_pipeline=stream", "num_classes=10", "steps=4", "batch_size=32",
                "eval_every=4", "checkpoint_every=4", "loader_workers=2", devices=2)
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["input_pipeline"] == "stream" and 0 <= summary["test_accuracy"] <= 1
    assert 0 < summary["test_top5_accuracy"] <= 1


@pytest.fixture
def damaged(tmp_path, folder):
    """The tiny folder with one training image replaced by a truncated JPEG: its header
    reads, its body does not decode."""
    from PIL import Image

    root = tmp_path / "damaged"
    shutil.copytree(folder, root)
    image = root / "train" / "dark" / "0003.png"
    whole = tmp_path / "whole.jpg"
    Image.open(image).convert("RGB").resize((64, 64)).save(whole, quality=95)
    image.unlink()
    (root / "train" / "dark" / "0003.jpg").write_bytes(whole.read_bytes()[:400])
    return root


def test_a_corrupt_jpeg_is_a_clear_error_naming_the_file(tmp_path, damaged, train):
    out = train(tmp_path, damaged, "input_pipeline=stream", "loader_workers=1")
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert "cannot decode image" in lines[0] and "dark/0003.jpg" in lines[0] and "skip_corrupt=true" in lines[0]


def test_a_corrupt_image_met_by_a_worker_process_is_one_line_naming_the_file(damaged, monkeypatch):
    """The same error when a loader process, not the statistics pass, meets the image."""
    monkeypatch.setattr(stream, "STATS_IMAGES", 1)  # the first image of the stream is a sound one
    cfg = _cfg(damaged, "loader_workers=2", "steps=8", "batch_size=16")
    train, test = loop.open_splits(cfg)
    assert "0003.jpg" not in train.name(order.record(cfg.seed, 0, len(train)))
    feed = stream.StreamFeed(cfg, train, test, loop.make_mesh())
    with pytest.raises(transforms.CorruptImage) as caught:
        for _ in feed.batches(0, None):
            pass
    message = str(caught.value)
    assert "\n" not in message and "dark/0003.jpg" in message and "skip_corrupt=true" in message


def test_skip_corrupt_replaces_and_counts_every_time_the_image_comes_up(tmp_path, damaged, train):
    out = train(tmp_path, damaged, "input_pipeline=stream", "loader_workers=1", "skip_corrupt=true", "steps=8",
                "batch_size=16", "log_every=8", "eval_every=8", "checkpoint_every=8")
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["skipped_images"] == 2  # 8 steps x 16 images = two epochs of 64: it came up twice


def test_the_configuration_chooses_the_pipeline(folder, imagenet):
    assert isinstance(loop.load_splits(_cfg(folder))[0], records.Records)
    device = _cfg(folder).override(["input_pipeline=auto"])
    assert not isinstance(loop.load_splits(device)[0], records.Records)  # small: on the device
    big = config.load("imagenet34").override([f"data={imagenet}", "test_split=test", "num_classes=10"])
    assert isinstance(loop.load_splits(big)[0], records.Records)  # augmentation="imagenet": streamed
    with pytest.raises(ValueError, match="needs input_pipeline='stream'"):
        big.override(["input_pipeline=device"])


def test_random_resized_crops_stay_in_the_image_and_the_literature_s_ranges():
    rng = np.random.default_rng(0)
    areas = []
    for _ in range(500):
        width, height = rng.integers(200, 600, 2)
        left, top, w, h = transforms.crop_box(rng, int(width), int(height))
        assert 0 <= left and left + w <= width and 0 <= top and top + h <= height
        areas.append(w * h / (width * height))
        assert 0.95 * 3 / 4 <= w / h <= 1.05 * 4 / 3  # up to rounding to whole pixels
    assert 0.95 * 0.08 <= min(areas) < 0.15 and max(areas) > 0.9
    assert transforms.crop_box(rng, 1000, 10)[2:] == (13, 10)  # fallback: centre crop at the clamped ratio 4/3
    assert transforms.eval_box(500, 300, 224) == (250 - 131.25, 18.75, 262.5, 262.5)  # 300 x 0.875


def test_each_image_s_crop_depends_on_its_stream_position_not_on_who_reads_it(imagenet):
    train = records.open_folder(imagenet, "train")
    element = transforms.Element(train, "imagenet", (64, 64, 3), seed=3)
    first, again = element(17), element(17)
    np.testing.assert_array_equal(first["image"], again["image"])
    assert first["label"] == train.labels[order.record(3, 17, len(train))]
    assert not np.array_equal(element(18)["image"], first["image"])
    # process 1 of 2 reads the second half of every global batch of 8
    assert [order.Shard(4, 8, 1)(j) for j in range(6)] == [4, 5, 6, 7, 12, 13]


def test_alternating_flips_on_the_host_mirror_the_random_flips_crops_by_record_and_epoch(folder):
    train = records.open_folder(folder, "train")
    n = len(train)
    alternating = transforms.Element(train, "cifar", (8, 8, 3), seed=2, flip="alternating")
    for position in (0, 5, n + 5, 2 * n + 1):
        record, epoch = order.record(2, position, n), position // n
        (data, _), name = train[record], train.name(record)
        image = transforms.decode(transforms.open_image(data, name), name)
        unflipped = transforms.pad_crop(np.random.default_rng([2, position]), image)  # flip="random"'s crop
        mirrored = bool(order.alternating_flips(2, record, epoch))
        np.testing.assert_array_equal(alternating(position)["image"], unflipped[:, ::-1] if mirrored else unflipped)
        assert alternating(position)["label"] == train.labels[record]


@pytest.mark.parametrize("padding", [0, 2])
def test_the_host_s_crops_come_from_the_configured_padding(folder, padding):
    cfg = _cfg(folder, f"crop_padding={padding}", "loader_workers=0")
    train, test = loop.open_splits(cfg)
    element = stream.StreamFeed(cfg, train, test, loop.make_mesh()).element(train, train=True, augment=True)
    for position in range(6):
        record = order.record(0, position, len(train))
        (data, _), name = train[record], train.name(record)
        image = transforms.decode(transforms.open_image(data, name), name)
        rng = np.random.default_rng([0, position])
        crop = transforms.pad_crop(rng, image, padding)
        out = element(position)["image"]
        assert np.array_equal(out, crop) or np.array_equal(out, crop[:, ::-1])
        if padding == 0:
            assert np.array_equal(out, image) or np.array_equal(out, image[:, ::-1])


def test_scaled_jpeg_decoding_gives_the_crop_that_full_decoding_gives(tmp_path):
    """A crop at least twice the output size lets the decoder scale down first (Pillow's draft):
    the result must be the same picture as decoding in full, to within resampling."""
    from PIL import Image

    rng = np.random.default_rng(0)
    big = synthetic.image(rng, 3, 10, 1600, 1200, noise=0)
    path = tmp_path / "big.jpg"
    Image.fromarray(big).save(path, quality=95)
    box = (100, 50, 1200, 1000)
    drafted = transforms.resized_crop(Image.open(path), box, 224, "big.jpg")
    full = np.asarray(Image.open(path).convert("RGB").resize((224, 224), Image.BILINEAR, box=(100, 50, 1300, 1050)))
    assert drafted.shape == full.shape == (224, 224, 3)
    assert np.abs(drafted.astype(int) - full.astype(int)).mean() < 3  # levels of 255
    opened = Image.open(path)
    assert transforms._drafted(opened, box, 224)[0].size == (400, 300)  # decoded at 1/4 scale


def test_a_prepared_tfds_set_streams_through_data_source(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    cfg = config.load("tiny").override(["data=tfds:cifar10", "input_pipeline=stream", "loader_workers=0", "steps=2",
                                        "eval_every=2", "checkpoint_every=2", "batch_size=8"])
    with tfds.testing.mock_data(num_examples=12):  # mocks live in this process: no worker processes
        train_set, test_set = loop.load_splits(cfg)
        assert isinstance(train_set, records.TfdsRecords) and train_set.name(3) == "tfds:cifar10/train[3]"
        summary = loop.Trainer(cfg, tmp_path, train_set, test_set, progress=False).run()
    assert summary["input_pipeline"] == "stream" and summary["steps"] == 2
    assert 0 <= summary["test_accuracy"] <= summary["test_top5_accuracy"] <= 1


def test_several_steps_per_call_stream_as_single_steps_do(tmp_path, folder):
    base = _cfg(folder, "loader_workers=0", "steps=4", "log_every=2", "eval_every=4", "checkpoint_every=2")
    for k in (1, 2):
        cfg = base.override([f"steps_per_call={k}"])
        train_set, test_set = loop.load_splits(cfg)
        loop.Trainer(cfg, tmp_path / str(k), train_set, test_set, progress=False).run()
    for a, b in zip(jax.tree.leaves(params(tmp_path / "1")), jax.tree.leaves(params(tmp_path / "2"))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

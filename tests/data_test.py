"""resjax.train.data: image folders as directories and tarballs, with clear errors."""

import subprocess
import sys
import tarfile

import numpy as np
import pytest
from PIL import Image

from resjax.train import data, records


def write_tree(root, split="train", classes=("cat", "dog"), per_class=3, size=(8, 8)):
    rng = np.random.default_rng(0)
    for c in classes:
        folder = root / "ds" / split / c
        folder.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")
    return root / "ds"


def test_reads_a_directory_and_a_tarball_alike(tmp_path):
    root = write_tree(tmp_path)
    write_tree(tmp_path / "other", split="test", per_class=1)
    folder = data.load_image_folder(root, split="train")
    assert folder.images.shape == (6, 8, 8, 3) and folder.images.dtype == np.uint8
    assert folder.class_names == ("cat", "dog") and folder.labels.tolist() == [0, 0, 0, 1, 1, 1]
    with tarfile.open(tmp_path / "ds.tar.gz", "w:gz") as tar:
        tar.add(root, arcname="ds")
    packed = data.load_image_folder(tmp_path / "ds.tar.gz", split="train")
    np.testing.assert_array_equal(packed.images, folder.images)
    assert packed.labels.tolist() == folder.labels.tolist()


@pytest.mark.parametrize("form", ["ustar", "gnu", "pax"])
def test_tarball_headers_are_walked_as_tarfile_reads_them(tmp_path, form):
    """The quick header walk gives tarfile's members, or leaves the archive to tarfile."""
    root = write_tree(tmp_path, per_class=2)
    long_class = root / "train" / ("c" * 120)  # a path beyond a header's 100-byte name field
    long_class.mkdir()
    (root / "train" / "cat" / "0000.png").rename(long_class / "0000.png")
    directory = data.load_image_folder(root, split="train")
    (root / "train" / "cat" / "link.png").symlink_to("0001.png")  # a member without data: not an image there

    def pack(path, mode, **kw):
        with tarfile.open(path, mode, format=getattr(tarfile, f"{form.upper()}_FORMAT"), **kw) as tar:
            tar.add(root, arcname="ds")
        return path

    def tarfiles_members(path):
        with tarfile.open(path) as tar:
            return [(m.name, m.offset_data, m.size) for m in tar if m.isfile()]

    comment = {"pax_headers": {"comment": "d7d0561"}} if form == "pax" else {}  # git archive's global header
    plain = pack(tmp_path / "ds.tar", "w", **comment)
    blob = plain.read_bytes()
    walked = records._plain_members(lambda offset, n: blob[offset:offset + n], len(blob))
    if form == "ustar":  # the long path split into the header's prefix and name fields
        assert walked == tarfiles_members(plain) and any(len(name) > 100 for name, *_ in walked)
    else:  # GNU's long-name member, pax's path record: tarfile reads them
        assert walked is None
    packed = [plain, pack(tmp_path / "ds.tar.gz", "w:gz", **comment)]
    if form == "pax":
        short = tmp_path / "short"
        (root / "train" / ("c" * 120)).rename(root / "train" / "bird")
        blob = pack(short, "w", **comment).read_bytes()
        walked = records._plain_members(lambda offset, n: blob[offset:offset + n], len(blob))
        assert walked == tarfiles_members(short) and len(walked) == 4  # past the global header
        damaged = bytearray(blob)
        damaged[walked[0][1] - 512 + 3] ^= 1  # the first image's name: its header's checksum no longer holds
        assert records._plain_members(lambda offset, n: bytes(damaged[offset:offset + n]), len(damaged)) is None
        (root / "train" / "bird").rename(root / "train" / ("c" * 120))
    for path in packed:  # read at offsets (.tar) and from memory (.tar.gz)
        folder = data.load_image_folder(path, split="train")
        np.testing.assert_array_equal(folder.images, directory.images)
        assert folder.labels.tolist() == directory.labels.tolist() and folder.class_names == directory.class_names


def test_missing_empty_and_corrupt_data_say_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="<split>/<class>/<image>"):
        data.load_image_folder(tmp_path / "nope")
    root = write_tree(tmp_path)
    with pytest.raises(ValueError, match="no images of split 'test'"):
        data.load_image_folder(root, split="test")
    (root / "train" / "cat" / "9999.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="cannot decode image .*9999.jpg"):
        data.load_image_folder(root, split="train")


def test_decoding_processes_give_the_images_of_one_and_name_what_is_wrong(tmp_path, monkeypatch):
    root = write_tree(tmp_path, per_class=5)
    one = data.load_image_folder(root, split="train", workers=0)
    monkeypatch.setattr(data, "CHUNK", 2)  # 5 chunks: two processes
    spread = data.load_image_folder(root, split="train", workers=2)
    np.testing.assert_array_equal(spread.images, one.images)
    assert spread.labels.tolist() == one.labels.tolist() == [0] * 5 + [1] * 5
    (root / "train" / "dog" / "0002.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot decode image .*dog/0002.png"):
        data.load_image_folder(root, split="train", workers=2)
    Image.fromarray(np.zeros((9, 8, 3), np.uint8)).save(root / "train" / "dog" / "0002.png")
    with pytest.raises(ValueError, match=r"differ in size \(\[\(8, 8, 3\), \(9, 8, 3\)\]"):
        data.load_image_folder(root, split="train", workers=2)


def test_a_script_without_the_main_guard_is_told_to_add_it(tmp_path):
    root = write_tree(tmp_path, per_class=4)
    script = tmp_path / "unguarded.py"
    script.write_text(f"from resjax.train import data\ndata.CHUNK = 2\ndata.load_image_folder({str(root)!r}, workers=2)\n")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 1  # the message is the last line but for a warning about the broken pool's semaphores
    assert (
        "RuntimeError: a process decoding images died. Spawned workers run the calling script again: guard its "
        'entry with `if __name__ == "__main__":`, or decode in this process (loader_workers=0, or workers=0); '
        "it also happens when the machine runs out of memory.") in run.stderr.splitlines()


def test_tensorflow_datasets_read_without_tensorflow(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    import importlib.util

    assert importlib.util.find_spec("tensorflow") is None  # the reading path needs no TensorFlow
    with tfds.testing.mock_data(num_examples=12):
        train = data.load_tfds("cifar10", "train")
        assert train.images.shape == (12, 32, 32, 3) and train.images.dtype == np.uint8
        assert train.labels.min() >= 0 and train.labels.max() < 10

        from resjax.train import config, loop

        cfg = config.load("tiny").override(["data=tfds:cifar10", "steps=2", "eval_every=2", "checkpoint_every=2"])
        train_set, test_set = loop.load_splits(cfg)
        summary = loop.Trainer(cfg, tmp_path, train_set, test_set, progress=False).run()
        assert summary["steps"] == 2 and 0.0 <= summary["test_accuracy"] <= 1.0


def test_unprepared_tensorflow_dataset_says_how_to_prepare(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(FileNotFoundError, match="docs/data.md"):
        data.load_tfds("cifar10", "train", data_dir=str(tmp_path))


@pytest.mark.parametrize("rows", [1 << 20, 333])  # one count, and counts of 333 pixels (the last one short)
def test_pixel_statistics_are_numpys_per_channel_moments(rows, monkeypatch):
    from resjax.train import transforms

    monkeypatch.setattr(transforms, "STATS_ROWS", rows)
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (40, 5, 7, 3), dtype=np.uint8)
    images[..., 2] //= 4  # channels with different moments
    mean, std = transforms.pixel_statistics(images)
    pixels = images.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(mean, pixels.mean(0), rtol=1e-12)
    np.testing.assert_allclose(std, pixels.std(0), rtol=1e-12)

"""benchmarks/jpeg_quality.py: the re-encoded splits read back as the same labelled images."""

import pathlib
import sys

import numpy as np

from resjax.train import records, transforms

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
import jpeg_quality  # noqa: E402


def labelled(split: records.Records) -> list[tuple[str, int]]:
    return sorted((pathlib.PurePath(split.name(i)).name, int(split.labels[i])) for i in range(len(split)))


def test_reencoded_split_keeps_the_labelled_images_and_lower_quality_loses_more(folder, tmp_path):
    source = records.open_folder(folder, split="train")
    figures = {}
    for quality in (10, 95):
        out = tmp_path / str(quality)
        out.mkdir()
        figures[quality] = jpeg_quality.write_split(folder, "train", quality, out)
        back = records.open_folder(out / "train.tar", split="train")
        assert back.class_names == source.class_names and figures[quality]["images"] == len(source)
        assert labelled(back) == labelled(source)
        image = transforms.decode_record(back, 0)[0]
        assert image.shape == (8, 8, 3) and image.dtype == np.uint8
    assert figures[95]["psnr_db_vs_source"] > figures[10]["psnr_db_vs_source"] + 1  # 28.2 against 26.7 dB here
    assert figures[95]["mean_bytes"] > figures[10]["mean_bytes"]

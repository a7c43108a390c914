"""TensorBoard mirror: a real tiny GAN job's events and sample grids, read back from the event files."""
from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from gans.config import make_config
from lab.engine.runs import Run
from lab.kinds import gan as gan_job
from lab.mirrors.tensorboard import FOLDER

TINY = dict(latent=16, width=8, batch_size=16, steps=6, log_every=3, sample_every=3, checkpoint_every=3,
            export_per_class=0, device="cpu")


def read_event_files(folder: Path) -> tuple[dict[str, dict[int, float]], dict[str, dict[int, np.ndarray]]]:
    """Scalars and images of every TFRecord event file in `folder`: tag -> step -> value/image."""
    from tensorboardX.proto.event_pb2 import Event

    scalars, images = {}, {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset:offset + 8])
            record = data[offset + 12: offset + 12 + length]  # after the length and its CRC
            offset += 12 + length + 4  # and the record's CRC
            event = Event.FromString(record)
            for value in event.summary.value:
                if value.HasField("image"):
                    with Image.open(io.BytesIO(value.image.encoded_image_string)) as im:
                        images.setdefault(value.tag, {})[event.step] = np.asarray(im)
                else:
                    scalars.setdefault(value.tag, {})[event.step] = value.simple_value
    return scalars, images


def test_a_gan_run_writes_its_losses_and_sample_grids_as_tensorboard_events(runs_root):
    run = Run.create("gan", make_config("dcgan", **TINY).to_dict(), root=runs_root)
    gan_job.run(run)
    scalars, images = read_event_files(run.path / FOLDER)
    progress = run.events("progress")
    assert sorted(scalars["progress/loss_d"]) == [3, 6]
    assert scalars["progress/loss_g"][6] == np.float32(progress[-1]["loss_g"])
    assert "progress/done" not in scalars and "progress/total" not in scalars  # steps, not series
    assert sorted(images["samples"]) == [3, 6]
    latest = np.asarray(Image.open(run.samples / "latest.png"))
    assert np.array_equal(images["samples"][6], latest)


def test_any_event_with_numbers_is_mirrored_and_a_broken_image_does_not_fail_the_job(runs_root):
    run = Run.create("count", {"steps": 2}, root=runs_root)
    run.log_event(type="eval", step=100, val_accuracy=0.75, note="text is not a scalar")
    run.log_event(type="sample", step=1, path="missing.png")  # the mirror stops; the job does not fail
    run.log_event(type="eval", step=200, val_accuracy=0.8)
    scalars, _ = read_event_files(run.path / FOLDER)
    assert scalars == {"eval/val_accuracy": {100: 0.75}}
    assert [e["step"] for e in run.events("eval")] == [100, 200]  # events.jsonl keeps everything


def test_a_gpnn_run_writes_its_levels_figures_and_variations_as_tensorboard_events(runs_root):
    from gans.gpnn import gpnn_config
    from lab.kinds import gpnn as gpnn_job

    config = gpnn_config("quick", mode="image", dataset={"name": "pneumoniamnist", "size": 28}, image_index=7,
                         variations=3, iters=2, fine_levels=1, fine_iters=1, sifid=False)
    run = Run.create("gpnn", config.to_dict(), root=runs_root)
    gpnn_job.run(run)
    scalars, images = read_event_files(run.path / FOLDER)
    levels = run.raw_status()["progress"]["total"]
    assert sorted(scalars["progress/level_seconds"]) == list(range(1, levels + 1))  # one point per pyramid level
    summary = json.loads((run.artifacts / "summary.json").read_text())
    assert scalars["summary/diversity_to_image"][3] == np.float32(summary["diversity"]["to_image"])
    assert scalars["summary/seconds"][3] == np.float32(summary["seconds"])
    assert np.array_equal(images["samples"][3], np.asarray(Image.open(run.artifacts / "variations.png")))

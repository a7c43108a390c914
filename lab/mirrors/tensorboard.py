"""Every run mirrored into TensorBoard event files as it runs: `tensorboard --logdir runs`.

`Run.log_event` hands each event here. Its numbers become scalars named `<event type>/<field>`
(progress/loss_d, eval/val_balanced_accuracy, stage/rec_rmse …) at the event's step, and an event
that names a sample grid PNG adds the image. The files go to `<run dir>/tensorboard/`, written with
tensorboardX's protocol buffers (no TensorFlow) synchronously: an event is on disk when
`log_event` returns, so a worker that ends or is killed loses nothing it logged. Mirroring never
stops a job: a failure is reported once in the run's log and mirroring of that run ends.
"""
from __future__ import annotations

import numbers
import sys
from pathlib import Path

FOLDER = "tensorboard"
NOT_SCALARS = {"t", "type", "done", "total", "step", "iteration", "stage", "index"}
STEP_FIELDS = ("done", "step", "iteration", "stage")
COLOURSPACES = {"L": 1, "RGB": 3, "RGBA": 4}

_writers: dict[Path, object] = {}  # run dir -> tensorboardX EventsWriter, one file per run and process
_broken: set[Path] = set()


def mirror(run_dir: Path, event: dict) -> None:
    """Write `event` (a line of the run's events.jsonl) to the run's TensorBoard files."""
    if run_dir in _broken:
        return
    try:
        from tensorboardX.proto.event_pb2 import Event  # loaded by a job's first event, never by the CLI
        from tensorboardX.proto.summary_pb2 import Summary

        step = next((int(event[k]) for k in STEP_FIELDS if is_number(event.get(k))), 0)
        kind = str(event.get("type", "event"))
        values = [Summary.Value(tag=f"{kind}/{name}", simple_value=float(value))
                  for name, value in event.items() if name not in NOT_SCALARS and is_number(value)]
        image = _image_of(run_dir, event, Summary)
        if image is not None:
            values.append(Summary.Value(tag="samples" if kind == "sample" else kind, image=image))
        if values:
            writer = _writer(run_dir)
            writer.write_event(Event(wall_time=float(event.get("t", 0)), step=step, summary=Summary(value=values)))
            writer.flush()
    except Exception as e:  # noqa: BLE001 - a mirror must never fail the job it watches
        _broken.add(run_dir)
        print(f"TensorBoard mirror of {run_dir.name} stopped: {type(e).__name__}: {e}", file=sys.stderr, flush=True)


def finish(run_dir: Path, state: str) -> None:
    """Nothing to close: every event is flushed as it is written."""


def is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _writer(run_dir: Path):
    if run_dir not in _writers:
        from tensorboardX.event_file_writer import EventsWriter

        (run_dir / FOLDER).mkdir(parents=True, exist_ok=True)
        _writers[run_dir] = EventsWriter(str(run_dir / FOLDER / "events"))
    return _writers[run_dir]


def png_named(run_dir: Path, event: dict) -> Path | None:
    """The PNG an event names (relative to the run's samples/ or an absolute path), or None."""
    name = event.get("path")
    if not isinstance(name, str) or not name.endswith(".png"):
        return None
    return Path(name) if Path(name).is_absolute() else run_dir / "samples" / name


def _image_of(run_dir: Path, event: dict, summary):
    """The PNG an event names as a Summary.Image, or None when the event names none."""
    path = png_named(run_dir, event)
    if path is None:
        return None
    from PIL import Image

    png = path.read_bytes()
    with Image.open(path) as picture:
        width, height, mode = picture.width, picture.height, picture.mode
    return summary.Image(height=height, width=width, colorspace=COLOURSPACES.get(mode, 3), encoded_image_string=png)

"""The CLI names things the way the user does: `runs list` shows each run's name beside its id, ends
quietly when its reader stops early (`runs list | head -1`), and `score` takes a set by the id that
`sets list` and `study --synthetic` use ("<run id>/<set name>")."""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path


from data.imageset import ImageSet
from data.synthetic import save_set, set_id
from lab.engine import manage
from lab.engine.runs import Run

ROOT = Path(__file__).resolve().parent.parent
F_SETPIPE_SZ = 1031  # Linux: set a pipe's capacity


def lab(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab", *args], cwd=ROOT, env=os.environ.copy(),
                          capture_output=True, text=True, timeout=120, **kwargs)


def test_runs_list_shows_the_name_the_user_gave_and_a_generated_one_otherwise(runs_root):
    named = Run.create("count", {"steps": 3}, root=runs_root)
    manage.rename(named, "warm-up counter")
    other = Run.create("gan", {"gan": "dcgan", "preset": "quick", "dataset": {"name": "dermamnist"}}, root=runs_root)
    listed = lab("runs", "list").stdout.splitlines()
    line_of = {line.split()[0]: line for line in listed}
    assert line_of[named.id].endswith("warm-up counter")
    assert "DCGAN" in line_of[other.id] and "dermamnist" in line_of[other.id]


def test_runs_list_piped_into_a_reader_that_stops_after_one_line_ends_without_a_traceback(runs_root):
    """The reader takes one line and closes the pipe, which holds 4 KiB, while `runs list` still has
    about 20 KiB to write: every write after that meets a closed pipe."""
    for i in range(200):
        Run.create("count", {"steps": 3}, root=runs_root)
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, F_SETPIPE_SZ, 4096)
    proc = subprocess.Popen([sys.executable, "-m", "lab", "runs", "list"], cwd=ROOT, stdout=write_end,
                            stderr=subprocess.PIPE, text=True)
    os.close(write_end)
    with os.fdopen(read_end) as reader:
        first = reader.readline()
    stderr = proc.communicate(timeout=120)[1]
    assert first.split()[1] == "count"
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert proc.returncode == 0


def test_score_takes_a_set_by_its_id(runs_root, pneumonia):
    run = Run.create("gan", {"gan": "dcgan", "preset": "quick", "dataset": {"name": "pneumoniamnist"}},
                     root=runs_root)
    images = ImageSet(pneumonia.train.images[:8], pneumonia.train.labels[:8], pneumonia.class_names)
    path = save_set(images, run.artifacts, "synthetic", generator="dcgan", run_id=run.id)
    run.write_status("done")
    out = lab("score", set_id(path), "--dataset", "pneumoniamnist", "--detach", "--no-prescreen", "--no-inception")
    assert out.returncode == 0, out.stderr
    score = next(r for r in (runs_root / "score").iterdir())
    assert Run(score).config["sets"] == [str(path.resolve())]
    from lab.engine import jobs

    jobs.cancel(Run(score))
    jobs.wait(Run(score), timeout=120)
    missing = lab("score", f"{run.id}/no-such-set", "--detach")
    assert missing.returncode == 1 and "no-such-set" in missing.stderr and "Traceback" not in missing.stderr

"""``cordillera label``: a killed run, resumed, gives the dataset an uninterrupted run gives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cordillera.label.config import LabelerConfig
from cordillera.label.dataset import load_label_dataset, read_samples
from cordillera.label.run import label_dataset

ARGS = ["straight", "--width", "64", "--height", "36", "--no-gallery", "--no-progress"]


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "gallery.html"
    }


def _cli(out: Path) -> list[str]:
    code = "from cordillera.cli.main import app; app()"
    return [sys.executable, "-c", code, "label", *ARGS[:1], "--out", str(out), *ARGS[1:]]


def test_killed_run_resumes_to_the_same_dataset(tmp_path: Path) -> None:
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    cfg = LabelerConfig(image_width_px=64, image_height_px=36)
    label_dataset(["straight"], whole, cfg, progress=False, gallery=False)

    proc = subprocess.Popen(_cli(resumed), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((resumed / "data").glob("*.parquet")):
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)  # mid-run, between or inside scenes
    proc.wait()
    done_before = len(list((resumed / "data").glob("*.parquet")))
    assert 1 <= done_before < 4

    summary = label_dataset(["straight"], resumed, cfg, progress=False, gallery=False)
    assert summary.skipped_done == done_before and summary.labelled == 4 - done_before
    assert _files(resumed) == _files(whole)

    samples = read_samples(resumed)
    ds = load_label_dataset(resumed)
    assert len(ds) == len(samples) > 0
    row = ds[0]
    for key in (
        "scene_id",
        "time_s",
        "decision_longitudinal",
        "decision_lateral",
        "causes",
        "coc_text",
        "valid",
        "valid_reason",
        "groundings",
    ):
        assert key in row
    assert all((resumed / f.path).is_file() for s in samples for f in s.frames)


def test_cli_reports_bad_scenes_path(tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "from cordillera.cli.main import app; app()",
            "label",
            str(tmp_path / "missing"),
            "--out",
            str(tmp_path / "ds"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert "error:" in r.stderr and "missing" in r.stderr and "Traceback" not in r.stderr

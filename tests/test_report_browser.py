"""The report opens in a real browser (headless Chromium): no console message, not blank.

Skips where Debian's ``chromium`` is not installed (``scripts/install.sh`` installs it when run
as root).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cordillera.eval import EvalConfig, evaluate
from test_eval import LogReplayWithReasons, two_scenes

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless browser test needs Debian's chromium "
    "(apt-get install -y chromium; scripts/install.sh does it as root)",
)


def screenshot(page: Path, png: Path, profile: Path, fragment: str = "") -> str:
    """Load ``page`` headless, run its scripts for 3 s of virtual time, save a screenshot;
    returns the browser's stderr (console messages appear there as ``CONSOLE`` lines)."""
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=3000",
        f"--screenshot={png}",
        "--window-size=1280,900",
        page.resolve().as_uri() + fragment,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert png.is_file(), f"chromium wrote no screenshot (rc {done.returncode}):\n{done.stderr}"
    return done.stderr


@pytest.mark.parametrize("fragment", ["", "#play"])
def test_report_renders_without_console_errors(tmp_path: Path, fragment: str) -> None:
    cfg = EvalConfig(max_seconds=2.0, camera_snapshots=1, progress=False)
    run = evaluate(LogReplayWithReasons(), two_scenes(), "idm", tmp_path / "run", cfg)
    assert run.out_dir is not None
    png = tmp_path / "shot.png"
    log = screenshot(run.out_dir / "report.html", png, tmp_path / "profile", fragment)
    console = [line for line in log.splitlines() if "CONSOLE" in line]
    assert not console, "the report logged to the console:\n" + "\n".join(console)
    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=np.int32)
    colours, counts = np.unique(pixels.reshape(-1, 3), axis=0, return_counts=True)
    background = colours[counts.argmax()]
    not_background = float((np.abs(pixels - background).sum(-1) > 30).mean())
    assert pixels.std() > 20.0, "screenshot is nearly uniform"
    assert not_background > 0.2, (
        f"only {not_background:.0%} of the screenshot differs from its background"
    )

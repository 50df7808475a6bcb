"""``cordillera simulate``: a closed-loop rollout written as an animated GIF."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from cordillera.cli.main import app
from cordillera.scene.store import save_scene
from scene_builders import Obj, straight_road_scene


def _scene_file(tmp_path: Path) -> Path:
    scene = straight_road_scene(Obj(0.0, 0.0, 8.0), [Obj(20.0, 0.0, 5.0)], num_steps=30)
    return save_scene(scene, tmp_path)


def test_simulate_writes_one_frame_per_step(tmp_path: Path) -> None:
    out = tmp_path / "rollout.gif"
    res = CliRunner().invoke(
        app,
        [
            "simulate",
            str(_scene_file(tmp_path)),
            "--out",
            str(out),
            "--seconds",
            "1.5",
            "--size-px",
            "128",
        ],
    )
    assert res.exit_code == 0, res.output
    gif = Image.open(out)
    assert gif.n_frames == 16  # the start and 15 steps of 0.1 s
    assert gif.size == (128, 128)


def test_simulate_rejects_bad_arguments(tmp_path: Path) -> None:
    scene = str(_scene_file(tmp_path))
    for args in (["--seconds", "-1"], ["--fps", "0"], ["--traffic", "bogus"]):
        res = CliRunner().invoke(app, ["simulate", scene, "--out", str(tmp_path / "x.gif"), *args])
        assert res.exit_code == 2
        assert "error:" in res.output

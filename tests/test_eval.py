"""Closed-loop evaluation: metrics.json schema, recorded run, report, comparison, CLI errors."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cordillera.cli.eval import load_scenes
from cordillera.cli.main import app
from cordillera.errors import ConfigError
from cordillera.eval import EvalConfig, EvalResult, evaluate, load_run, write_report
from cordillera.eval.results import HEADLINE, MetricsTable
from cordillera.policy.base import ObservationRequest, PolicyInput
from cordillera.policy.meta_actions import LateralDecision, LongitudinalDecision
from cordillera.policy.plan import CausalObject, ChainOfCausation, Plan, to_ego_frame
from cordillera.scene.model import Scene
from cordillera.scene.store import save_scene
from scene_builders import Obj, straight_road_scene

SECONDS = 3.0


class LogReplayWithReasons:
    """Privileged log replay that states a CoC: keep distance before 1 s, resume after."""

    name = "test-log-replay"
    request = ObservationRequest(privileged=True)

    def __init__(self) -> None:
        self.calls = 0
        self.batch_sizes: list[int] = []

    def reset(self, scenes: Sequence[Scene]) -> None:
        self.calls = 0

    def act(self, inputs: PolicyInput) -> Plan:
        sim, state = inputs.sim, inputs.state
        assert sim is not None and state is not None
        self.calls += 1
        b = state.batch_size
        self.batch_sizes.append(b)
        rows, ego = torch.arange(b), sim.ego_index
        local = sim.log_plan(state, agents=ego.view(b, 1))[:, 0]
        waypoints = to_ego_frame(local, state.xy_m[rows, ego], state.heading_rad[rows, ego])
        late = float(state.step[0]) * sim.dt_s >= 1.0
        coc = ChainOfCausation(
            LongitudinalDecision.RESUME_SPEED if late else LongitudinalDecision.KEEP_DISTANCE,
            LateralDecision.KEEP_LANE,
            (CausalObject("obj1", "vehicle", "driving 30 m ahead", 1.0 + self.calls),),
        )
        zeros = torch.zeros(b, dtype=torch.long)
        return Plan(waypoints, zeros + 2, zeros, zeros - 1, coc=(coc,) * b)


def two_scenes() -> list[Scene]:
    a = straight_road_scene(Obj(0.0, 0.0, 10.0), [Obj(30.0, 0.0, 8.0)], num_steps=40)
    b = straight_road_scene(
        Obj(0.0, 3.5, 6.0), [Obj(25.0, 0.0, 0.0), Obj(-20.0, 0.0, 9.0)], num_steps=30
    )
    return [dataclasses.replace(a, scene_id="follow"), dataclasses.replace(b, scene_id="pass")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, EvalResult]:
    root = tmp_path_factory.mktemp("eval")
    cfg = EvalConfig(max_seconds=SECONDS, camera_snapshots=2, progress=False)
    return {
        traffic: evaluate(LogReplayWithReasons(), two_scenes(), traffic, root / traffic, cfg)
        for traffic in ("log", "idm")
    }


def test_metrics_json_has_the_schema_and_values_in_range(runs: dict[str, EvalResult]) -> None:
    data = json.loads((runs["log"].out_dir / "metrics.json").read_text())  # type: ignore[operator]
    agg = data["aggregate"]
    assert agg["policy"] == "test-log-replay" and agg["traffic"] == "log"
    assert agg["num_scenes"] == 2
    for key, _ in HEADLINE:
        assert key in agg
    assert [s["scene_id"] for s in data["scenes"]] == ["follow", "pass"]
    for entry in [agg, *data["scenes"]]:
        for key in ("epdms", "pdms", "alpasim_score", "at_fault_collision_rate", "offroad_rate"):
            assert 0.0 <= entry[key] <= 1.0, (key, entry[key])
        assert entry["progress_ratio"] is None or entry["progress_ratio"] >= 0.0
    # The human log replayed against logged traffic drives cleanly.
    assert agg["at_fault_collision_rate"] == 0.0 and agg["offroad_rate"] == 0.0
    assert agg["progress_ratio"] == pytest.approx(1.0, abs=0.05)
    assert MetricsTable.from_json(data).aggregate["epdms"] == agg["epdms"]


def test_policy_is_called_once_per_step_for_the_whole_batch() -> None:
    policy = LogReplayWithReasons()
    cfg = EvalConfig(max_seconds=1.0, repeats=2, progress=False)
    res = evaluate(policy, two_scenes(), "log", None, cfg)
    assert policy.calls == 10 and set(policy.batch_sizes) == {4}
    assert res.scene_of.tolist() == [0, 0, 1, 1]
    assert [s.num_rollouts for s in res.table.scenes] == [2, 2]
    assert res.out_dir is None


def test_the_run_records_plans_decisions_and_scene_ends(runs: dict[str, EvalResult]) -> None:
    res = runs["log"]
    saved = load_run(res.out_dir)  # type: ignore[arg-type]
    a = saved.arrays
    frames = round(SECONDS / 0.1) + 1
    assert a.xy_m.shape[:2] == (2, frames)
    # The log-replay plan's first waypoint, recorded in the local frame, is the next logged pose.
    logged = a.log_ego_valid[:, 1:]
    np.testing.assert_allclose(
        a.plan_xy_m[:, :-1, 0][logged], a.log_ego_xy_m[:, 1:][logged], atol=1e-3
    )
    # The shorter scene (30 steps) is scored on its own 30 frames only.
    assert [r.num_frames for r in saved.meta.rollouts] == [frames, 30]
    assert not bool(res.trace.valid[1, 29:].any()) and bool(res.trace.valid[1, 28])
    # A decision held with the same causes is recorded once (effect sizes jitter every call).
    for r in saved.meta.rollouts:
        assert [(d.step, d.end_step, d.longitudinal) for d in r.decisions] == [
            (0, 10, "keep_distance"),
            (10, r.num_frames, "resume_speed"),
        ]
        assert "vehicle obj1" in r.decisions[0].text
        assert len(r.snapshots) == 2 and (saved.path / r.snapshots[1].file).is_file()


def test_report_is_self_contained_with_scenes_and_images(runs: dict[str, EvalResult]) -> None:
    html = (runs["idm"].out_dir / "report.html").read_text()  # type: ignore[operator]
    for scene_id in ("follow", "pass"):
        assert f'"scene_id":"{scene_id}"' in html
    assert html.count("data:image/jpeg;base64,") == 4  # 2 scenes x 2 snapshots
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "@import" not in html
    assert "resume speed" in html or "resume_speed" in html


def test_report_compares_runs_side_by_side(runs: dict[str, EvalResult], tmp_path: Path) -> None:
    out = tmp_path / "compare.html"
    dirs = [str(runs[t].out_dir) for t in ("log", "idm")]
    result = CliRunner().invoke(app, ["report", *dirs, "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "test-log-replay (log)" in html and "test-log-replay (idm)" in html
    found = re.search(r'id="report-data"[^>]*>(.*?)</script>', html, re.S)
    assert found is not None
    payload = json.loads(found[1])
    assert len(payload["runs"]) == 2
    assert all(len(s["panels"]) == 2 and all(s["panels"]) for s in payload["scenes"])
    assert write_report([dirs[0]], tmp_path / "one.html").stat().st_size < out.stat().st_size


def test_unknown_policy_is_a_clean_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "--policy", "no-such-policy", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "error:" in result.output and "no-such-policy" in result.output
    assert "Traceback" not in result.output


def test_scenes_option_takes_files_and_folders_and_rejects_duplicates(tmp_path: Path) -> None:
    files = [save_scene(s, tmp_path / "scenes") for s in two_scenes()]
    assert [s.scene_id for s in load_scenes([str(tmp_path / "scenes")])] == ["follow", "pass"]
    assert len(load_scenes([str(f) for f in files])) == 2
    with pytest.raises(ConfigError, match="follow"):
        load_scenes([str(tmp_path / "scenes"), str(files[0])])


def test_report_of_a_folder_that_is_no_run_is_a_clean_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 2 and "error:" in result.output


@pytest.mark.parametrize(
    "field, value",
    [("repeats", 0), ("max_seconds", -1.0), ("max_seconds", math.inf), ("camera_snapshots", -1)],
)
def test_config_rejects_bad_values_naming_them(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        EvalConfig(**{field: value})  # type: ignore[arg-type]

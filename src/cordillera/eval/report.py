"""A self-contained HTML report of one or several evaluation runs, side by side.

``write_report(run_dirs, out)`` reads run folders (:mod:`cordillera.eval.results`) and fills
``templates/report.html`` with ``report.css``, ``report.js`` and one JSON payload inlined,
camera snapshots as data URIs, nothing fetched from a network. Per scene the page shows a
bird's-eye player (the ego's plan over the simulated states, on the vector map), a timeline of
the plan's meta-actions, the decisions and their Chain-of-Causation texts, camera-ring
snapshots and the metric breakdown; with several runs, one panel per run under one shared
time slider.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cordillera.errors import CordilleraError
from cordillera.eval.results import (
    HEADLINE,
    LOWER_IS_BETTER,
    RolloutMeta,
    SavedRun,
    SceneMetrics,
    load_run,
)
from cordillera.policy.meta_actions import LaneAction, LateralAction, LongitudinalAction

VIEW_KEEP_M = 70.0
"""Objects farther than this from the ego are left out of a frame (the view spans 40 m,
zoomable to 120 m): they dominate the payload and are never drawn."""
PLAN_POINT_SPACING_S = 0.5
"""Plan waypoints kept for drawing: one every half second (the player dots every second)."""

METRIC_GROUPS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("scores", (("epdms", "EPDMS"), ("pdms", "PDMS"), ("alpasim_score", "AlpaSim score"))),
    (
        "NAVSIM sub-scores",
        (
            ("no_at_fault_collision", "no at-fault collision"),
            ("drivable_area_compliance", "drivable area compliance"),
            ("driving_direction_compliance", "driving direction compliance"),
            ("traffic_light_compliance", "traffic light compliance"),
            ("ego_progress", "ego progress"),
            ("time_to_collision", "time to collision"),
            ("lane_keeping", "lane keeping"),
            ("history_comfort", "history comfort"),
            ("extended_comfort", "extended comfort"),
        ),
    ),
    (
        "events (1 = happened)",
        (
            ("at_fault_collision", "at-fault collision"),
            ("offroad", "off-road"),
            ("overlap", "overlap (Waymax)"),
        ),
    ),
    (
        "progress and log",
        (
            ("progress_ratio", "route progress / human's"),
            ("distance_to_log_mean", "mean distance to log (m)"),
            ("distance_to_log_max", "max distance to log (m)"),
            ("log_divergence", "log divergence (m)"),
        ),
    ),
)
REPORT_LABELS = {
    "alpasim_score": "AlpaSim score",
    "at_fault_collision_rate": "at-fault collisions",
    "offroad_rate": "off-road",
    "progress_ratio": "progress ratio",
}
"""Longer headline labels where the page has room (the terminal table is 80 columns)."""
_UNITS = {"distance_to_log_mean", "distance_to_log_max", "log_divergence"}
_VOCAB = {"longitudinal": LongitudinalAction, "lateral": LateralAction, "lane": LaneAction}


def _r(x: npt.NDArray[Any], digits: int = 2) -> list[float]:
    return np.round(np.asarray(x, np.float64), digits).ravel().tolist()


def _segments(labels: npt.NDArray[np.int8], names: Sequence[str]) -> list[list[Any]]:
    """``[start, end, name]`` runs of equal labels in ``(F,)`` (negative labels: no run)."""
    if len(labels) == 0:
        return []
    starts = np.concatenate([[0], np.nonzero(np.diff(labels))[0] + 1])
    ends = np.concatenate([starts[1:], [len(labels)]])
    return [
        [int(s), int(e), names[int(labels[s])]]
        for s, e in zip(starts, ends, strict=True)
        if 0 <= int(labels[s]) < len(names)
    ]


def _frames(run: SavedRun, r: RolloutMeta) -> list[list[float]]:
    """Per frame, flat ``[object, x, y, heading, ...]`` of the objects near the ego."""
    a, f = run.arrays, r.num_frames
    xy, heading = a.xy_m[r.row, :f], a.heading_rad[r.row, :f]
    ego = int(a.ego_index[r.row])
    dist = np.linalg.norm(xy - xy[:, ego : ego + 1], axis=-1)
    near = a.valid[r.row, :f] & (dist < VIEW_KEEP_M)
    near[:, ego] = False
    t_idx, obj = np.nonzero(near)
    rows = np.stack([obj, xy[t_idx, obj, 0], xy[t_idx, obj, 1], heading[t_idx, obj]], 1)
    rows = np.round(rows.astype(np.float64), 2)
    splits = np.searchsorted(t_idx, np.arange(1, f))
    return [chunk.ravel().tolist() for chunk in np.split(rows, splits)]


def _plans(run: SavedRun, r: RolloutMeta, ego_xy: npt.NDArray[np.float32]) -> list[list[float]]:
    """Per frame, the plan as flat points: the ego first, then one every half second."""
    plans = run.arrays.plan_xy_m[r.row, : r.num_frames]  # (F, K, 2)
    every = max(1, round(PLAN_POINT_SPACING_S / run.meta.dt_s))
    idx = np.arange(every - 1, plans.shape[1], every)
    if idx[-1] != plans.shape[1] - 1:
        idx = np.append(idx, plans.shape[1] - 1)
    pts = np.concatenate([ego_xy[:, None, :], plans[:, idx]], 1)
    return np.round(pts.reshape(len(pts), -1).astype(np.float64), 2).tolist()


def _image_uri(path: Path) -> str:
    mime = "image/jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _panel(run: SavedRun, r: RolloutMeta, metrics: SceneMetrics | None) -> dict[str, Any]:
    """Everything the player draws for rollout ``r`` of ``run``."""
    a, row, f = run.arrays, r.row, r.num_frames
    ego = int(a.ego_index[row])
    ego_xy = a.xy_m[row, :f, ego]
    ego_xyh = np.concatenate([ego_xy, a.heading_rad[row, :f, ego, None]], 1)
    segments = {
        name: _segments(a.meta_actions[row, :f, k], [m.text for m in vocab])
        for k, (name, vocab) in enumerate(_VOCAB.items())
    }
    ev = a.events[row, :f]
    ev_frames = np.nonzero(ev)[0]
    hit = a.collision_object[row, :f]
    sig_ok = a.signal_valid[row]
    log_ok = a.log_ego_valid[row]
    return {
        "ego_object": ego,
        "types": a.object_type[row].tolist(),
        "sizes": _r(a.size_lw_m[row]),
        "ego": _r(ego_xyh),
        "speed": _r(a.ego_speed_mps[row, :f]),
        "frames": _frames(run, r),
        "plan": _plans(run, r, ego_xy),
        "log": _r(a.log_ego_xy_m[row][log_ok]),
        "segments": segments,
        "events": [[int(i), int(ev[i]), int(hit[i])] for i in ev_frames],
        "signals": {
            "xy": _r(a.signal_xy_m[row][sig_ok]),
            "states": ["".join(map(str, s)) for s in a.signal_state[row][sig_ok][:, :f].tolist()],
        },
        "decisions": [
            {
                "frame": d.step,
                "end": d.end_step,
                "time_s": d.time_s,
                "longitudinal": d.longitudinal,
                "lateral": d.lateral,
                "text": d.text,
            }
            for d in r.decisions
        ],
        "cams": [
            {"frame": s.frame, "time_s": s.time_s, "src": _image_uri(run.path / s.file)}
            for s in r.snapshots
            if (run.path / s.file).is_file()
        ],
        "metrics": dict(metrics.values) if metrics else {},
        "map": run.meta.maps[r.scene_index] if r.scene_index < len(run.meta.maps) else {},
    }


def _run_names(runs: Sequence[SavedRun]) -> list[str]:
    names = [f"{r.meta.policy} ({r.meta.traffic})" for r in runs]
    if len(set(names)) < len(names):
        names = [f"{n} — {r.path.name}" for n, r in zip(names, runs, strict=True)]
    return names


def _metric_groups(runs: Sequence[SavedRun]) -> list[list[Any]]:
    known = {k for _, items in METRIC_GROUPS for k, _ in items}
    present = {k for run in runs for s in run.table.scenes for k in s.values}
    groups: list[list[Any]] = [
        [g, [[k, label, k in _UNITS] for k, label in items if k in present]]
        for g, items in METRIC_GROUPS
    ]
    other = sorted(present - known - {"at_fault_collision_rate", "offroad_rate"})
    if other:  # metrics registered later still show up
        groups.append(["other", [[k, k.replace("_", " "), False] for k in other]])
    return [g for g in groups if g[1]]


def build_payload(runs: Sequence[SavedRun], title: str | None = None) -> dict[str, Any]:
    """The report's JSON: runs, their aggregates, and per scene one panel per run (the first
    repeat of the scene; None where a run lacks the scene)."""
    if not runs:
        raise CordilleraError("no runs to report")
    dts = {round(r.meta.dt_s, 9) for r in runs}
    if len(dts) > 1:
        raise CordilleraError(
            f"runs have different time steps {sorted(dts)}; compare like with like"
        )
    names = _run_names(runs)
    order: list[tuple[str, str]] = []
    for run in runs:
        for r in run.meta.rollouts:
            if r.repeat == 0 and (r.scene_id, r.source) not in order:
                order.append((r.scene_id, r.source))
    scenes = []
    for scene_id, source in order:
        panels: list[dict[str, Any] | None] = []
        for run in runs:
            first = [x for x in run.meta.rollouts if x.scene_id == scene_id and x.repeat == 0]
            m = next((s for s in run.table.scenes if s.scene_id == scene_id), None)
            panels.append(_panel(run, first[0], m) if first else None)
        scenes.append({"scene_id": scene_id, "source": source, "panels": panels})
    policies = " vs ".join(names)
    return {
        "title": title or f"Closed-loop evaluation — {policies}",
        "subtitle": (
            f"{len(order)} scenes · {len(runs)} run{'s' if len(runs) > 1 else ''} · "
            f"generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}"
        ),
        "footer": "Cordillera closed-loop evaluation report. Runs: "
        + "; ".join(f"{n}: {r.path}" for n, r in zip(names, runs, strict=True)),
        "dt_s": runs[0].meta.dt_s,
        "headline": [[k, REPORT_LABELS.get(k, label)] for k, label in HEADLINE],
        "overview": [
            ["epdms", "EPDMS"],
            ["alpasim_score", "AlpaSim"],
            ["progress_ratio", "progress"],
        ],
        "lower_is_better": sorted(LOWER_IS_BETTER),
        "metric_groups": _metric_groups(runs),
        "runs": [
            {
                "name": n,
                "policy": r.meta.policy,
                "traffic": r.meta.traffic,
                "path": str(r.path),
                "num_scenes": len(r.table.scenes),
                "aggregate": dict(r.table.aggregate),
            }
            for n, r in zip(names, runs, strict=True)
        ],
        "scenes": scenes,
    }


def render_html(payload: dict[str, Any]) -> str:
    """``templates/report.html`` with its stylesheet, script and ``payload`` inlined (``</``
    escaped in the JSON so no string in it can end the script element)."""
    folder = resources.files("cordillera.eval").joinpath("templates")
    page = folder.joinpath("report.html").read_text(encoding="utf-8")
    for marker, name in (("__REPORT_CSS__", "report.css"), ("__REPORT_JS__", "report.js")):
        page = page.replace(marker, folder.joinpath(name).read_text(encoding="utf-8"), 1)
    data = json.dumps(payload, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    page = page.replace("__TITLE__", html.escape(payload["title"]), 1)
    return page.replace("__REPORT_DATA__", data, 1)


def write_report(run_dirs: Sequence[str | Path], out: str | Path, title: str | None = None) -> Path:
    """Write the report of ``run_dirs`` (one, or several side by side) to ``out``."""
    runs = [load_run(Path(d)) for d in run_dirs]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render_html(build_payload(runs, title)), encoding="utf-8")
    tmp.replace(out)
    return out

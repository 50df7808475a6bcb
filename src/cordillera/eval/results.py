"""What an evaluation run leaves in its folder, and the table printed for it.

A run folder holds (no pickle anywhere, so a run from a stranger is safe to open):

* ``metrics.json`` — :class:`MetricsTable`: ``aggregate`` (every registered metric averaged
  over valid rollouts, the headline rates, ``policy``, ``traffic``, ``num_scenes``) and
  ``scenes`` (one entry per scene with the same metric keys, averaged over its repeats).
  Undefined values (e.g. progress on a scene whose human barely moved) are ``null``.
* ``run.json`` — :class:`RunMeta`: provenance, per-rollout decisions (CoC texts), camera
  snapshots, the vector map around each scene's ego.
* ``trace.safetensors`` — :class:`RunArrays`: per-frame states, plans, meta-actions, events.
* ``cameras/*.jpg`` — the camera-ring snapshots.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from rich import box
from rich.console import Console
from rich.table import Table
from safetensors.numpy import load_file, save_file

from cordillera.errors import CordilleraError
from cordillera.metrics.registry import MetricResult, summarize

SCHEMA_VERSION = 1
METRICS_FILE = "metrics.json"
RUN_FILE = "run.json"
ARRAYS_FILE = "trace.safetensors"

RATES = {"at_fault_collision_rate": "at_fault_collision", "offroad_rate": "offroad"}
"""Headline rates and the 0/1 per-rollout metric whose mean they are."""
HEADLINE: tuple[tuple[str, str], ...] = (
    ("epdms", "EPDMS"),
    ("pdms", "PDMS"),
    ("alpasim_score", "AlpaSim"),
    ("at_fault_collision_rate", "collided"),
    ("offroad_rate", "offroad"),
    ("progress_ratio", "progress"),
)
"""Keys every entry of ``metrics.json`` carries, with a short label for tables."""
LOWER_IS_BETTER = frozenset(
    {"at_fault_collision_rate", "offroad_rate", "at_fault_collision", "offroad", "overlap"}
    | {"distance_to_log_mean", "distance_to_log_max", "log_divergence"}
)

EVENT_FLAGS = {
    "collision": 1,
    "at_fault_collision": 2,
    "offroad": 4,
    "red_light": 8,
    "against_traffic": 16,
    "ttc": 32,
}
"""Bits of :attr:`RunArrays.events`."""

Values = Mapping[str, float | None]
MapLayers = dict[str, list[list[float]]]
"""Named layers of flat ``[x0, y0, x1, y1, ...]`` polylines in the scene's local frame."""


class RunFormatError(CordilleraError):
    """A run folder that is missing files or holds malformed ones."""


def _num(x: float) -> float | None:
    return None if math.isnan(x) else round(float(x), 6)


@dataclass(frozen=True)
class SceneMetrics:
    """Metrics of one scene: the mean over its repeats of every metric (None if undefined)."""

    scene_id: str
    source: str
    num_rollouts: int
    values: Values

    def to_json(self) -> dict[str, Any]:
        return {
            "scene_id": self.scene_id,
            "source": self.source,
            "num_rollouts": self.num_rollouts,
            **self.values,
        }


@dataclass(frozen=True)
class MetricsTable:
    """The content of ``metrics.json``."""

    policy: str
    traffic: str
    num_rollouts: int
    aggregate: Values
    scenes: tuple[SceneMetrics, ...]

    def to_json(self) -> dict[str, Any]:
        head = {"policy": self.policy, "traffic": self.traffic, "num_scenes": len(self.scenes)}
        return {
            "schema_version": SCHEMA_VERSION,
            "policy": self.policy,
            "traffic": self.traffic,
            "aggregate": {**head, "num_rollouts": self.num_rollouts, **self.aggregate},
            "scenes": [s.to_json() for s in self.scenes],
        }

    @staticmethod
    def from_json(data: Mapping[str, Any], path: Path | None = None) -> MetricsTable:
        """Inverse of :meth:`to_json`; raises :class:`RunFormatError` naming a missing key."""
        where = f"{path}: " if path else ""
        try:
            agg = dict(data["aggregate"])
            scenes = []
            for s in data["scenes"]:
                s = dict(s)
                sid, source, n = s.pop("scene_id"), s.pop("source", ""), s.pop("num_rollouts", 1)
                scenes.append(SceneMetrics(str(sid), str(source), int(n), s))
            policy, traffic = str(agg.pop("policy")), str(agg.pop("traffic"))
            num_rollouts = int(agg.pop("num_rollouts", len(scenes)))
            agg.pop("num_scenes", None)
        except (KeyError, TypeError, ValueError) as e:
            raise RunFormatError(f"{where}malformed metrics.json: {e!r}") from None
        for key, _ in HEADLINE:
            if key not in agg:
                raise RunFormatError(f"{where}metrics.json aggregate lacks {key!r}")
        return MetricsTable(policy, traffic, num_rollouts, agg, tuple(scenes))


def metrics_table(
    results: Mapping[str, MetricResult],
    scene_of: torch.Tensor,
    scene_ids: Sequence[str],
    sources: Sequence[str],
    policy: str,
    traffic: str,
) -> MetricsTable:
    """Aggregate per-rollout metrics: per scene (mean over its valid repeats, one scatter per
    metric) and overall (mean over valid rollouts). ``scene_of`` ``(B,)`` indexes
    ``scene_ids``."""
    u = len(scene_ids)
    per_scene: dict[str, list[float | None]] = {}
    for name, r in results.items():
        w = r.valid.float()
        total = torch.zeros(u).index_add_(0, scene_of.cpu(), (r.value * w).cpu())
        count = torch.zeros(u).index_add_(0, scene_of.cpu(), w.cpu())
        means = (total / count.clamp_min(1)).tolist()
        per_scene[name] = [
            _num(m) if c > 0 else None for m, c in zip(means, count.tolist(), strict=True)
        ]
    for alias, name in RATES.items():
        if name in per_scene:
            per_scene[alias] = per_scene[name]
    agg: dict[str, float | None] = {k: _num(v) for k, v in summarize(results).items()}
    for alias, name in RATES.items():
        if name in agg:
            agg[alias] = agg[name]
    missing = [k for k, _ in HEADLINE if k not in agg]
    if missing:
        raise CordilleraError(f"metrics {missing} were not computed")
    rollouts = torch.bincount(scene_of.cpu(), minlength=u).tolist()
    scenes = tuple(
        SceneMetrics(
            scene_ids[i],
            sources[i],
            int(rollouts[i]),
            {k: v[i] for k, v in per_scene.items()},
        )
        for i in range(u)
    )
    return MetricsTable(policy, traffic, int(scene_of.shape[0]), agg, scenes)


def _fmt(key: str, v: float | None) -> str:
    if v is None:
        return "[dim]—[/]"
    text = f"{v:.3f}"
    if key in RATES and v > 0:
        return f"[red]{text}[/]"
    return text


def _table(title: str, first: str) -> Table:
    t = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    t.add_column(first, style="cyan", no_wrap=True)
    for _, label in HEADLINE:
        t.add_column(label, justify="right")
    return t


def print_table(table: MetricsTable, console: Console | None = None) -> None:
    """Per-scene rows and a bold aggregate row of the headline metrics."""
    con = console or Console()
    t = _table(f"{table.policy} — {table.traffic} traffic", "scene")
    for s in table.scenes:
        t.add_row(s.scene_id, *(_fmt(k, s.values.get(k)) for k, _ in HEADLINE))
    t.add_section()
    t.add_row(
        f"[bold]mean of {len(table.scenes)}[/]",
        *(f"[bold]{_fmt(k, table.aggregate.get(k))}[/]" for k, _ in HEADLINE),
    )
    con.print(t)


def print_comparison(tables: Sequence[MetricsTable], console: Console | None = None) -> None:
    """One row per run: the aggregate headline metrics."""
    t = _table("runs", "run")
    for tb in tables:
        t.add_row(
            f"{tb.policy} · {tb.traffic}",
            *(_fmt(k, tb.aggregate.get(k)) for k, _ in HEADLINE),
        )
    (console or Console()).print(t)


@dataclass(frozen=True)
class Decision:
    """A decision of one rollout with its Chain-of-Causation: held (same decisions, same
    causes) from ``step`` until ``end_step`` (exclusive); ``text`` is the first rendering."""

    step: int
    end_step: int
    time_s: float
    longitudinal: str | None
    lateral: str | None
    text: str
    causes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """A camera-ring picture of a rollout at one frame; ``file`` is relative to the run."""

    frame: int
    time_s: float
    file: str


@dataclass(frozen=True)
class RolloutMeta:
    """One rollout of the run: which scene and repeat, how many frames lie inside the scene's
    log (the batch runs to the longest scene; later frames are not scored), what it decided."""

    row: int
    scene_index: int
    scene_id: str
    source: str
    repeat: int
    num_frames: int
    decisions: tuple[Decision, ...] = ()
    snapshots: tuple[Snapshot, ...] = ()


@dataclass(frozen=True)
class RunMeta:
    """Provenance and per-rollout records of a run (``run.json``).

    Attributes:
        maps: per scene (``scene_index``), the vector map around its ego (:data:`MapLayers`).
        timings_s: wall seconds of the phases (``simulate``, ``cameras``, ``write``...).
    """

    policy: str
    traffic: str
    dt_s: float
    created_utc: str
    version: str
    rollouts: tuple[RolloutMeta, ...]
    maps: tuple[MapLayers, ...] = ()
    camera_rig: str = ""
    timings_s: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **dataclasses.asdict(self)}

    @staticmethod
    def from_json(data: Mapping[str, Any], path: Path | None = None) -> RunMeta:
        try:
            rollouts = tuple(
                RolloutMeta(
                    **{
                        **r,
                        "decisions": tuple(
                            Decision(**{**d, "causes": tuple(d.get("causes", ()))})
                            for d in r.get("decisions", ())
                        ),
                        "snapshots": tuple(Snapshot(**s) for s in r.get("snapshots", ())),
                    }
                )
                for r in data["rollouts"]
            )
            rest = {k: v for k, v in data.items() if k not in ("rollouts", "schema_version")}
            rest["maps"] = tuple(rest.get("maps", ()))
            return RunMeta(rollouts=rollouts, **rest)
        except (KeyError, TypeError, ValueError) as e:
            raise RunFormatError(f"{path or 'run.json'}: malformed run record: {e!r}") from None


@dataclass(frozen=True, eq=False)
class RunArrays:
    """Per-frame arrays of B rollouts over F frames (frame 0 is the initial state; frame f is
    the state after f steps). Positions in each scene's local frame, metres and radians.

    Attributes:
        xy_m: ``(B, F, N, 2)`` float32 every object; heading_rad ``(B, F, N)``;
            valid ``(B, F, N)`` bool.
        ego_speed_mps: ``(B, F)`` float32.
        plan_xy_m: ``(B, F, K, 2)`` float32 the ego's plan decided at frame f, local frame
            (the last frame repeats the last decision).
        meta_actions: ``(B, F, 3)`` int8 longitudinal, lateral, lane label of that plan.
        events: ``(B, F)`` uint8 :data:`EVENT_FLAGS` of the step ending at frame f.
        collision_object: ``(B, F)`` int32 object the ego touches at frame f, -1 for none.
        log_ego_xy_m: ``(B, F, 2)`` float32 the ego's logged position; log_ego_valid ``(B, F)``.
        size_lw_m: ``(B, N, 2)`` float32; object_type ``(B, N)`` int8; ego_index ``(B,)`` int64.
        signal_xy_m: ``(B, S, 2)`` float32 stop points; signal_state ``(B, S, F)`` int8;
            signal_valid ``(B, S)`` bool.
    """

    xy_m: npt.NDArray[np.float32]
    heading_rad: npt.NDArray[np.float32]
    valid: npt.NDArray[np.bool_]
    ego_speed_mps: npt.NDArray[np.float32]
    plan_xy_m: npt.NDArray[np.float32]
    meta_actions: npt.NDArray[np.int8]
    events: npt.NDArray[np.uint8]
    collision_object: npt.NDArray[np.int32]
    log_ego_xy_m: npt.NDArray[np.float32]
    log_ego_valid: npt.NDArray[np.bool_]
    size_lw_m: npt.NDArray[np.float32]
    object_type: npt.NDArray[np.int8]
    ego_index: npt.NDArray[np.int64]
    signal_xy_m: npt.NDArray[np.float32]
    signal_state: npt.NDArray[np.int8]
    signal_valid: npt.NDArray[np.bool_]

    def __post_init__(self) -> None:
        b, f, n, _ = self.xy_m.shape
        s = self.signal_xy_m.shape[1]
        want = {
            "heading_rad": (b, f, n),
            "valid": (b, f, n),
            "ego_speed_mps": (b, f),
            "meta_actions": (b, f, 3),
            "events": (b, f),
            "collision_object": (b, f),
            "log_ego_xy_m": (b, f, 2),
            "log_ego_valid": (b, f),
            "size_lw_m": (b, n, 2),
            "object_type": (b, n),
            "ego_index": (b,),
            "signal_state": (b, s, f),
            "signal_valid": (b, s),
        }
        for name, shape in want.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise RunFormatError(f"RunArrays.{name} has shape {got}, expected {shape}")
        if self.plan_xy_m.ndim != 4 or self.plan_xy_m.shape[:2] != (b, f):
            raise RunFormatError(f"RunArrays.plan_xy_m has shape {self.plan_xy_m.shape}")

    def save(self, path: Path) -> None:
        save_file({f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, str(path))

    @staticmethod
    def load(path: Path) -> RunArrays:
        try:
            data = load_file(str(path))
            return RunArrays(**{f.name: data[f.name] for f in dataclasses.fields(RunArrays)})
        except (OSError, KeyError, ValueError) as e:
            raise RunFormatError(f"{path}: unreadable run arrays: {e!r}") from None


@dataclass(frozen=True, eq=False)
class SavedRun:
    """A run folder read back."""

    path: Path
    table: MetricsTable
    meta: RunMeta
    arrays: RunArrays


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, allow_nan=False))
    tmp.replace(path)  # a killed run never leaves half a file behind


def save_run(out_dir: Path, table: MetricsTable, meta: RunMeta, arrays: RunArrays) -> None:
    """Write ``metrics.json``, ``run.json`` and ``trace.safetensors`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays.save(out_dir / ARRAYS_FILE)
    _write_json(out_dir / RUN_FILE, meta.to_json())
    _write_json(out_dir / METRICS_FILE, table.to_json())


def load_run(run_dir: Path) -> SavedRun:
    """Read a run folder; raises :class:`RunFormatError` naming what is missing."""
    files = {name: run_dir / name for name in (METRICS_FILE, RUN_FILE, ARRAYS_FILE)}
    for name, p in files.items():
        if not p.is_file():
            raise RunFormatError(f"{run_dir} is not an evaluation run: no {name}")
    try:
        metrics = json.loads(files[METRICS_FILE].read_text())
        meta = json.loads(files[RUN_FILE].read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise RunFormatError(f"{run_dir}: unreadable JSON: {e}") from None
    return SavedRun(
        run_dir,
        MetricsTable.from_json(metrics, files[METRICS_FILE]),
        RunMeta.from_json(meta, files[RUN_FILE]),
        RunArrays.load(files[ARRAYS_FILE]),
    )

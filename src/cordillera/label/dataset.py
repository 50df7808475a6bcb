"""The labelled dataset on disk: one Parquet shard per scene, PNG camera frames beside them.

Layout (``docs/dataset.md`` has the column reference)::

    DATASET/dataset.json                                  format, schema version, labeler
                                                          config, counts (no timestamps)
    DATASET/data/<scene>.parquet                          one row per LabelSample
    DATASET/images/<scene>/<step>/<camera>_<frame>.png    camera frames, paths in `frames`

A scene is *done* when its shard exists: :meth:`DatasetWriter.write_scene` writes the images
first and the shard last, to a temporary name then renamed (the rename is the commit point), so
an interrupted run leaves at most an image folder without a shard, which the resumed run
replaces. Every write is deterministic (fixed Parquet and PNG settings, no timestamps), so an
interrupted and resumed run gives the same bytes as an uninterrupted one.

Every shard has the one schema :data:`LABEL_SCHEMA`, so Hugging Face ``datasets`` loads the
folder as one table (:func:`load_label_dataset`); :func:`read_samples` is the exact inverse of
the writer.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from cordillera.errors import CordilleraError
from cordillera.label.grounding import KeyframeImages
from cordillera.label.record import CameraFrameRef, CauseEvidence, FloatArray, LabelSample
from cordillera.policy.plan import ChainOfCausation, Grounding, PlanError

if TYPE_CHECKING:
    import datasets

DATASET_FORMAT = "cordillera-label"
SCHEMA_VERSION = 2
"""Bumped whenever a column is added, removed or changes type."""
INDEX_FILE = "dataset.json"
DATA_DIR = "data"
IMAGES_DIR = "images"
PNG_COMPRESS_LEVEL = 6
"""zlib level of every PNG (fixed: the bytes of an image depend only on its pixels)."""
_SCENE_KEY = b"cordillera.scene_id"


class DatasetError(CordilleraError):
    """A labelled dataset on disk (or a sample written to it) is malformed.

    Attributes:
        path: the offending file, or ``None``.
        field: the column (or dotted sub-field) at fault, or ``""``.
        reason: what is wrong, with the bad value where one exists.
    """

    def __init__(self, reason: str, *, field: str = "", path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        self.field = field
        self.reason = reason
        where = [w for w in (self.path and f"file {self.path}", field and f"field {field}") if w]
        super().__init__(f"{', '.join(where)}: {reason}" if where else reason)


_POINTS = pa.list_(pa.list_(pa.float32()))  # (P, 2) arrays, row-major
_STRINGS = pa.list_(pa.string())


def _req(name: str, type_: pa.DataType) -> pa.Field:
    return pa.field(name, type_, nullable=False)


EVIDENCE_TYPE = pa.struct(
    [
        _req("cause_id", pa.string()),
        _req("kind", pa.string()),
        _req("intervention", pa.string()),
        _req("effect", pa.float64()),
        _req("min_speed_factual_mps", pa.float64()),
        _req("min_speed_counterfactual_mps", pa.float64()),
        _req("decision_changed", pa.bool_()),
    ]
)
GROUNDING_TYPE = pa.struct(
    [
        _req("camera", pa.string()),
        _req("object_id", pa.string()),
        _req("bbox_xyxy", pa.list_(pa.float64(), 4)),
        _req("visible_fraction", pa.float64()),
    ]
)
FRAME_TYPE = pa.struct(
    [
        _req("camera", pa.string()),
        _req("frame", pa.int32()),
        _req("time_offset_s", pa.float64()),
        _req("path", pa.string()),
    ]
)
LABEL_SCHEMA = pa.schema(
    [
        _req("sample_id", pa.string()),
        _req("scene_id", pa.string()),
        _req("source", pa.string()),
        _req("time_s", pa.float64()),
        _req("step", pa.int32()),
        _req("keyframe_reason", pa.string()),
        _req("ego_history_ego_m", _POINTS),
        _req("ego_speed_mps", pa.float64()),
        _req("ego_accel_mps2", pa.float64()),
        _req("ego_yaw_rate_rps", pa.float64()),
        _req("future_ego_m", _POINTS),
        _req("future_valid_steps", pa.int32()),
        _req("route_ego_m", _POINTS),
        _req("meta_longitudinal", _STRINGS),
        _req("meta_lateral", _STRINGS),
        _req("meta_lane", _STRINGS),
        pa.field("decision_longitudinal", pa.string(), nullable=True),
        pa.field("decision_lateral", pa.string(), nullable=True),
        _req("coc", pa.string()),
        _req("coc_text", pa.string()),
        _req("causes", _STRINGS),
        _req("evidence", pa.list_(EVIDENCE_TYPE)),
        _req("groundings", pa.list_(GROUNDING_TYPE)),
        _req("valid", pa.bool_()),
        _req("valid_reason", pa.string()),
        _req("rig", pa.string()),
        _req("frames", pa.list_(FRAME_TYPE)),
        _req("designed_cause_object_id", pa.string()),
        _req("designed_decision", pa.string()),
        _req("future_source", pa.string()),
    ]
)
"""The one schema of every shard. Scalars are float64 / int32 so that a Python float round-trips
exactly; point arrays are float32 as in :class:`LabelSample`."""


# ---------- names and paths ----------


def safe_name(name: str) -> str:
    """``name`` as a file name: itself when it is made of ``[A-Za-z0-9._-]`` (and short), else
    a readable sanitised prefix plus 8 hex digits of its SHA-1, so distinct names never
    collide."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    if safe == name and 0 < len(name) <= 100:
        return name
    return f"{safe[:80] or 'x'}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def image_path(scene_id: str, step: int, camera: str, frame: int) -> str:
    """Path of one camera frame relative to the dataset root (POSIX separators)."""
    return f"{IMAGES_DIR}/{safe_name(scene_id)}/{step:05d}/{safe_name(camera)}_{frame}.png"


def shard_name(scene_id: str) -> str:
    return f"{DATA_DIR}/{safe_name(scene_id)}.parquet"


def encode_png(rgb: np.ndarray) -> bytes:
    """Deterministic PNG bytes of a ``(H, W, 3)`` uint8 image (no timestamp chunk, fixed
    compression)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(
        buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL, optimize=False
    )
    return buf.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a hidden temporary beside ``path``, flush it to disk, rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ---------- LabelSample <-> row ----------


def _points(a: FloatArray, field: str, sample_id: str) -> list[list[float]]:
    arr = np.asarray(a)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise DatasetError(f"sample {sample_id}: shape {arr.shape}, expected (P, 2)", field=field)
    if not np.isfinite(arr).all():
        raise DatasetError(f"sample {sample_id}: non-finite values", field=field)
    rows: list[list[float]] = arr.astype(np.float32).tolist()
    return rows


def sample_to_row(s: LabelSample) -> dict[str, Any]:
    """One :data:`LABEL_SCHEMA` row of ``s`` (raises :class:`DatasetError` on bad arrays)."""
    sid = s.sample_id
    return {
        "sample_id": sid,
        "scene_id": s.scene_id,
        "source": s.source,
        "time_s": float(s.time_s),
        "step": int(s.step),
        "keyframe_reason": s.keyframe_reason,
        "ego_history_ego_m": _points(s.ego_history_ego_m, "ego_history_ego_m", sid),
        "ego_speed_mps": float(s.ego_speed_mps),
        "ego_accel_mps2": float(s.ego_accel_mps2),
        "ego_yaw_rate_rps": float(s.ego_yaw_rate_rps),
        "future_ego_m": _points(s.future_ego_m, "future_ego_m", sid),
        "future_valid_steps": int(s.future_valid_steps),
        "route_ego_m": _points(s.route_ego_m, "route_ego_m", sid),
        "meta_longitudinal": list(s.meta_longitudinal),
        "meta_lateral": list(s.meta_lateral),
        "meta_lane": list(s.meta_lane),
        "decision_longitudinal": s.decision_longitudinal,
        "decision_lateral": s.decision_lateral,
        "coc": json.dumps(s.coc.to_json(), sort_keys=True),
        "coc_text": s.coc_text,
        "causes": list(s.causes),
        "evidence": [dict(e.__dict__) for e in s.evidence],
        "groundings": [
            {**g.__dict__, "bbox_xyxy": [float(v) for v in g.bbox_xyxy]} for g in s.groundings
        ],
        "valid": bool(s.valid),
        "valid_reason": s.valid_reason,
        "rig": s.rig,
        "frames": [dict(f.__dict__) for f in s.frames],
        "designed_cause_object_id": s.designed_cause_object_id,
        "designed_decision": s.designed_decision,
        "future_source": s.future_source,
    }


def _array_2d(rows: list[list[float]]) -> FloatArray:
    if any(len(r) != 2 for r in rows):
        raise ValueError(f"rows of lengths {sorted({len(r) for r in rows})}, expected 2")
    return np.asarray(rows, np.float32).reshape(len(rows), 2)


def _convert(row: Mapping[str, Any], name: str, fn: Callable[[Any], Any]) -> Any:
    """``fn(row[name])``, any failure reported as a :class:`DatasetError` on that field."""
    try:
        return fn(row[name])
    except (TypeError, ValueError, KeyError, PlanError) as e:
        raise DatasetError(f"sample {row.get('sample_id')!r}: {e}", field=name) from None


def row_to_sample(row: Mapping[str, Any]) -> LabelSample:
    """Inverse of :func:`sample_to_row`."""

    def coc(text: str) -> ChainOfCausation:
        return ChainOfCausation.from_json(json.loads(text))

    def grounding(g: Mapping[str, Any]) -> Grounding:
        x0, y0, x1, y1 = (float(v) for v in g["bbox_xyxy"])
        return Grounding(g["camera"], g["object_id"], (x0, y0, x1, y1), g["visible_fraction"])

    return LabelSample(
        scene_id=row["scene_id"],
        source=row["source"],
        time_s=row["time_s"],
        step=row["step"],
        keyframe_reason=row["keyframe_reason"],
        ego_history_ego_m=_convert(row, "ego_history_ego_m", _array_2d),
        ego_speed_mps=row["ego_speed_mps"],
        ego_accel_mps2=row["ego_accel_mps2"],
        ego_yaw_rate_rps=row["ego_yaw_rate_rps"],
        future_ego_m=_convert(row, "future_ego_m", _array_2d),
        future_valid_steps=row["future_valid_steps"],
        route_ego_m=_convert(row, "route_ego_m", _array_2d),
        meta_longitudinal=tuple(row["meta_longitudinal"]),
        meta_lateral=tuple(row["meta_lateral"]),
        meta_lane=tuple(row["meta_lane"]),
        decision_longitudinal=row["decision_longitudinal"],
        decision_lateral=row["decision_lateral"],
        coc=_convert(row, "coc", coc),
        evidence=_convert(row, "evidence", lambda v: tuple(CauseEvidence(**e) for e in v)),
        groundings=_convert(row, "groundings", lambda v: tuple(grounding(g) for g in v)),
        valid=row["valid"],
        valid_reason=row["valid_reason"],
        rig=row["rig"],
        frames=_convert(row, "frames", lambda v: tuple(CameraFrameRef(**f) for f in v)),
        designed_cause_object_id=row["designed_cause_object_id"],
        designed_decision=row["designed_decision"],
        future_source=row["future_source"],
    )


# ---------- reading ----------


def _open_shard(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """The shard's table (all of :data:`LABEL_SCHEMA`'s columns, or ``columns``), checked
    against the schema: a missing column, a wrong type or a null in a required column raises
    :class:`DatasetError` naming the file and the column."""
    fields = [f for f in LABEL_SCHEMA if columns is None or f.name in columns]
    try:
        schema = pq.read_schema(path)
        for f in fields:
            if f.name not in schema.names:
                raise DatasetError("missing column", field=f.name, path=path)
            got = schema.field(f.name).type
            if got != f.type:
                raise DatasetError(f"type {got}, expected {f.type}", field=f.name, path=path)
        table = pq.read_table(path, columns=[f.name for f in fields])
    except (OSError, pa.ArrowException) as e:
        raise DatasetError(f"not a readable Parquet file: {e}", path=path) from None
    for f in fields:
        nulls = table.column(f.name).null_count
        if not f.nullable and nulls:
            raise DatasetError(f"{nulls} null values", field=f.name, path=path)
    return table


def shard_paths(root: str | Path) -> list[Path]:
    """The dataset's shards, sorted by name (the dataset's row order)."""
    return sorted((Path(root) / DATA_DIR).glob("*.parquet"))


def read_shard(path: str | Path) -> list[LabelSample]:
    """The samples of one shard, in written order."""
    p = Path(path)
    try:
        return [row_to_sample(r) for r in _open_shard(p).to_pylist()]
    except DatasetError as e:
        raise DatasetError(e.reason, field=e.field, path=p) from None


def read_samples(root: str | Path) -> list[LabelSample]:
    """Every sample of the dataset at ``root``: shards by name, rows in written order."""
    if not (Path(root) / DATA_DIR).is_dir():
        raise DatasetError("no data/ folder: not a labelled dataset", path=root)
    return [s for p in shard_paths(root) for s in read_shard(p)]


def load_label_dataset(
    root: str | Path, cache_dir: str | Path | None = None, keep_in_memory: bool = False
) -> datasets.Dataset:
    """The dataset at ``root`` as one Hugging Face :class:`datasets.Dataset` (the ``train``
    split of its shards; image paths in ``frames`` are relative to ``root``)."""
    import datasets  # heavy import, only for callers that want it

    files = [str(p) for p in shard_paths(root)]
    if not files:
        raise DatasetError("no shards under data/", path=root)
    ds = datasets.load_dataset(
        "parquet",
        data_files={"train": files},
        split="train",
        cache_dir=None if cache_dir is None else str(cache_dir),
        keep_in_memory=keep_in_memory,
    )
    assert isinstance(ds, datasets.Dataset)  # a split of a plain load is a Dataset
    return ds


# ---------- writing ----------


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


class DatasetWriter:
    """Writes a labelled dataset one scene at a time; resumable (see the module doc).

    ``meta`` is the labeler's configuration, stored in ``dataset.json``; re-opening a dataset
    with a different ``meta`` raises :class:`DatasetError`, so one dataset never mixes
    configurations. Call :meth:`finalize` after the last scene to write the counts.
    """

    def __init__(self, root: str | Path, meta: Mapping[str, Any]) -> None:
        self.root = Path(root)
        try:
            self.meta: dict[str, Any] = json.loads(json.dumps(dict(meta), allow_nan=False))
        except (TypeError, ValueError) as e:
            raise DatasetError(f"labeler config is not plain JSON: {e}", field="meta") from None
        (self.root / DATA_DIR).mkdir(parents=True, exist_ok=True)
        (self.root / IMAGES_DIR).mkdir(exist_ok=True)
        # Files cut off before their rename by an interrupted run.
        for tmp in [*(self.root / DATA_DIR).glob(".*.tmp"), *self.root.glob(".*.tmp")]:
            tmp.unlink()
        index = self.root / INDEX_FILE
        if index.is_file():
            old = self._read_index(index)
            if old.get("schema_version") != SCHEMA_VERSION:
                raise DatasetError(
                    f"schema version {old.get('schema_version')!r}, this writer writes "
                    f"{SCHEMA_VERSION}",
                    field="schema_version",
                    path=index,
                )
            if old.get("meta") != self.meta:
                keys = sorted(
                    k
                    for k in set(self.meta) | set(old.get("meta") or {})
                    if self.meta.get(k) != (old.get("meta") or {}).get(k)
                )
                raise DatasetError(
                    f"written with another labeler config (differs in {keys}); use a new folder",
                    field="meta",
                    path=index,
                )
        else:
            self.finalize()

    @staticmethod
    def _read_index(path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise DatasetError(f"unreadable: {e}", path=path) from None
        if not isinstance(data, dict) or data.get("format") != DATASET_FORMAT:
            raise DatasetError(f"not a {DATASET_FORMAT} index", field="format", path=path)
        return data

    def shard_path(self, scene_id: str) -> Path:
        return self.root / shard_name(scene_id)

    def is_done(self, scene_id: str) -> bool:
        """Whether ``scene_id`` is labelled (its shard exists)."""
        return self.shard_path(scene_id).is_file()

    def done_scene_ids(self) -> set[str]:
        """Ids of the labelled scenes (from each shard's footer metadata)."""
        done = set()
        for p in shard_paths(self.root):
            try:
                meta = pq.read_schema(p).metadata or {}
            except (OSError, pa.ArrowException) as e:
                raise DatasetError(f"not a readable Parquet file: {e}", path=p) from None
            if _SCENE_KEY not in meta:
                raise DatasetError("no scene id in the file metadata", field="scene_id", path=p)
            done.add(meta[_SCENE_KEY].decode())
        return done

    def write_scene(
        self,
        scene_id: str,
        samples: Sequence[LabelSample],
        images: KeyframeImages | None = None,
    ) -> tuple[LabelSample, ...]:
        """Write one scene's samples (possibly none) and their camera frames; commit it.

        With ``images``, every sample's keyframe must be rendered in it; its frames are
        written as PNG and the returned samples carry their :class:`CameraFrameRef` (frame
        major: oldest frame first, cameras in rig order), and the rig name where it was
        empty. Without, samples are written as they are. Rewriting a done scene replaces it.

        Returns:
            the samples as written (what :func:`read_samples` gives back).
        """
        ids = [s.sample_id for s in samples]
        wrong = [s.scene_id for s in samples if s.scene_id != scene_id]
        if wrong or len(set(ids)) != len(ids):
            raise DatasetError(
                f"scene {scene_id!r}: samples of scenes {sorted(set(wrong))} or duplicate "
                f"sample ids {sorted({i for i in ids if ids.count(i) > 1})}",
                field="sample_id",
            )
        if images is not None and images.scene_id != scene_id:
            raise DatasetError(
                f"images of scene {images.scene_id!r} given for scene {scene_id!r}",
                field="frames",
            )
        # Everything that can fail on a bad sample happens before the disk is touched.
        written = tuple(self._with_frames(s, images) for s in samples) if images else samples
        rows = [sample_to_row(s) for s in written]
        schema = LABEL_SCHEMA.with_metadata({_SCENE_KEY: scene_id.encode()})
        try:
            table = pa.Table.from_pylist(rows, schema=schema)
        except (pa.ArrowException, TypeError, ValueError) as e:
            raise DatasetError(f"scene {scene_id!r}: a value does not fit: {e}") from None
        buf = pa.BufferOutputStream()
        with pq.ParquetWriter(buf, schema, compression="zstd", compression_level=3) as pw:
            # A scene without samples gets a shard with no row group at all: readers (Hugging
            # Face's included) skip it, while a row group of 0 rows makes them fail.
            if table.num_rows:
                pw.write_table(table)

        shard = self.shard_path(scene_id)
        shard.unlink(missing_ok=True)  # not done until the new shard lands
        # Leftovers of an interrupted run, or of the scene's previous labelling.
        shutil.rmtree(self.root / IMAGES_DIR / safe_name(scene_id), ignore_errors=True)
        if images is not None:
            camera = {name: c for c, name in enumerate(images.camera_names)}
            for s in written:
                k = images.keyframe_index(s.step)
                for ref in s.frames:
                    path = self.root / ref.path
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(encode_png(images.rgb[k, ref.frame, camera[ref.camera]]))
        _write_atomic(shard, buf.getvalue().to_pybytes())
        return tuple(written)

    @staticmethod
    def _with_frames(s: LabelSample, images: KeyframeImages) -> LabelSample:
        """``s`` with the references of its frames in ``images`` (and the rig name if unset)."""
        if s.step not in images.steps:
            raise DatasetError(
                f"sample {s.sample_id}: keyframe not among the rendered steps "
                f"{images.steps.tolist()}",
                field="frames",
            )
        k = images.keyframe_index(s.step)
        refs = tuple(
            CameraFrameRef(
                cam, f, float(images.time_offset_s[k, f]), image_path(s.scene_id, s.step, cam, f)
            )
            for f in range(images.num_frames)
            for cam in images.camera_names
        )
        return replace(s, frames=refs, rig=s.rig or images.rig_name)

    def finalize(self) -> dict[str, Any]:
        """Rewrite ``dataset.json`` from the shards on disk (deterministic: no timestamps);
        returns what was written."""
        scenes = []
        counts = {"scenes": 0, "samples": 0, "valid_samples": 0, "images": 0}
        for p in shard_paths(self.root):
            t = _open_shard(p, columns=("scene_id", "valid", "frames"))
            meta = pq.read_schema(p).metadata or {}
            n = t.num_rows
            n_valid = int(pc.sum(t.column("valid")).as_py() or 0)
            n_img = int(pc.sum(pc.list_value_length(t.column("frames"))).as_py() or 0)
            scenes.append(
                {
                    "scene_id": meta.get(_SCENE_KEY, b"").decode(),
                    "shard": f"{DATA_DIR}/{p.name}",
                    "samples": n,
                    "valid_samples": n_valid,
                }
            )
            counts["scenes"] += 1
            counts["samples"] += n
            counts["valid_samples"] += n_valid
            counts["images"] += n_img
        index = {
            "format": DATASET_FORMAT,
            "schema_version": SCHEMA_VERSION,
            "meta": self.meta,
            "counts": counts,
            "columns": [f.name for f in LABEL_SCHEMA],
            "scenes": scenes,
        }
        _write_atomic(self.root / INDEX_FILE, _json_bytes(index))
        return index

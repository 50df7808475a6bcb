"""The native scene store: exact round trips and typed errors on damaged files."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from cordillera.errors import SceneFormatError
from cordillera.scene.model import Scene
from cordillera.scene.store import load_scene, save_scene, scene_from_bytes, scene_to_bytes
from fuzzing import assert_reads_or_format_error, mutated_bytes
from scene_builders import Obj, Signal, straight_road_scene


def _scene() -> Scene:
    return straight_road_scene(
        Obj(0.0, 0.0, 8.0),
        [Obj(20.0, 3.5, 5.0), Obj(40.0, 0.0, 0.0, valid_steps=(5, 30))],
        num_steps=40,
        signals=[Signal(60.0, [1])],
        stop_sign_x_m=80.0,
        crosswalk_x_m=70.0,
    )


def assert_scenes_identical(a: Scene, b: Scene) -> None:
    """Every array equal in dtype, shape and bytes; every scalar and the metadata equal."""

    def walk(x: object, y: object, where: str) -> None:
        if dataclasses.is_dataclass(x):
            for f in dataclasses.fields(x):
                walk(getattr(x, f.name), getattr(y, f.name), f"{where}.{f.name}")
        elif isinstance(x, np.ndarray):
            assert isinstance(y, np.ndarray), where
            assert x.dtype == y.dtype and x.shape == y.shape, where
            assert x.tobytes() == y.tobytes(), where
        else:
            assert x == y, where

    walk(a, b, "scene")


def test_round_trip_is_bit_identical(tmp_path: Path) -> None:
    scene = dataclasses.replace(_scene(), extra={"tags": ["a", "b"], "nested": {"k": 1.5}})
    path = save_scene(scene, tmp_path)
    assert path.name == "straight.scene.safetensors"
    assert_scenes_identical(scene, load_scene(path))


def test_store_holds_no_pickle_and_names_every_tensor(tmp_path: Path) -> None:
    data = scene_to_bytes(_scene())
    tensors = st_load(data)
    assert "tracks.xyz_m" in tensors and "map.lanes.points_m" in tensors
    assert b"\x80\x04" not in data[:16]  # a safetensors header, not a pickle stream


def _rewrite(
    data: bytes,
    drop: str | None = None,
    replace: dict[str, np.ndarray] | None = None,
    header_edit: dict[str, object] | None = None,
) -> bytes:
    tensors = dict(st_load(data))
    n = int.from_bytes(data[:8], "little")
    meta = json.loads(data[8 : 8 + n])["__metadata__"]
    if drop:
        tensors.pop(drop)
    tensors.update(replace or {})
    if header_edit:
        header = json.loads(meta["cordillera"])
        header.update(header_edit)
        meta["cordillera"] = json.dumps(header)
    return st_save(tensors, metadata=meta)


@pytest.mark.parametrize(
    ("kwargs", "field", "text"),
    [
        ({"drop": "tracks.valid"}, "tracks.valid", "missing"),
        (
            {"replace": {"tracks.xyz_m": np.zeros((3, 40, 3), np.float32)}},
            "tracks.xyz_m",
            "float32",
        ),
        (
            {"replace": {"tracks.heading_rad": np.full((3, 40), np.nan)}},
            "tracks.heading_rad",
            "non-finite",
        ),
        (
            {"replace": {"map.lane_left": np.array([5, -1], np.int32)}},
            "map.lane_left",
            "out of range",
        ),
        ({"header_edit": {"ego_index": 7}}, "ego_index", "7"),
        ({"header_edit": {"dt_s": -0.1}}, "dt_s", "-0.1"),
        ({"header_edit": {"version": 99}}, "__metadata__.version", "99"),
    ],
)
def test_damaged_fields_name_file_field_and_value(
    tmp_path: Path, kwargs: dict[str, object], field: str, text: str
) -> None:
    bad = tmp_path / "bad.scene.safetensors"
    bad.write_bytes(_rewrite(scene_to_bytes(_scene()), **kwargs))  # type: ignore[arg-type]
    with pytest.raises(SceneFormatError) as info:
        load_scene(bad)
    assert info.value.path == str(bad)
    assert info.value.field == field
    assert text in str(info.value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated_bytes(scene_to_bytes(_scene())))
def test_mutated_store_files_read_or_fail_cleanly(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "x.scene.safetensors"
        p.write_bytes(data)
        scene = assert_reads_or_format_error(p, "native")
        if scene is not None:
            scene.validate()


def test_in_memory_bytes_without_path() -> None:
    with pytest.raises(SceneFormatError, match="not a readable scene file"):
        scene_from_bytes(b"garbage")

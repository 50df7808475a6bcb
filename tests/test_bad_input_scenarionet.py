"""Corrupt ScenarioNet pickles: every outcome is a Scene or a SceneFormatError naming the file.

Byte-level mutations (hypothesis) of a real nuScenes pickle, structural ones (a key deleted at
any depth, a value replaced by a wrong type, NaN or a wrong-shaped array), targeted defects that
must name the offending field, and the CLI's one-line error.
"""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import shared_path
from tests.fuzzing import assert_reads_or_format_error, mutated_bytes

from cordillera.errors import SceneFormatError
from cordillera.scene.readers import read_scene
from cordillera.scene.safe_pickle import safe_load

SMALLEST = ("scenarionet", "nuscenes", "nuscenes_2", "0.pkl")  # scene-0757, 650 kB
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _load(path: Path) -> dict[str, Any]:
    """The raw scene dict, read with the restricted unpickler (never a bare pickle.load)."""
    out = safe_load(path.read_bytes(), path)
    assert isinstance(out, dict)
    return out


@pytest.fixture(scope="module")
def real_sd() -> dict[str, Any]:
    """A real nuScenes scene cut down to a few tracks and map features (fast to read)."""
    sd = _load(shared_path(*SMALLEST))
    ego = sd["metadata"]["sdc_id"]
    keep = [ego, *[k for k in sd["tracks"] if k != ego][:4]]
    sd["tracks"] = {k: sd["tracks"][k] for k in sd["tracks"] if k in keep}
    sd["metadata"].pop("object_summary", None)
    feats = sd["map_features"]
    by_kind: dict[str, list[str]] = {}
    for k, f in feats.items():
        by_kind.setdefault(f["type"] + str("polygon" in f), []).append(k)
    sd["map_features"] = {k: feats[k] for ids in by_kind.values() for k in ids[:6]}
    return sd


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="cordillera-sn-") as d:
        yield Path(d)


def _write(path: Path, obj: object) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=4))
    return path


def _read_error(path: Path) -> SceneFormatError:
    with pytest.raises(SceneFormatError) as e:
        read_scene(path)
    assert e.value.path == str(path), e.value
    return e.value


def test_trimmed_scene_reads(real_sd: dict[str, Any], workdir: Path) -> None:
    scene = read_scene(_write(workdir / "ok.pkl", real_sd))
    assert scene.num_objects == 5 and scene.ego_id == real_sd["metadata"]["sdc_id"]


# --- byte-level mutations ------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_mutated_bytes(real_sd: dict[str, Any], workdir: Path, data: st.DataObject) -> None:
    original = pickle.dumps(real_sd, protocol=4)
    path = workdir / "mutated.pkl"
    path.write_bytes(data.draw(mutated_bytes(original)))
    assert_reads_or_format_error(path)


@pytest.mark.slow
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_mutated_bytes_full_file(workdir: Path, data: st.DataObject) -> None:
    original = shared_path(*SMALLEST).read_bytes()
    path = workdir / "mutated_full.pkl"
    path.write_bytes(data.draw(mutated_bytes(original)))
    assert_reads_or_format_error(path)


# --- structural mutations ------------------------------------------------------------------------


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every dict key path (and the first item of every list) below ``obj``."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list | tuple) and obj:
        yield (*prefix, 0)
        yield from _paths(obj[0], (*prefix, 0))


_WRONG = [
    "text",
    7,
    -1.5,
    None,
    [],
    {},
    (1, 2),
    np.zeros((2, 7)),
    np.array(["a", "b"]),
    np.zeros(0),
    float("nan"),
    float("inf"),
    True,
    [[1.0, 2.0], [3.0]],
]


@FUZZ
@given(data=st.data())
def test_structural_mutations(real_sd: dict[str, Any], workdir: Path, data: st.DataObject) -> None:
    sd = copy.deepcopy(real_sd)
    path = data.draw(st.sampled_from(sorted(_paths(sd), key=repr)))
    parent = sd
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    kind = data.draw(st.sampled_from(["delete", "replace", "nan"]))
    value = parent[key]
    if kind == "delete" and isinstance(parent, dict):
        del parent[key]
    elif kind == "nan" and isinstance(value, np.ndarray) and value.dtype.kind == "f":
        value = value.copy()
        value.flat[data.draw(st.integers(0, max(value.size - 1, 0)))] = np.nan
        parent[key] = value
    elif isinstance(parent, tuple):
        return  # tuples are immutable points; their list is mutated at the level above
    else:
        parent[key] = data.draw(st.sampled_from(_WRONG))
    assert_reads_or_format_error(_write(workdir / "structural.pkl", sd))


def _mutated(sd: dict[str, Any], *path: Any, value: Any = KeyError) -> dict[str, Any]:
    out = copy.deepcopy(sd)
    parent = out
    for k in path[:-1]:
        parent = parent[k]
    if value is KeyError:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return out


def test_defects_name_field_and_value(real_sd: dict[str, Any], workdir: Path) -> None:
    ego = real_sd["metadata"]["sdc_id"]
    lane = next(k for k, f in real_sd["map_features"].items() if f["type"].startswith("LANE_"))
    t = real_sd["length"]
    nan_heading = real_sd["tracks"][ego]["state"]["heading"].copy()
    nan_heading[3] = np.nan
    cases = [
        (_mutated(real_sd, "metadata", "sdc_id", value="nobody"), "metadata.sdc_id", "nobody"),
        (_mutated(real_sd, "metadata", "sdc_id"), "metadata.sdc_id", "missing"),
        (_mutated(real_sd, "tracks"), "tracks", "missing"),
        (
            _mutated(real_sd, "tracks", ego, "state", "position", value=np.zeros((5, 3))),
            f"tracks[{ego}].state.position",
            "(5, 3)",
        ),
        (
            _mutated(real_sd, "tracks", ego, "state", "valid", value=np.ones(t + 1)),
            f"tracks[{ego}].state.valid",
            f"({t + 1},)",
        ),
        (
            _mutated(real_sd, "tracks", ego, "state", "heading", value=nan_heading),
            f"tracks[{ego}].state.heading",
            "nan at valid step 3",
        ),
        (
            _mutated(real_sd, "tracks", ego, "state", "velocity", value="fast"),
            f"tracks[{ego}].state.velocity",
            "'fast'",
        ),
        (_mutated(real_sd, "tracks", ego, "type", value=3), f"tracks[{ego}].type", "3"),
        (
            _mutated(real_sd, "map_features", lane, "polyline", value=np.zeros(4)),
            f"map_features[{lane}].polyline",
            "(4,)",
        ),
        (
            _mutated(real_sd, "map_features", lane, "polyline", value=[[0, 0], [1]]),
            f"map_features[{lane}].polyline",
            "[[0, 0], [1]]",
        ),
        (
            _mutated(real_sd, "map_features", lane, "polyline", value=[[0, 0], [np.inf, 1]]),
            f"map_features[{lane}].polyline",
            "inf",
        ),
        (_mutated(real_sd, "map_features", value=[]), "map_features", "expected a dict"),
        (_mutated(real_sd, "length", value="long"), "length", "'long'"),
        (
            _mutated(
                real_sd,
                "dynamic_map_states",
                value={
                    "s": {
                        "lane": lane,
                        "stop_point": [1.0, 2.0, 0.0],
                        "state": {"object_state": ["LANE_STATE_GO"] * (t - 1)},
                    }
                },
            ),
            "dynamic_map_states[s].state.object_state",
            f"expected {t}",
        ),
        (
            _mutated(
                real_sd,
                "dynamic_map_states",
                value={
                    "s": {
                        "lane": lane,
                        "stop_point": [1.0, 2.0, 0.0],
                        "state": {"object_state": ["PURPLE"] * t},
                    }
                },
            ),
            "dynamic_map_states[s].state.object_state",
            "PURPLE",
        ),
    ]
    for i, (sd, field, shown) in enumerate(cases):
        err = _read_error(_write(workdir / f"defect{i}.pkl", sd))
        assert err.field == field, (i, err)
        assert shown in err.reason, (i, err)


def test_not_a_scene(workdir: Path) -> None:
    for i, obj in enumerate([[1, 2], {"metadata": {}}, "scene", None]):
        _read_error(_write(workdir / f"notscene{i}.pkl", obj))
    # ScenarioNet's index file is a dict of file names, not a scene.
    index = workdir / "dataset_summary_copy.pkl"
    index.write_bytes(
        shared_path("scenarionet", "nuscenes", "nuscenes_1", "dataset_summary.pkl").read_bytes()
    )
    _read_error(index)


# --- the command line ---------------------------------------------------------------------------


class _Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("true",))


@pytest.mark.parametrize(
    "content", [b"\x80\x04not a pickle", pickle.dumps(_Evil())], ids=["garbage", "unsafe"]
)
def test_cli_reports_error_without_traceback(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad_scene.pkl"
    bad.write_bytes(content)
    env = {**os.environ, "COLUMNS": "400"}  # keep rich from wrapping the path
    out = subprocess.run(
        [sys.executable, "-m", "cordillera.cli.main", "scenes", "info", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert out.returncode != 0
    assert "error:" in out.stderr and str(bad) in out.stderr.replace("\n", "")
    assert "Traceback" not in out.stderr + out.stdout

"""The native scene store: one ``.scene.safetensors`` file per scene, no pickle.

Every numeric array of a :class:`Scene` becomes one safetensors tensor named by its dotted field
path (``tracks.xyz_m``, ``map.lanes.points_m``); strings and scalars travel in the header's JSON
metadata. Loading is a memory map plus a header parse, and the round trip is bit-exact.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from cordillera.errors import SceneFormatError
from cordillera.scene.model import RoadMap, Route, Scene, Tracks, TrafficSignals
from cordillera.scene.polylines import Polylines

SUFFIX = ".scene.safetensors"
FORMAT = "cordillera-scene"
FORMAT_VERSION = 1
_NESTED = {"tracks": Tracks, "map": RoadMap, "signals": TrafficSignals, "route": Route}


def _flatten(
    obj: Any, prefix: str, tensors: dict[str, np.ndarray], strings: dict[str, list[str]]
) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            _flatten(value, key + ".", tensors, strings)
        elif isinstance(value, np.ndarray) and value.dtype.kind == "U":
            strings[key] = value.tolist()
        elif isinstance(value, np.ndarray):
            tensors[key] = np.ascontiguousarray(value)
        else:
            raise TypeError(f"cannot store field {key} of type {type(value).__name__}")


def _unflatten(
    cls: type, prefix: str, tensors: dict[str, np.ndarray], strings: dict[str, list[str]]
) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if hints[f.name] is Polylines:
            kwargs[f.name] = Polylines(
                _take(tensors, key + ".points_m"), _take(tensors, key + ".offsets")
            )
        elif key in strings:
            ids = strings[key]
            if not isinstance(ids, list) or not all(isinstance(s, str) for s in ids):
                raise SceneFormatError("expected a list of strings", field=key)
            kwargs[f.name] = np.array(ids, dtype=str) if ids else np.zeros(0, "<U1")
        else:
            kwargs[f.name] = _take(tensors, key)
    return cls(**kwargs)


def _take(tensors: dict[str, np.ndarray], key: str) -> np.ndarray:
    if key not in tensors:
        raise SceneFormatError("missing tensor", field=key)
    return tensors[key]


def scene_to_bytes(scene: Scene) -> bytes:
    """Serialise a scene to the store's bytes."""
    tensors: dict[str, np.ndarray] = {}
    strings: dict[str, list[str]] = {}
    for name in _NESTED:
        _flatten(getattr(scene, name), name + ".", tensors, strings)
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "scene_id": scene.scene_id,
        "source": scene.source,
        "license": scene.license,
        "dt_s": scene.dt_s,
        "ego_index": scene.ego_index,
        "strings": strings,
        "extra": dict(scene.extra),
    }
    return st_save(tensors, metadata={"cordillera": json.dumps(header, allow_nan=False)})


def scene_from_bytes(data: bytes, path: str | Path | None = None) -> Scene:
    """Parse the store's bytes; every defect raises :class:`SceneFormatError`."""
    try:
        tensors = st_load(data)
        meta = _read_metadata(data)
    except (SafetensorError, ValueError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SceneFormatError(f"not a readable scene file: {e}", path=path) from None
    try:
        header = json.loads(meta.get("cordillera", "null"))
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise SceneFormatError("no cordillera scene header", field="__metadata__")
        if header.get("version") != FORMAT_VERSION:
            raise SceneFormatError(
                f"unsupported version {header.get('version')!r}", field="__metadata__.version"
            )
        strings = header.get("strings")
        if not isinstance(strings, dict):
            raise SceneFormatError("missing string table", field="__metadata__.strings")
        parts = {
            name: _unflatten(cls, name + ".", tensors, strings) for name, cls in _NESTED.items()
        }
        extra = header.get("extra", {})
        if not isinstance(extra, dict):
            raise SceneFormatError("extra is not an object", field="__metadata__.extra")
        dt_s = header.get("dt_s")
        return Scene(
            scene_id=header.get("scene_id"),  # type: ignore[arg-type]  # validated by Scene
            source=str(header.get("source", "")),
            license=str(header.get("license", "")),
            dt_s=float(dt_s) if isinstance(dt_s, int | float) else dt_s,  # type: ignore[arg-type]
            ego_index=header.get("ego_index"),  # type: ignore[arg-type]
            **parts,
            extra=extra,
        )
    except SceneFormatError as e:
        raise e.at(path) if path is not None else e from None
    except (TypeError, ValueError) as e:
        raise SceneFormatError(f"malformed scene file: {e}", path=path) from None


def _read_metadata(data: bytes) -> dict[str, str]:
    """The safetensors header's ``__metadata__`` map."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict):
        raise ValueError("__metadata__ is not an object")
    return meta


def save_scene(scene: Scene, path: str | Path) -> Path:
    """Write ``scene`` to a ``.scene.safetensors`` file, or into a folder as ``<scene_id>...``."""
    p = Path(path)
    if p.is_dir() or not p.name.endswith(SUFFIX):
        p = p / f"{safe_file_stem(scene.scene_id)}{SUFFIX}"
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_bytes(scene_to_bytes(scene))
    tmp.replace(p)  # atomic: a killed run never leaves half a scene behind
    return p


def load_scene(path: str | Path) -> Scene:
    """Read one stored scene."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise SceneFormatError(f"cannot read: {e.strerror}", path=p) from None
    return scene_from_bytes(data, path=p)


def safe_file_stem(scene_id: str) -> str:
    """A file-name-safe version of a scene id."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in scene_id)

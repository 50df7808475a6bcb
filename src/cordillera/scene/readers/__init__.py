"""Readers for real driving logs, and format detection.

Each reader module exposes ``read(path) -> Scene`` for one *source* (a file, or a folder for
Argoverse 2), and raises :class:`~cordillera.errors.SceneFormatError` naming file and field on
any defect. :func:`find_sources` walks a file or folder and returns every source with its format.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from cordillera.errors import SceneFormatError, UnknownFormatError
from cordillera.scene.model import Scene

FORMATS = ("scenarionet", "av2-forecasting", "av2-sensor", "commonroad", "native")

# ScenarioNet folders carry index pickles beside the scenes; they describe, they are not scenes.
_SCENARIONET_INDEX_FILES = {"dataset_summary.pkl", "dataset_mapping.pkl"}


def _is_av2_forecasting_dir(p: Path) -> bool:
    return any(p.glob("scenario_*.parquet")) and any(p.glob("log_map_archive_*.json"))


def _is_av2_sensor_dir(p: Path) -> bool:
    return (p / "city_SE3_egovehicle.feather").is_file() and any(p.glob("annotations*.feather"))


def detect_format(path: str | Path) -> str:
    """The format of one source, from its name and layout (contents are checked by the reader)."""
    p = Path(path)
    if p.is_dir():
        if _is_av2_forecasting_dir(p):
            return "av2-forecasting"
        if _is_av2_sensor_dir(p):
            return "av2-sensor"
        raise UnknownFormatError("folder is not an Argoverse 2 scenario or log", path=p)
    name = p.name.lower()
    if name.endswith(".scene.safetensors"):
        return "native"
    if name.endswith(".pkl"):
        return "scenarionet"
    if name.endswith(".xml"):
        return "commonroad"
    if name.endswith(".parquet") and name.startswith("scenario_"):
        return "av2-forecasting"
    raise UnknownFormatError(
        "unrecognised file type (expected .pkl, .xml, .parquet, "
        ".scene.safetensors or an Argoverse 2 folder)",
        path=p,
    )


def find_sources(path: str | Path, fmt: str | None = None) -> list[tuple[Path, str]]:
    """Every scene source under ``path`` (itself if it is one), sorted, with its format."""
    root = Path(path)
    if fmt is not None and fmt not in FORMATS:
        raise UnknownFormatError(
            f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}", path=root
        )
    if not root.exists():
        raise SceneFormatError("no such file or folder", path=root)
    if root.is_file() or _is_av2_forecasting_dir(root) or _is_av2_sensor_dir(root):
        if root.is_file() and root.name in _SCENARIONET_INDEX_FILES:
            raise UnknownFormatError("a ScenarioNet index file, not a scene", path=root)
        return [(root, fmt or detect_format(root))]
    found: list[tuple[Path, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        dirnames.sort()
        keep_dirs = []
        for sub in dirnames:
            sp = d / sub
            if _is_av2_forecasting_dir(sp) or _is_av2_sensor_dir(sp):
                found.append((sp, fmt or detect_format(sp)))
            else:
                keep_dirs.append(sub)
        dirnames[:] = keep_dirs
        for name in sorted(filenames):
            if name in _SCENARIONET_INDEX_FILES:
                continue
            fp = d / name
            try:
                found.append((fp, fmt or detect_format(fp)))
            except UnknownFormatError:
                continue  # licences, READMEs, lidar sweeps... inside data folders
    return sorted(found)


def _reader(fmt: str) -> Callable[[Path], Scene]:
    # Imported lazily: commonroad-io and pyarrow are only paid for by the formats that use them.
    if fmt == "scenarionet":
        from cordillera.scene.readers import scenarionet

        return scenarionet.read
    if fmt == "av2-forecasting":
        from cordillera.scene.readers import av2_forecasting

        return av2_forecasting.read
    if fmt == "av2-sensor":
        from cordillera.scene.readers import av2_sensor

        return av2_sensor.read
    if fmt == "commonroad":
        from cordillera.scene.readers import commonroad

        return commonroad.read
    if fmt == "native":
        from cordillera.scene.store import load_scene

        return load_scene
    raise UnknownFormatError(f"unknown format {fmt!r}")


def read_all(
    path: str | Path,
    fmt: str | None = None,
    on_skip: Callable[[Path, UnknownFormatError], None] | None = None,
) -> Iterator[tuple[Path, Scene]]:
    """Every scene under ``path``, read in order, as ``(source, scene)`` pairs.

    When ``path`` is a folder, files that turn out not to be scenes at all (index pickles,
    evaluation pickles beside the scenes) are skipped and reported to ``on_skip``; every other
    defect raises. A single file given directly is always read or rejected.
    """
    root = Path(path)
    sources = find_sources(root, fmt)
    for source, source_fmt in sources:
        try:
            yield source, read_scene(source, source_fmt)
        except UnknownFormatError as e:
            if not root.is_dir():
                raise
            if on_skip is not None:
                on_skip(source, e)


def read_scene(path: str | Path, fmt: str | None = None) -> Scene:
    """Read one source. Any defect raises :class:`SceneFormatError` naming the file."""
    p = Path(path)
    fmt = fmt or detect_format(p)
    try:
        return _reader(fmt)(p)
    except SceneFormatError as e:
        raise e.at(p) from None

"""Label many scenes into one dataset: resumable, with progress, then the gallery.

Scenes are read one at a time (a folder of logs is never held in memory at once) and written
scene by scene; a scene is done when its shard lands, so an interrupted run picks up at the
first scene without one and the finished dataset is the same, byte for byte, as an
uninterrupted run's (labelling is deterministic and every write is atomic).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from cordillera.errors import UnknownFormatError
from cordillera.label.config import LabelerConfig
from cordillera.label.dataset import DatasetWriter
from cordillera.label.gallery import write_gallery
from cordillera.label.pipeline import label_scene
from cordillera.scene.model import Scene
from cordillera.scene.readers import find_sources, read_scene

LABELER_VERSION = 1


@dataclass(frozen=True)
class LabelRunSummary:
    """What a labelling run did.

    Attributes:
        scenes: scenes in the dataset after the run; labelled: labelled by this run;
        skipped_done: already in the dataset; not_scenes: sources that are not scenes.
        samples: samples labelled by this run; valid: of which valid.
        seconds: wall time of this run; gallery: the gallery's path (or None).
    """

    scenes: int
    labelled: int
    skipped_done: int
    not_scenes: tuple[str, ...]
    samples: int
    valid: int
    seconds: float
    gallery: Path | None


def iter_scenes(
    specs: Sequence[str | Path], seed: int = 0, on_skip: Callable[[str], None] | None = None
) -> Iterator[Scene]:
    """Scenes of ``specs`` (suite names or paths), read lazily in order. Sources under a folder
    that are not scenes at all are reported to ``on_skip``; any other defect raises."""
    from cordillera.scene.generate import SUITES, generate_suite

    for spec in specs:
        if isinstance(spec, str) and spec in SUITES:
            yield from generate_suite(spec, seed=seed)
            continue
        path = Path(spec)
        for src, fmt in find_sources(path):
            try:
                yield read_scene(src, fmt)
            except UnknownFormatError as e:
                if src == path:
                    raise
                if on_skip is not None:
                    on_skip(f"{src}: {e}")


def label_dataset(
    specs: Sequence[str | Path],
    out: str | Path,
    config: LabelerConfig | None = None,
    seed: int = 0,
    progress: bool = True,
    gallery: bool = True,
) -> LabelRunSummary:
    """Label every scene of ``specs`` into the dataset at ``out`` (see the module docstring)."""
    cfg = config or LabelerConfig()
    start = time.perf_counter()
    writer = DatasetWriter(out, {"labeler_version": LABELER_VERSION, **cfg.to_json()})
    done = writer.done_scene_ids()
    not_scenes: list[str] = []
    labelled = skipped = samples = valid = 0
    bar = tqdm(desc="label", unit="scene", disable=not progress, mininterval=0.5)
    for scene in iter_scenes(specs, seed, not_scenes.append):
        bar.set_postfix_str(scene.scene_id[:40])
        if scene.scene_id in done:
            skipped += 1
            bar.update(1)
            continue
        result = label_scene(scene, cfg)
        writer.write_scene(scene.scene_id, result.samples, result.images)
        done.add(scene.scene_id)  # a scene listed twice is labelled once
        labelled += 1
        samples += len(result.samples)
        valid += sum(s.valid for s in result.samples)
        bar.update(1)
    bar.close()
    index = writer.finalize()
    page = write_gallery(out, Path(out) / "gallery.html") if gallery else None
    return LabelRunSummary(
        scenes=int(index["counts"]["scenes"]),
        labelled=labelled,
        skipped_done=skipped,
        not_scenes=tuple(not_scenes),
        samples=samples,
        valid=valid,
        seconds=time.perf_counter() - start,
        gallery=page,
    )

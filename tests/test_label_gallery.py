"""The HTML gallery of a labelled dataset: every sample's text, its pictures, the boxes drawn."""

from __future__ import annotations

import dataclasses
import html
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cordillera.label.dataset import DatasetError, DatasetWriter, read_samples
from cordillera.label.gallery import CAUSE_RGB, sample_picture, write_gallery
from cordillera.label.grounding import ground, render_keyframes
from cordillera.scene.types import ObjectType
from cordillera.sensors import ring7
from scene_builders import Obj, straight_road_scene
from test_label_dataset import META, make_sample


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two rendered keyframes of a road with a pedestrian ahead (the cause), and a scene whose
    sample has no stored frames."""
    root = tmp_path_factory.mktemp("labels")
    sc = straight_road_scene(
        Obj(0.0, speed_mps=5.0),
        [Obj(30.0, 0.5, kind=ObjectType.PEDESTRIAN, size_lwh_m=(0.6, 0.6, 1.75))],
    )
    steps = [10, 20]
    images = render_keyframes(sc, steps, ring7(128, 72), frames=3)
    groundings = ground(images, [["obj1"]] * len(steps))
    samples = [
        dataclasses.replace(make_sample(sc.scene_id, s), groundings=g)
        for s, g in zip(steps, groundings, strict=True)
    ]
    w = DatasetWriter(root, META)
    w.write_scene(sc.scene_id, samples, images)
    bare = make_sample("no-frames", 7)
    w.write_scene("no-frames", [dataclasses.replace(bare, groundings=())])
    w.finalize()
    return root


def test_gallery_shows_every_sample_and_its_pictures(dataset: Path, tmp_path: Path) -> None:
    out = write_gallery(dataset, tmp_path / "gallery.html")
    page = out.read_text()
    samples = read_samples(dataset)
    for s in samples:
        assert f'id="{s.sample_id}"' in page
        assert html.escape(s.coc_text) in page
        assert s.valid_reason in page or s.valid
    assert "<script" not in page  # static: nothing to run, nothing fetched
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert len(srcs) == 2  # the two rendered keyframes; the bare sample says so instead
    assert "No camera frames stored." in page
    for src in srcs:
        im = Image.open(out.parent / src)
        # 7 cameras in rows of 4, then a strip of the 3 frames of history.
        assert im.width > 4 * 128 and im.height > 2 * 72 + 72 // 2
    # Counterfactual effect and the cause's behaviour are in the table.
    assert "crossing 12 m ahead" in page and "2.38" in page


def test_cause_boxes_are_drawn_in_the_cause_colour(dataset: Path) -> None:
    s = next(x for x in read_samples(dataset) if x.scene_id == "straight")
    assert s.groundings and s.causes == ("obj1",)
    pic = np.asarray(sample_picture(dataset, s))
    assert np.all(pic == np.array(CAUSE_RGB[0], np.uint8), axis=-1).sum() > 20
    plain = dataclasses.replace(s, groundings=())
    pic = np.asarray(sample_picture(dataset, plain))
    assert not np.all(pic == np.array(CAUSE_RGB[0], np.uint8), axis=-1).any()


def test_gallery_limits_samples_and_reports_missing_frames(dataset: Path, tmp_path: Path) -> None:
    page = write_gallery(dataset, tmp_path / "one.html", max_samples=1).read_text()
    assert page.count('<section class="card"') == 1
    assert "showing 1." in page
    s = next(x for x in read_samples(dataset) if x.frames)
    (dataset / s.frames[-1].path).rename(tmp_path / "moved.png")
    try:
        with pytest.raises(DatasetError, match="camera frame unreadable") as e:
            sample_picture(dataset, s)
        assert e.value.path == str(dataset / s.frames[-1].path)
    finally:
        (tmp_path / "moved.png").rename(dataset / s.frames[-1].path)

"""The labelled dataset on disk: exact round trip, Hugging Face loading, byte-identical resume,
typed errors for bad shards."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from cordillera.label.dataset import (
    LABEL_SCHEMA,
    DatasetError,
    DatasetWriter,
    load_label_dataset,
    read_samples,
    safe_name,
)
from cordillera.label.grounding import KeyframeImages
from cordillera.label.record import CauseEvidence, LabelSample
from cordillera.policy.plan import CausalObject, ChainOfCausation, Grounding
from cordillera.policy.vocabulary import LateralDecision, LongitudinalDecision

META = {"labeler": "test", "frames": 2, "rig": "toy", "thresholds": [0.5, 1.0]}
CAMERAS = ("front", "rear")


def make_sample(scene_id: str, step: int, seed: int = 0) -> LabelSample:
    rng = np.random.default_rng(seed + step)
    coc = ChainOfCausation(
        longitudinal=LongitudinalDecision.YIELD if step % 2 == 0 else None,
        lateral=LateralDecision.KEEP_LANE,
        causes=(CausalObject("obj1", "pedestrian", "crossing 12 m ahead", 2.375),),
        ego_motion="slowing from 9.1 m/s",
        evidence_window_s=(-2.0, 0.5),
    )
    return LabelSample(
        scene_id=scene_id,
        source="generated",
        time_s=step * 0.1,
        step=step,
        keyframe_reason="start of braking",
        ego_history_ego_m=rng.normal(size=(20, 2)).astype(np.float32),
        ego_speed_mps=9.1 + 1e-9,  # not representable in float32: scalars must stay float64
        ego_accel_mps2=-1.25,
        ego_yaw_rate_rps=0.01,
        future_ego_m=rng.normal(size=(64, 2)).astype(np.float32),
        future_valid_steps=61,
        route_ego_m=np.zeros((0, 2), np.float32),
        meta_longitudinal=("gentle_deceleration",) * 64,
        meta_lateral=("go_straight",) * 64,
        meta_lane=("",) * 64,
        decision_longitudinal=coc.longitudinal.text if coc.longitudinal else None,
        decision_lateral=coc.lateral.text if coc.lateral else None,
        coc=coc,
        evidence=(CauseEvidence("obj1", "pedestrian", "removed", 2.375, 0.5, 9.0, True),),
        groundings=(Grounding("front", "obj1", (1.5, 2.0, 7.25, 6.0), 0.8125),),
        valid=step % 3 != 0,
        valid_reason="ok" if step % 3 != 0 else "cause not visible",
        designed_cause_object_id="obj1",
        designed_decision="yield",
    )


def make_images(scene_id: str, steps: list[int], frames: int = 2) -> KeyframeImages:
    """Deterministic noise images of 2 cameras, 8 x 12 pixels."""
    k, c = len(steps), len(CAMERAS)
    rng = np.random.default_rng(len(scene_id))
    s = np.asarray(steps, np.int64)
    fs = np.maximum(s[:, None] - 5 * np.arange(frames - 1, -1, -1)[None], 0)
    return KeyframeImages(
        scene_id=scene_id,
        rig_name="toy",
        camera_names=CAMERAS,
        steps=s,
        frame_steps=fs,
        time_offset_s=(fs - s[:, None]) * 0.1,
        rgb=rng.integers(0, 256, (k, frames, c, 8, 12, 3), dtype=np.uint8),
        object_ids=("ego", "obj1"),
        bbox_xyxy_px=np.zeros((k, c, 2, 4), np.float32),
        in_view=np.zeros((k, c, 2), bool),
        visible_fraction=np.zeros((k, c, 2), np.float32),
    )


SCENES = {"scene-a": [10, 20, 30], "av2/log:7": [5], "empty-scene": []}


def write_scene(w: DatasetWriter, scene_id: str) -> tuple[LabelSample, ...]:
    steps = SCENES[scene_id]
    samples = [make_sample(scene_id, s) for s in steps]
    return w.write_scene(scene_id, samples, make_images(scene_id, steps) if steps else None)


def assert_same(a: LabelSample, b: LabelSample) -> None:
    for f in dataclasses.fields(LabelSample):
        va, vb = getattr(a, f.name), getattr(b, f.name)
        if isinstance(va, np.ndarray):
            assert va.dtype == vb.dtype and va.shape == vb.shape, f.name
            assert np.array_equal(va, vb), f.name
        else:
            assert va == vb, f.name


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_round_trip_gives_equal_fields(tmp_path: Path) -> None:
    w = DatasetWriter(tmp_path, META)
    written = [s for sid in SCENES for s in write_scene(w, sid)]
    index = w.finalize()
    back = read_samples(tmp_path)
    # Shards are read in file-name order.
    assert sorted(s.sample_id for s in written) == sorted(s.sample_id for s in back)
    by_id = {s.sample_id: s for s in written}
    for s in back:
        assert_same(by_id[s.sample_id], s)
    assert index["counts"] == {"scenes": 3, "samples": 4, "valid_samples": 3, "images": 16}
    assert w.done_scene_ids() == set(SCENES)
    # The frames point at PNGs holding exactly the rendered pixels, keyframe last.
    s = next(x for x in back if x.sample_id == "scene-a@00020")
    assert [(f.camera, f.frame, f.time_offset_s) for f in s.frames] == [
        ("front", 0, -0.5),
        ("rear", 0, -0.5),
        ("front", 1, 0.0),
        ("rear", 1, 0.0),
    ]
    assert s.rig == "toy"
    imgs = make_images("scene-a", SCENES["scene-a"])
    got = np.asarray(Image.open(tmp_path / s.frames[3].path))
    assert np.array_equal(got, imgs.rgb[1, 1, 1])


def test_loads_with_hugging_face_datasets(tmp_path: Path) -> None:
    import datasets

    root = tmp_path / "ds"
    w = DatasetWriter(root, META)
    for sid in SCENES:
        write_scene(w, sid)
    ds = load_label_dataset(root, cache_dir=tmp_path / "hf")
    assert isinstance(ds, datasets.Dataset) and ds.num_rows == 4
    assert set(ds.column_names) == set(LABEL_SCHEMA.names)
    row = ds.filter(lambda r: r["sample_id"] == "scene-a@00010")[0]
    assert row["coc_text"].startswith("Yield and keep lane: pedestrian obj1 is crossing")
    assert row["causes"] == ["obj1"]
    assert row["groundings"][0]["bbox_xyxy"] == [1.5, 2.0, 7.25, 6.0]
    assert len(row["future_ego_m"]) == 64 and len(row["future_ego_m"][0]) == 2
    assert row["decision_lateral"] == "keep_lane"
    assert (root / row["frames"][0]["path"]).is_file()
    # The generic parquet loader reads the same table.
    files = sorted(str(p) for p in (root / "data").glob("*.parquet"))
    plain = datasets.load_dataset(
        "parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf2")
    )
    assert plain.num_rows == 4


def test_resume_gives_the_same_bytes_as_one_run(tmp_path: Path) -> None:
    one = tmp_path / "one"
    w = DatasetWriter(one, META)
    for sid in SCENES:
        write_scene(w, sid)
    w.finalize()

    two = tmp_path / "two"
    w = DatasetWriter(two, META)
    write_scene(w, "scene-a")
    # Interrupted while writing "av2/log:7": stale images and a shard cut off before its
    # rename, and no final dataset.json.
    stale = two / "images" / safe_name("av2/log:7") / "00005"
    stale.mkdir(parents=True)
    (stale / "front_0.png").write_bytes(b"half a png")
    (stale / "old_camera_9.png").write_bytes(b"from an earlier config")
    (two / "data" / f".{safe_name('av2/log:7')}.parquet.tmp").write_bytes(b"PAR1 cut")

    w = DatasetWriter(two, META)  # resume
    assert w.done_scene_ids() == {"scene-a"}
    for sid in SCENES:
        if not w.is_done(sid):
            write_scene(w, sid)
    w.finalize()
    assert tree_bytes(one) == tree_bytes(two)


def test_unsafe_scene_ids_get_distinct_file_names() -> None:
    assert safe_name("scene-0061") == "scene-0061"
    assert safe_name("a/b") != safe_name("a_b")
    assert "/" not in safe_name("a/b") and safe_name("a/b").startswith("a_b-")
    assert not safe_name("../up").startswith(".")


def test_other_labeler_config_is_refused(tmp_path: Path) -> None:
    DatasetWriter(tmp_path, META)
    with pytest.raises(DatasetError, match=r"differs in \['frames'\]") as e:
        DatasetWriter(tmp_path, {**META, "frames": 4})
    assert e.value.field == "meta" and e.value.path == str(tmp_path / "dataset.json")


def test_corrupt_shard_raises_dataset_error(tmp_path: Path) -> None:
    w = DatasetWriter(tmp_path, META)
    write_scene(w, "scene-a")
    shard = w.shard_path("scene-a")
    shard.write_bytes(shard.read_bytes()[:200])
    with pytest.raises(DatasetError, match="not a readable Parquet file") as e:
        read_samples(tmp_path)
    assert e.value.path == str(shard)


def _rewrite(shard: Path, table: pa.Table) -> None:
    pq.write_table(table, shard)


def test_missing_column_and_bad_values_name_the_field(tmp_path: Path) -> None:
    w = DatasetWriter(tmp_path, META)
    write_scene(w, "scene-a")
    shard = w.shard_path("scene-a")
    good = pq.read_table(shard)

    _rewrite(shard, good.drop_columns(["coc"]))
    with pytest.raises(DatasetError, match="missing column") as e:
        read_samples(tmp_path)
    assert (e.value.field, e.value.path) == ("coc", str(shard))

    i = good.schema.get_field_index("step")
    _rewrite(shard, good.set_column(i, "step", pa.array(["x"] * good.num_rows)))
    with pytest.raises(DatasetError, match="type string, expected int32") as e:
        read_samples(tmp_path)
    assert e.value.field == "step"

    i = good.schema.get_field_index("coc")
    _rewrite(shard, good.set_column(i, "coc", pa.array(["{not json"] * good.num_rows)))
    with pytest.raises(DatasetError, match="scene-a@00010") as e:
        read_samples(tmp_path)
    assert (e.value.field, e.value.path) == ("coc", str(shard))

    i = good.schema.get_field_index("future_ego_m")
    bad = pa.array([[[1.0, 2.0, 3.0]]] * good.num_rows, pa.list_(pa.list_(pa.float32())))
    _rewrite(shard, good.set_column(i, "future_ego_m", bad))
    with pytest.raises(DatasetError, match="expected 2") as e:
        read_samples(tmp_path)
    assert e.value.field == "future_ego_m"


def test_bad_sample_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    w = DatasetWriter(tmp_path, META)
    before = write_scene(w, "scene-a")
    files = tree_bytes(tmp_path)
    s = dataclasses.replace(make_sample("scene-a", 10), future_ego_m=np.zeros((64, 3), np.float32))
    with pytest.raises(DatasetError, match=r"expected \(P, 2\)") as e:
        w.write_scene("scene-a", [s])
    assert e.value.field == "future_ego_m"
    with pytest.raises(DatasetError, match="duplicate"):
        w.write_scene("scene-a", [make_sample("scene-a", 10)] * 2)
    with pytest.raises(DatasetError, match="keyframe not among the rendered steps"):
        w.write_scene("scene-a", [make_sample("scene-a", 11)], make_images("scene-a", [10]))
    # The scene labelled before is untouched.
    assert tree_bytes(tmp_path) == files
    for a, b in zip(before, read_samples(tmp_path), strict=True):
        assert_same(a, b)

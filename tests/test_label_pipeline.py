"""The auto-labeler end to end: proven causes and decisions on scenes whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest
from tests.scene_builders import Obj, straight_road_scene

from cordillera.label.config import LabelerConfig
from cordillera.label.keyframes import ego_labels, select_keyframes
from cordillera.label.pipeline import label_scene
from cordillera.scene.generate import generate_suite
from cordillera.scene.generate.longtail import REACTION_WINDOW_S
from cordillera.scene.model import Scene
from cordillera.scene.types import ObjectType


def _reaction_span(scene: Scene) -> tuple[float, float]:
    """The designed reaction: from the designed event to the ego's lowest logged speed within
    the design's reaction window (after it the ego recovers, and other things may matter)."""
    t_event = float(scene.extra["designed_event_time_s"])  # type: ignore[arg-type]
    e = scene.ego_index
    speed = np.linalg.norm(scene.tracks.velocity_mps[e], axis=-1)
    k0 = round(t_event / scene.dt_s)
    k1 = k0 + round(REACTION_WINDOW_S / scene.dt_s) + 1
    return t_event, (k0 + int(np.argmin(speed[k0:k1]))) * scene.dt_s


def test_long_tail_suite_names_the_true_cause_and_decision() -> None:
    """On every relevant keyframe of the long-tail suite (jaywalker, cut-in, hard brake,
    red-light runner, stopped vehicle; causes known by construction), the strongest proven
    cause is the designed one and the longitudinal decision is the designed one, >= 95%."""
    right, total, misses = 0, 0, []
    for scene in generate_suite("long-tail", seed=0):
        t0, t1 = _reaction_span(scene)
        for s in label_scene(scene, render=False).samples:
            if not t0 <= s.time_s <= t1 + 1e-6:
                continue
            total += 1
            ok = (
                s.causes[:1] == (scene.extra["designed_cause_object_id"],)
                and s.decision_longitudinal == scene.extra["designed_decision"]
            )
            right += ok
            if not ok:
                misses.append((s.sample_id, s.causes, s.decision_longitudinal))
    assert total >= 40  # every scene contributes keyframes to its reaction
    assert right / total >= 0.95, f"{right}/{total}; misses: {misses}"


def _blocked_road() -> Scene:
    """The ego drives at 10 m/s in its log towards a car standing 45 m ahead in its lane; a
    parked car stands on the far side of the next lane and a pedestrian walks on the verge."""
    return straight_road_scene(
        Obj(0.0, 0.0, 10.0),
        [
            Obj(45.0, 0.0, 0.0),
            Obj(30.0, 7.0, 0.0),
            Obj(10.0, -6.0, 1.2, ObjectType.PEDESTRIAN, (0.5, 0.5, 1.7)),
        ],
        num_steps=80,
    )


def test_counterfactual_separates_the_cause_from_bystanders() -> None:
    labels = label_scene(_blocked_road(), LabelerConfig(), render=False)
    first = labels.samples[0]
    effects = {e.cause_id: e.effect for e in first.evidence}
    cause = first.causes[0]
    assert effects[cause] > 2.0  # without the standing car the ego would keep its speed
    assert all(v < 0.1 for k, v in effects.items() if k != cause)
    ev = next(e for e in first.evidence if e.cause_id == cause)
    assert ev.min_speed_factual_mps < 2.0 and ev.min_speed_counterfactual_mps > 9.5
    assert ev.decision_changed
    assert first.decision_longitudinal == "stop"
    # The log drives straight through the car: the decision does not match the logged
    # future, so the label is kept, invalid, with the reason.
    assert not first.valid and "neither slows nor stands" in first.valid_reason


def test_keyframes_mark_the_start_of_braking() -> None:
    scene = next(s for s in generate_suite("hard-brake", seed=0))
    kfs = select_keyframes(scene, ego_labels(scene), LabelerConfig())
    steps = [k.step for k in kfs]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    gaps = np.diff(steps)
    assert (gaps >= round(LabelerConfig().min_keyframe_gap_s / scene.dt_s)).all()
    braking = [k.step for k in kfs if k.reason == "start of braking"]
    speed = np.linalg.norm(scene.tracks.velocity_mps[scene.ego_index], axis=-1)
    assert braking, "no start-of-braking keyframe"
    # The ego decelerates after each such keyframe.
    for k in braking:
        assert speed[k + 10] < speed[k] - 0.5


def test_labels_are_deterministic_and_complete() -> None:
    scene = next(s for s in generate_suite("cut-in", seed=1))
    cfg = LabelerConfig(image_width_px=64, image_height_px=36)
    a, b = label_scene(scene, cfg), label_scene(scene, cfg)
    assert a.images is not None and b.images is not None
    assert np.array_equal(a.images.rgb, b.images.rgb)
    assert a.rig == "ring7" and a.images.rgb.shape[1:3] == (cfg.frames, 7)
    for x, y in zip(a.samples, b.samples, strict=True):
        assert x.coc.to_json() == y.coc.to_json() and x.evidence == y.evidence
        assert x.future_ego_m.shape == (64, 2) and x.ego_history_ego_m.shape == (20, 2)
        assert np.allclose(x.ego_history_ego_m[-1], 0.0, atol=1e-4)
        assert len(x.meta_longitudinal) == 64 and x.coc_text
        if x.causes and x.causes[0] in {g.object_id for g in x.groundings}:
            assert all(0 < g.visible_fraction <= 1 for g in x.groundings)


@pytest.mark.parametrize(
    "bad",
    [
        {"frames": 0},
        {"frames": 2.0},
        {"min_effect_mps": -1.0},
        {"min_effect_mps": "1"},
        {"completion_s": -1.0},
        {"completion_s": float("inf")},
        {"rig": ""},
        {"rig": "ring8"},
        {"planner": "no-such-planner"},
    ],
)
def test_config_rejects_bad_values(bad: dict[str, object]) -> None:
    from cordillera.errors import ConfigError

    with pytest.raises(ConfigError):
        LabelerConfig(**bad)  # type: ignore[arg-type]

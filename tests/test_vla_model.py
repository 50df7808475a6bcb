"""The VLA model: shapes of a decision, determinism, save → load bit-identical, no pickle."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from cordillera.errors import ConfigError
from cordillera.vla.config import TINY
from cordillera.vla.inputs import VlaInputs, frames_to_patches
from cordillera.vla.model import VlaModel
from cordillera.vla.text import MetaActions

CFG = TINY.with_(max_new_tokens=6)


def _inputs(b: int = 2, seed: int = 0) -> VlaInputs:
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (b, 7, 4, 144, 256, 3), generator=g, dtype=torch.uint8)
    hist = torch.stack([torch.linspace(-19, 0, 20), torch.zeros(20)], -1).expand(b, 20, 2)
    return VlaInputs(frames, hist, torch.full((b,), 10.0), torch.zeros(b), torch.zeros(b))


@pytest.fixture(scope="module")
def model() -> VlaModel:
    torch.manual_seed(0)
    return VlaModel(CFG).eval()


def test_decision_shapes_and_determinism(model: VlaModel) -> None:
    inputs = _inputs()
    d1 = model.decide(inputs, seed=1, samples=3)
    d2 = model.decide(inputs, seed=1, samples=3)
    assert d1.waypoints_ego_m.shape == (2, 64, 2)
    assert d1.waypoint_samples.shape == (2, 3, 64, 2)
    assert d1.controls.shape == (2, 64, 2)
    assert torch.isfinite(d1.waypoint_samples).all()
    assert torch.equal(d1.waypoint_samples, d2.waypoint_samples) and d1.texts == d2.texts
    assert len(d1.texts) == len(d1.coc) == len(d1.meta) == 2
    assert all(m is None or isinstance(m, MetaActions) for m in d1.meta)
    assert int(d1.new_tokens.max()) <= CFG.max_new_tokens
    # an untrained model writes nonsense: it must parse to None, not raise
    d3 = model.decide(inputs, seed=2)
    assert not torch.equal(d3.waypoints_ego_m, d1.waypoints_ego_m)


def test_batched_decision_equals_single(model: VlaModel) -> None:
    inputs = _inputs(2)
    both = model.decide(inputs)
    one = model.decide(inputs.index(torch.tensor([1])))
    assert both.texts[1] == one.texts[0]


def test_generated_hidden_states_equal_teacher_forced(model: VlaModel) -> None:
    """The expert sees the same memory at inference as in training (causal decoder)."""
    inputs = _inputs(1)
    ids, lengths, memory, pad = model.generate(inputs, max_new_tokens=5)
    tf, tf_pad = model.memory(inputs, ids, lengths)
    n = int((~pad[0]).sum())
    assert n == int((~tf_pad[0]).sum())
    torch.testing.assert_close(memory[0, :n], tf[0, :n], atol=1e-4, rtol=1e-4)


def test_save_load_bit_identical_without_pickle(
    model: VlaModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").is_file()

    def no_pickle(*args: object, **kwargs: object) -> None:
        raise AssertionError("a checkpoint load unpickled something")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(pickle, "Unpickler", no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    loaded = VlaModel.from_pretrained(tmp_path / "m")
    monkeypatch.undo()
    for (k1, v1), (k2, v2) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert k1 == k2 and torch.equal(v1, v2), k1
    inputs = _inputs()
    a, b = model.decide(inputs, seed=5), loaded.decide(inputs, seed=5)
    assert a.texts == b.texts
    assert torch.equal(a.waypoints_ego_m, b.waypoints_ego_m)


def test_load_rejects_a_non_model_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a saved VLA model"):
        VlaModel.from_pretrained(tmp_path)


def test_load_rejects_damaged_weights_and_ignores_a_stray_backbone_file(
    model: VlaModel, tmp_path: Path
) -> None:
    d = model.save_pretrained(tmp_path / "m")
    # The VLA config fixes the backbone's shape; an edited backbone file cannot change it.
    (d / "backbone_config.json").write_text('{"nope": 1}')
    loaded = VlaModel.from_pretrained(d)
    assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel() for p in model.parameters())
    weights = d / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ConfigError, match="weights do not fit"):
        VlaModel.from_pretrained(d)


def test_wrong_camera_count_is_a_config_error(model: VlaModel) -> None:
    inputs = _inputs()
    bad = VlaInputs(
        inputs.frames[:, :3], inputs.ego_history_ego_m, inputs.speed_mps, inputs.accel_mps2,
        inputs.yaw_rate_rps,
    )  # fmt: skip
    with pytest.raises(ConfigError, match="cameras, frames"):
        model.decide(bad)


def test_patch_order_matches_the_qwen_processor() -> None:
    """Each 2x2 spatial-merge block of patches is contiguous, as Qwen3-VL's processor lays
    them out: patch (gh, gw) of a frame pair sits at row (gh//2 * GW//2 + gw//2) * 4 + ..."""
    cfg = TINY
    frames = torch.zeros((1, 1, 4, 64, 128, 3), dtype=torch.uint8)
    # mark each 16-px patch of frame 0 with its row and column
    for r in range(4):
        for c in range(8):
            frames[0, 0, 0, r * 16 : (r + 1) * 16, c * 16 : (c + 1) * 16, 0] = r
            frames[0, 0, 0, r * 16 : (r + 1) * 16, c * 16 : (c + 1) * 16, 1] = c
    pixels, grid = frames_to_patches(frames, cfg)
    assert grid.tolist() == [[2, 4, 8]]
    p = pixels.view(-1, 3, 2, 16, 16)  # (patches, channel, time, y, x)
    rows = ((p[: 2 * 16, 0, 0, 0, 0] * 0.5 + 0.5) * 255).round().long()
    cols = ((p[: 2 * 16, 1, 0, 0, 0] * 0.5 + 0.5) * 255).round().long()
    expected = [(2 * br + i, 2 * bc + j) for br in range(2) for bc in range(4)
                for i in range(2) for j in range(2)]  # fmt: skip
    assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == expected

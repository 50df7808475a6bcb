"""VLA configurations: validation, the registry, and parameter counts on the meta device."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cordillera.cli.main import app
from cordillera.errors import ConfigError
from cordillera.vla.config import CONFIGS, TINY, VlaConfig, get_config
from cordillera.vla.info import parameter_counts


def test_registry_names_and_unknown_name_lists_them() -> None:
    assert set(CONFIGS) == {"tiny", "student", "teacher-10b", "teacher-32b"}
    with pytest.raises(ConfigError, match="tiny, student, teacher-10b, teacher-32b"):
        get_config("huge")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"text_layers": 0}, "text_layers"),
        ({"image_width_px": 100}, "image size"),
        ({"frames": 3}, "frames"),
        ({"mrope_section": (8, 8, 8)}, "mrope_section"),
        ({"text_heads": 3}, "text_heads"),
        ({"deepstack_layers": (5,)}, "deepstack_layers"),
        # hand-edited JSON: a string or a bool is named, not compared deep inside
        ({"text_layers": "4"}, "text_layers must be an int > 0, got '4'"),
        ({"flow_steps": True}, "flow_steps"),
        ({"dt_s": float("nan")}, "dt_s"),
    ],
)
def test_bad_values_are_rejected_with_the_value(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        TINY.with_(**changes)


def test_json_round_trip() -> None:
    for cfg in CONFIGS.values():
        assert VlaConfig.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg
    with pytest.raises(ConfigError, match="no field"):
        VlaConfig.from_json({"bogus": 1})


@pytest.mark.parametrize(("name", "target"), [("teacher-10b", 10.0e9), ("teacher-32b", 32.0e9)])
def test_teacher_counts_within_5_percent(name: str, target: float) -> None:
    counts = parameter_counts(get_config(name))
    assert abs(counts["total"] - target) / target < 0.05, counts
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")


def test_student_and_tiny_sizes() -> None:
    assert 1.0e9 <= parameter_counts(get_config("student"))["total"] <= 2.0e9
    assert parameter_counts(TINY)["total"] < 10e6


def test_model_info_cli_json() -> None:
    res = CliRunner().invoke(app, ["model", "info", "teacher-10b", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert abs(data["num_parameters"] - 10.0e9) / 10.0e9 < 0.05
    assert set(data["parts"]) == {"vision", "language", "ego_encoder", "action_expert"}
    bad = CliRunner().invoke(app, ["model", "info", "nope"])
    assert bad.exit_code == 2

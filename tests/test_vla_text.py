"""The VLA's tokenizer and text contract: round trips and parsing."""

from __future__ import annotations

import pytest
import torch

from cordillera.policy.plan import CausalObject, ChainOfCausation
from cordillera.policy.vocabulary import (
    LaneAction,
    LateralAction,
    LateralDecision,
    LongitudinalAction,
    LongitudinalDecision,
)
from cordillera.vla.synthetic import synthetic_samples
from cordillera.vla.text import (
    MetaActions,
    format_target,
    parse_coc,
    parse_output,
    summarize_labels,
    trajectory_tokens_text,
)
from cordillera.vla.tokenizer import EOS, META, build_tokenizer

COCS = [
    ChainOfCausation(
        LongitudinalDecision.YIELD,
        None,
        (CausalObject("12", "pedestrian", "crossing 14 m ahead", 2.0),),
        "slowing from 8.2 m/s",
    ),
    ChainOfCausation(
        LongitudinalDecision.STOP,
        LateralDecision.KEEP_LANE,
        (
            CausalObject("light:lane_3", "traffic_light", "red 20 m ahead"),
            CausalObject("veh_7", "vehicle", "stopped 9 m ahead"),
        ),
        "stopping from 4.0 m/s",
    ),
    ChainOfCausation(None, LateralDecision.TURN, (), ""),
    ChainOfCausation(None, None, (), "keeping 10.0 m/s"),
    ChainOfCausation(
        LongitudinalDecision.KEEP_DISTANCE, None, (CausalObject("3", "stop_sign", "x"),)
    ),
]


def test_tokenizer_is_deterministic_and_lossless_on_ascii() -> None:
    a, b = build_tokenizer(), build_tokenizer()
    assert a.get_vocab() == b.get_vocab()
    for coc in COCS:
        text = f"{coc.text()}{META} longitudinal=stop lateral=go_straight lane=none{EOS}"
        ids = a(text, add_special_tokens=False)["input_ids"]
        assert a.unk_token_id not in ids
        decoded = a.decode(ids)
        assert decoded == text
    weird = "Zebra-crossing #42 @ x=3.5; (ok)!"
    assert a.decode(a(weird)["input_ids"]) == weird


def test_closed_vocabulary_words_are_single_tokens() -> None:
    tok = build_tokenizer()
    for word in ("▁pedestrian", "▁yield", "gentle_deceleration", "▁keep", "lane_keep"):
        assert word in tok.get_vocab()
    ids = tok("Yield: pedestrian 12 is crossing", add_special_tokens=False)["input_ids"]
    assert len(ids) <= 10


@pytest.mark.parametrize("coc", COCS)
def test_coc_parse_round_trip(coc: ChainOfCausation) -> None:
    parsed = parse_coc(coc.text())
    assert parsed is not None
    assert (parsed.longitudinal, parsed.lateral) == (coc.longitudinal, coc.lateral)
    assert parsed.ego_motion == coc.ego_motion
    if coc.causes:
        c = coc.causes[0]
        assert parsed.causes[0].object_id == c.object_id
        assert parsed.causes[0].kind == c.kind
        assert parsed.causes[0].behaviour == c.behaviour
    if len(coc.causes) <= 1:
        assert parsed.text() == coc.text()


def test_parse_output_of_a_target_and_garbage() -> None:
    samples, _ = synthetic_samples(6, seed=1)
    tok = build_tokenizer()
    for s in samples:
        text = format_target(s)
        decoded = tok.decode(tok(text, add_special_tokens=False)["input_ids"])
        coc, meta = parse_output("<coc>" + decoded + "<pad><pad>")
        assert coc is not None and coc.text() == s.coc.text()
        assert meta is not None and meta.longitudinal in LongitudinalAction
    assert parse_output("") == (None, None)
    assert parse_output("Fly away: dragon 3 is big.<meta> longitudinal=warp") == (None, None)


def test_summarize_labels_rules() -> None:
    m = summarize_labels(
        ("gentle_deceleration",) * 5 + ("stop",) * 2,
        ("steer_left",) * 3 + ("go_straight",) * 4,
        ("lane_keep",) * 5 + ("turn_left", ""),
    )
    assert m == MetaActions(LongitudinalAction.STOP, LateralAction.STEER_LEFT, LaneAction.TURN_LEFT)
    assert summarize_labels(("maintain_speed",), ("go_straight",), ("",)).lane is None
    assert MetaActions(LongitudinalAction.STOP, LateralAction.GO_STRAIGHT, None).line() == (
        "longitudinal=stop lateral=go_straight lane=none"
    )


def test_trajectory_tokens() -> None:
    controls = torch.zeros(64, 2)
    controls[:, 0] = 1.0
    controls[:, 1] = -1.0
    text = trajectory_tokens_text(controls, bins=11, stride=8)
    assert text == "<traj_10><traj_0>" * 8
    samples, _ = synthetic_samples(1)
    target = format_target(samples[0], controls, bins=11, stride=8)
    assert target.endswith("<traj_10><traj_0>" + EOS)
    assert parse_output(target)[1] is not None


def test_sample_summary_is_the_baselines_summary() -> None:
    """The VLA is taught what the baselines' plans report: the lane manoeuvre of the highest
    rank, and within that rank the one held longest (not the lower enum value)."""
    from cordillera.vla.text import summarize_labels

    lanes = ["turn_right"] * 5 + ["turn_left"]
    meta = summarize_labels(["maintain_speed"] * 6, ["go_straight"] * 6, lanes)
    assert meta.lane is not None and meta.lane.text == "turn_right"
    assert summarize_labels(["maintain_speed"] * 6, ["go_straight"] * 6, [""] * 6).lane is None
    ends = summarize_labels(["maintain_speed"] * 5 + ["stop"], ["go_straight"] * 6, [""] * 6)
    assert ends.longitudinal.text == "stop"

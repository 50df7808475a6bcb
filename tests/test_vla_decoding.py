"""Fast VLA inference: the output grammar, jump-forward decoding (the same greedy choices as
one token per pass), ragged batches, the lean flow sampler and the matmul patch embedding."""

from __future__ import annotations

import pytest
import torch

from cordillera.vla.action_expert import ActionExpert
from cordillera.vla.config import TINY
from cordillera.vla.grammar import OutputGrammar, build_grammar
from cordillera.vla.inputs import VlaInputs, resize_frames
from cordillera.vla.model import VlaModel
from cordillera.vla.synthetic import synthetic_samples
from cordillera.vla.text import format_target, parse_output
from cordillera.vla.tokenizer import build_tokenizer, trajectory_token

CFG = TINY.with_(max_new_tokens=40)


def _inputs(b: int = 1, seed: int = 0) -> VlaInputs:
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (b, 7, 4, 144, 256, 3), generator=g, dtype=torch.uint8)
    hist = torch.stack([torch.linspace(-19, 0, 20), torch.zeros(20)], -1).expand(b, 20, 2)
    speed = 2.0 + 10.0 * torch.rand(b, generator=g)
    return VlaInputs(frames, hist, speed, torch.zeros(b), torch.zeros(b))


@pytest.fixture(scope="module")
def model() -> VlaModel:
    torch.manual_seed(0)
    return VlaModel(CFG).eval()


def _ids(text: str) -> list[int]:
    return [int(i) for i in build_tokenizer()(text, add_special_tokens=False)["input_ids"]]


def _grammar(trajectory_tokens: int = 0) -> OutputGrammar:
    g = build_grammar(build_tokenizer(), 1024, trajectory_tokens)
    assert g is not None
    return g


def test_grammar_accepts_every_training_target_and_forces_the_template() -> None:
    grammar = _grammar()
    samples, _ = synthetic_samples(40, seed=5)
    for s in samples:
        assert grammar.accepts(_ids(format_target(s)), 96), format_target(s)
    # not a text of the grammar: an unknown decision, a meta line without its labels, no <eos>
    assert not grammar.accepts(_ids("Fly: nothing on the path requires otherwise.<eos>"))
    assert not grammar.accepts(_ids("Stop: road x is y.<meta> longitudinal=<eos>"))
    assert not grammar.accepts(_ids(format_target(samples[0]))[:-1])
    # forced: the rest of a template clause, everything between the meta-action labels
    text = format_target(samples[0])
    ids, node, choices = _ids(text), grammar.start, 0
    for t in ids:
        if grammar.forced(node, 99) is None:
            choices += 1
        node = grammar.advance(node, t)
    assert node.final and choices < len(ids) * 0.7
    meta = _ids("<meta> longitudinal=stop lateral=go_straight lane=none<eos>")
    node = grammar.advance(grammar.start, _ids("Stop:")[0])
    for t in _ids("Stop: nothing on the path requires otherwise.")[1:]:
        node = grammar.advance(node, t)
    forced = []
    for t in meta:
        forced.append(grammar.forced(node, 99) == t)
        node = grammar.advance(node, t)
    # <meta> is a choice (or "The ego is"), then: longitudinal = | label | lateral = | ...
    assert forced == [False, True, True, False, True, True, False, True, True, False, True]


def test_grammar_with_trajectory_tokens() -> None:
    grammar = _grammar(trajectory_tokens=11)
    samples, _ = synthetic_samples(4, seed=1)
    controls = torch.zeros(64, 2)
    for s in samples:
        assert grammar.accepts(_ids(format_target(s, controls, 11, 8)))
        assert not grammar.accepts(_ids(format_target(s)))  # the trajectory tokens are due
    bad = format_target(samples[0]).replace("<eos>", trajectory_token(11) * 16 + "<eos>")
    assert not grammar.accepts(_ids(bad))  # bin 11 of 11 does not exist


def test_jump_forward_makes_the_greedy_choices_of_one_token_per_pass(model: VlaModel) -> None:
    """Every generated token is the argmax, over what the grammar allows, of the logits of a
    teacher-forced pass (the model-level transformers path) over the tokens before it; forced
    tokens are the grammar's."""
    inputs = _inputs(1, seed=3)
    ids, lengths, memory, pad = model.generate(inputs)
    n = int(lengths[0])
    grammar = model.grammar
    assert grammar is not None
    with torch.no_grad():
        hidden, logits = model.forward_text(inputs, ids[:, :n])
    node = grammar.start
    for i in range(n):
        tok = int(ids[0, i])
        allowed = grammar.allowed(node, CFG.max_new_tokens - i, logits.device)
        assert bool(allowed[tok])
        forced = grammar.forced(node, CFG.max_new_tokens - i)
        if forced is None:
            assert tok == int(logits[0, i].masked_fill(~allowed, float("-inf")).argmax())
        else:
            assert tok == forced
        node = grammar.advance(node, tok)
    # the expert's memory: the teacher-forced hidden states of prompt + fed tokens
    valid = int((~pad[0]).sum())
    torch.testing.assert_close(memory[0, :valid], hidden[0, :valid], atol=1e-4, rtol=1e-4)
    # an untrained model is closed into a parseable meta-action line by the budget
    text = model.tokenizer.decode(ids[0, :n].tolist())
    assert n == CFG.max_new_tokens and text.endswith("<eos>")
    assert parse_output(text)[1] is not None


def test_unconstrained_decoding_is_plain_greedy(model: VlaModel) -> None:
    plain = VlaModel(CFG.with_(constrained_decoding=False, max_new_tokens=8))
    plain.load_state_dict(model.state_dict())
    plain.eval()
    inputs = _inputs(1, seed=4)
    ids, lengths, memory, _ = plain.generate(inputs)
    n = int(lengths[0])
    with torch.no_grad():
        hidden, logits = plain.forward_text(inputs, ids[:, :n])
    assert ids[0, :n].tolist() == logits[0].argmax(-1).tolist()
    torch.testing.assert_close(memory[0], hidden[0, : memory.shape[1]], atol=1e-4, rtol=1e-4)


def test_ragged_batch_equals_single_rows() -> None:
    """Rows of a batch take different numbers of forced tokens per pass; each row's text and
    memory equal its single-row decision's."""
    torch.manual_seed(0)
    model = VlaModel(CFG).eval()
    with torch.no_grad():  # larger weights: an untrained model whose rows write different texts
        for name, p in model.named_parameters():
            if "norm" not in name and p.ndim >= 2:
                p.mul_(3.0)
    inputs = _inputs(3, seed=7)
    ids, lengths, memory, pad = model.generate(inputs)
    for r in range(3):
        one_ids, one_len, one_mem, one_pad = model.generate(inputs.index(torch.tensor([r])))
        n = int(one_len[0])
        assert int(lengths[r]) == n and ids[r, :n].tolist() == one_ids[0, :n].tolist()
        valid = int((~one_pad[0]).sum())
        assert int((~pad[r]).sum()) == valid
        torch.testing.assert_close(memory[r, :valid], one_mem[0, :valid], atol=1e-4, rtol=1e-4)
    texts = {model.tokenizer.decode(row.tolist()) for row in ids}
    assert len(texts) == 3  # the rows did diverge (forced runs of different lengths)


def test_lean_flow_sampler_equals_the_module_forward() -> None:
    torch.manual_seed(1)
    expert = ActionExpert(128, 128, 2, 4, 64).eval()
    memory = torch.randn(2, 30, 128)
    pad = torch.zeros(2, 30, dtype=torch.bool)
    pad[1, 20:] = True
    ego = torch.randn(2, 3)
    samples, steps = 3, 4
    with torch.no_grad():
        got = expert.sample(memory, pad, ego, steps, torch.Generator().manual_seed(9), samples)
        x = torch.randn((2 * samples, 64, 2), generator=torch.Generator().manual_seed(9))
        rep = lambda t: t.repeat_interleave(samples, 0)  # noqa: E731
        for i in range(steps):
            t = torch.full((2 * samples,), i / steps)
            x = x + (1.0 / steps) * expert(x, t, rep(memory), rep(pad), rep(ego))
    torch.testing.assert_close(got, x, atol=1e-5, rtol=1e-5)


def test_matmul_patch_embedding_equals_the_convolution(model: VlaModel) -> None:
    embed = model.backbone.model.visual.patch_embed
    assert type(embed).__name__ == "MatmulPatchEmbed"
    pixels = torch.randn(10, 3 * 2 * 16 * 16)
    conv = embed.proj(pixels.view(-1, 3, 2, 16, 16)).view(10, -1)
    torch.testing.assert_close(embed(pixels), conv, atol=1e-5, rtol=1e-5)
    # same parameter names as the transformers module (checkpoints unchanged)
    names = [n for n, _ in model.named_parameters() if "patch_embed" in n]
    assert names == ["backbone.model.visual.patch_embed.proj.weight",
                     "backbone.model.visual.patch_embed.proj.bias"]  # fmt: skip


@pytest.mark.parametrize(
    "shape", [(1, 7, 4, 144, 256, 3), (2, 1, 2, 100, 384, 3), (1, 1, 1, 1080, 1920, 3)]
)
def test_resize_is_adaptive_area_pooling_bit_for_bit(shape: tuple[int, ...]) -> None:
    frames = torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(2),
                           dtype=torch.uint8)  # fmt: skip
    x = frames.reshape(-1, *shape[-3:]).permute(0, 3, 1, 2).float()
    ref = torch.nn.functional.adaptive_avg_pool2d(x, (64, 128))
    ref = (
        ref.round()
        .clamp(0, 255)
        .to(torch.uint8)
        .permute(0, 2, 3, 1)
        .reshape(*shape[:-3], 64, 128, 3)
    )
    assert torch.equal(resize_frames(frames, 128, 64), ref)


def test_decoder_weights_follow_parameter_updates() -> None:
    """The lean decoder's (concatenated) weights are rebuilt after an in-place update, as an
    optimiser step or a state-dict load makes one."""
    torch.manual_seed(0)
    model = VlaModel(CFG.with_(max_new_tokens=4)).eval()
    inputs = _inputs(1, seed=1)
    _, _, before, _ = model.generate(inputs)
    with torch.no_grad():
        model.language_model.layers[0].self_attn.v_proj.weight.mul_(2.0)
    ids, lengths, after, _ = model.generate(inputs)
    assert not torch.equal(before, after)
    with torch.no_grad():
        hidden, _ = model.forward_text(inputs, ids[:, : int(lengths[0])])
    torch.testing.assert_close(after[0], hidden[0, : after.shape[1]], atol=1e-4, rtol=1e-4)

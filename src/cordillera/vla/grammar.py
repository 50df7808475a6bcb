"""The grammar of the VLA's text, as a token automaton for constrained greedy decoding.

What the model writes after ``<coc>`` (see :mod:`cordillera.vla.text`) is::

    WHAT ":" (NOTHING | " " KIND FREE) [" The ego is" FREE] "<meta>" " longitudinal=" LON
        " lateral=" LAT " lane=" LANE [TRAJ x 2·horizon/stride] "<eos>"

    WHAT    := "Drive on" | Lon | Lat | Lon " and " lat     (the first word capitalised)
    NOTHING := " nothing on the path requires otherwise."

Closed parts (WHAT, NOTHING, the cause kinds, ``The ego is``, the whole meta-action line, the
trajectory tokens, ``<eos>``) are tries over their tokenisations with this model's tokenizer.
FREE — the cause's id, behaviour, ``(and N more)`` and full stop, the ego's motion — is any
ordinary token (no special token but ``<meta>``, which ends it); after a cause, a full stop
followed by ``The`` opens the ego sentence (``ego is`` forced).

:class:`OutputGrammar` gives, for an automaton state, the tokens allowed next; where exactly one
is allowed the token is *forced* and the decoder appends it without asking the model
(jump-forward decoding: a run of forced tokens costs one decoder pass, not one per token).
Free text leaves every ordinary token allowed, so there the greedy choice is the model's own
argmax; in closed parts it is the argmax over the allowed tokens. A CoC that reaches the last
tokens of the budget (``max_new_tokens``) is closed: where ``<meta>`` may follow and the
longest meta-action line just fits, ``<meta>`` is forced, so a long CoC cannot crowd the
meta-action line out.

Built from strings through the tokenizer, so the same grammar serves Cordillera's tokenizer
and a local Qwen checkpoint's. :func:`build_grammar` checks that the tokenizer splits full
texts as it splits their parts (the automaton accepts sample texts) and returns None where it
does not — the decoder then runs unconstrained.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from cordillera.policy.vocabulary import (
    LaneAction,
    LateralAction,
    LateralDecision,
    LongitudinalAction,
    LongitudinalDecision,
)
from cordillera.vla.text import CAUSE_KINDS, MetaActions
from cordillera.vla.tokenizer import EOS, META, trajectory_token

NOTHING = " nothing on the path requires otherwise."
EGO_INTRO = " The ego is"


class GrammarError(ValueError):
    """The tokenizer cannot express the grammar (the decoder then runs unconstrained)."""


class Node:
    """One automaton state.

    Attributes:
        on: the transitions on listed tokens (sorted by id).
        default: where any other *free* token leads (free text), or None where only the
            listed tokens are allowed (a closed part).
        final: the text is complete (after ``<eos>``).
    """

    __slots__ = ("_masks", "default", "final", "on")

    def __init__(self, final: bool = False) -> None:
        self.on: dict[int, Node] = {}
        self.default: Node | None = None
        self.final = final
        self._masks: dict[str, torch.Tensor] = {}

    @property
    def forced(self) -> int | None:
        """The one token allowed here, if only one is."""
        if self.default is None and len(self.on) == 1:
            return next(iter(self.on))
        return None


class OutputGrammar:
    """The token automaton of :mod:`cordillera.vla.text`'s output (see the module docstring).

    Args:
        start: the state after ``<coc>``.
        free: ``(V,)`` bool, the tokens free text may hold.
        meta_id, eos_id: the ids of ``<meta>`` and ``<eos>``.
        meta_length: tokens of the longest ``<meta>`` … ``<eos>`` tail.
    """

    def __init__(
        self, start: Node, free: torch.Tensor, meta_id: int, eos_id: int, meta_length: int
    ) -> None:
        self.start = start
        self.free = free
        self.meta_id = meta_id
        self.eos_id = eos_id
        self.meta_length = meta_length
        self._meta_only: dict[str, torch.Tensor] = {}

    @property
    def vocab_size(self) -> int:
        return int(self.free.shape[0])

    def closes(self, node: Node, left: int) -> bool:
        """The CoC must end here: ``<meta>`` may follow and ``left`` tokens of budget hold
        just the longest meta-action line (``<meta>`` is then forced)."""
        return left == self.meta_length and self.meta_id in node.on

    def forced(self, node: Node, left: int) -> int | None:
        """The token forced at ``node`` with ``left`` tokens of budget, or None (a choice)."""
        if self.closes(node, left):
            return self.meta_id
        return node.forced

    def allowed(self, node: Node, left: int, device: torch.device) -> torch.Tensor:
        """``(V,)`` bool: the tokens allowed at ``node`` (cached per node and device)."""
        key = str(device)
        cache = self._meta_only if self.closes(node, left) else node._masks
        mask = cache.get(key)
        if mask is None:
            with torch.inference_mode(False):  # an ordinary tensor, whatever the caller's mode
                if cache is self._meta_only:
                    mask = torch.zeros_like(self.free)
                    mask[self.meta_id] = True
                else:
                    mask = (
                        self.free.clone()
                        if node.default is not None
                        else torch.zeros_like(self.free)
                    )
                    mask[list(node.on)] = True
                mask = cache[key] = mask.to(device)
        return mask

    def advance(self, node: Node, token: int) -> Node:
        """The state after ``token`` (which must be allowed)."""
        nxt = node.on.get(token)
        if nxt is None:
            if node.default is None or not bool(self.free[token]):
                raise GrammarError(f"token {token} is not allowed here")
            nxt = node.default
        return nxt

    def accepts(self, ids: Iterable[int], max_new_tokens: int | None = None) -> bool:
        """Whether the token sequence is a complete text of the grammar (``<eos>`` included)
        that a constrained decoder with this budget may write."""
        node = self.start
        for i, t in enumerate(ids):
            left = max_new_tokens - i if max_new_tokens else -1
            f = self.forced(node, left)
            if (f is not None and t != f) or node.final:
                return False
            try:
                node = self.advance(node, t)
            except GrammarError:
                return False
        return node.final


def _tokens(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise GrammarError(f"{text!r} tokenizes to nothing")
    return [int(i) for i in ids]


def _trie(alternatives: Sequence[tuple[Sequence[int], Node]]) -> Node:
    """A trie whose alternatives' last tokens lead to their targets (no alternative may be a
    prefix of another that leads elsewhere)."""
    root = Node()
    inner = {id(root)}
    for ids, target in alternatives:
        node = root
        for i, t in enumerate(ids):
            nxt = node.on.get(t)
            if i == len(ids) - 1:
                if nxt is not None and nxt is not target:
                    raise GrammarError(f"alternative {list(ids)} is a prefix of another")
                node.on[t] = target
            elif nxt is None:
                nxt = node.on[t] = Node()
                inner.add(id(nxt))
                node = nxt
            elif id(nxt) in inner:
                node = nxt
            else:
                raise GrammarError(f"alternative {list(ids)} extends a complete one")
    return root


def _sort(node: Node, seen: set[int]) -> None:
    if id(node) in seen:
        return
    seen.add(id(node))
    node.on = dict(sorted(node.on.items()))
    for nxt in node.on.values():
        _sort(nxt, seen)
    if node.default is not None:
        _sort(node.default, seen)


def _whats() -> list[str]:
    lon = [d.text.replace("_", " ") for d in LongitudinalDecision]
    lat = [d.text.replace("_", " ") for d in LateralDecision]
    whats = ["drive on", *lon, *lat] + [f"{a} and {b}" for a in lon for b in lat]
    return [w.capitalize() for w in whats]


def _meta_lines() -> list[MetaActions]:
    lanes: list[LaneAction | None] = [*LaneAction, None]
    return [
        MetaActions(lo, la, ln) for lo in LongitudinalAction for la in LateralAction for ln in lanes
    ]


def _build(
    tokenizer: PreTrainedTokenizerBase, vocab_size: int, trajectory_tokens: int, pairs: int
) -> OutputGrammar:
    tok = lambda s: _tokens(tokenizer, s)  # noqa: E731
    meta_id, eos_id = tok(META), tok(EOS)
    if len(meta_id) != 1 or len(eos_id) != 1:
        raise GrammarError("<meta> and <eos> must be single tokens")
    end = Node(final=True)
    eos_node = _trie([(eos_id, end)])
    # <meta> line, then the trajectory tokens (a chain of closed steps), then <eos>.
    after_meta = eos_node
    if trajectory_tokens > 0:
        traj_ids = [tok(trajectory_token(k)) for k in range(trajectory_tokens)]
        if any(len(t) != 1 for t in traj_ids):
            raise GrammarError("trajectory tokens must be single tokens")
        for _ in range(2 * pairs):
            after_meta = _trie([(t, after_meta) for t in traj_ids])
    lines = [tok(f"{META} {m.line()}") for m in _meta_lines()]
    meta_entry = _trie([(ids, after_meta) for ids in lines])
    meta_length = max(len(ids) for ids in lines) + 2 * pairs * (trajectory_tokens > 0) + 1
    # Free text ends at <meta>; after a cause, "." then "The" opens the ego sentence.
    ego = Node()
    ego.default = ego
    ego.on[meta_id[0]] = meta_entry.on[meta_id[0]]
    intro = tok(EGO_INTRO)
    intro_entry = _trie([(intro, ego)])
    cause, cause_dot = Node(), Node()
    cause.default = cause_dot.default = cause
    period = tok("x.")[-1]
    for n in (cause, cause_dot):
        n.on[meta_id[0]] = meta_entry.on[meta_id[0]]
        n.on[period] = cause_dot
    if intro[0] != period:
        cause_dot.on[intro[0]] = intro_entry.on[intro[0]]
    after_first = _trie([(intro, ego)])
    after_first.on[meta_id[0]] = meta_entry.on[meta_id[0]]
    kinds = [(tok(" " + k.replace("_", " ")), cause) for k in CAUSE_KINDS]
    because = _trie([(tok(NOTHING), after_first), *kinds])
    start = _trie([(tok(w + ":"), because) for w in _whats()])
    _sort(start, set())
    free = torch.zeros(vocab_size, dtype=torch.bool)
    free[: min(len(tokenizer), vocab_size)] = True
    special = [int(i) for i in tokenizer.all_special_ids if int(i) < vocab_size]
    free[special] = False
    return OutputGrammar(start, free, meta_id[0], eos_id[0], meta_length)


def _samples(trajectory_tokens: int, pairs: int) -> list[str]:
    """Texts the grammar must accept (the check that the tokenizer splits full texts as it
    splits their parts)."""
    bins = max(1, trajectory_tokens)
    traj = "".join(trajectory_token(k % bins) for k in range(2 * pairs))
    tail = (traj if trajectory_tokens > 0 else "") + EOS
    metas = _meta_lines()
    out = []
    for i, what in enumerate(_whats()):
        m = metas[(7 * i) % len(metas)]
        kind = CAUSE_KINDS[i % len(CAUSE_KINDS)].replace("_", " ")
        out.append(f"{what}:{NOTHING}{META} {m.line()}{tail}")
        out.append(
            f"{what}: {kind} veh_{i}.3 is moving at 5.9 m/s 27 m ahead (and 2 more)."
            f"{EGO_INTRO} slowing from {i}.{i} m/s.{META} {m.line()}{tail}"
        )
        out.append(f"{what}:{NOTHING}{EGO_INTRO} standing.{META} {m.line()}{tail}")
    return out


def build_grammar(
    tokenizer: PreTrainedTokenizerBase,
    vocab_size: int,
    trajectory_tokens: int = 0,
    horizon: int = 64,
    trajectory_token_stride: int = 8,
) -> OutputGrammar | None:
    """The output grammar with ``tokenizer``'s ids over ``vocab_size`` logits, or None where
    the tokenizer cannot express it (a text's tokens differ from its parts')."""
    pairs = horizon // trajectory_token_stride
    try:
        grammar = _build(tokenizer, vocab_size, trajectory_tokens, pairs)
    except GrammarError:
        return None
    for text in _samples(trajectory_tokens, pairs):
        if not grammar.accepts(_tokens(tokenizer, text)):
            return None
    return grammar


__all__ = ["GrammarError", "Node", "OutputGrammar", "build_grammar"]

"""Cordillera's offline tokenizer: a closed driving vocabulary, built deterministically.

The VLA's text is a Chain-of-Causation sentence followed by a meta-action line (see
:mod:`cordillera.vla.text`); its words come from closed vocabularies (decisions, meta-actions,
object kinds, the CoC template, the labeller's behaviour phrases). The tokenizer is a Hugging
Face ``tokenizers`` WordPiece model over those words, built in code — nothing is downloaded:

* spaces become a ``▁`` prefix of the next word (as in SentencePiece), so decoding is exact;
* numbers are split digit by digit and the punctuation ``. , : ; ( ) / = ' -`` stands alone;
* any other ASCII word falls back to pieces of itself (every printable character is in the
  vocabulary, with and without ``▁``), so no ASCII text is lost; other characters become
  ``<unk>``;
* special tokens: ``<pad> <unk> <eos> <image> <hist> <coc> <meta>``, one ``<cam:NAME>`` per
  known camera, time tags ``<t-0>``… (``<t-0>`` = the newest frame), and ``<traj_0>``… for the
  optional discrete trajectory tokens.

Token ids depend only on this file (and the vocabularies it reads), so a run's saved tokenizer
and a freshly built one agree; the run still saves its own copy.
"""

from __future__ import annotations

import string
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from cordillera.errors import ConfigError
from cordillera.policy.vocabulary import (
    LaneAction,
    LateralAction,
    LateralDecision,
    LongitudinalAction,
    LongitudinalDecision,
)
from cordillera.sensors.presets import AV2_RING_CAMERAS, RING7_LAYOUT

PAD, UNK, EOS = "<pad>", "<unk>", "<eos>"
IMAGE, HIST, COC, META = "<image>", "<hist>", "<coc>", "<meta>"
MAX_TIME_TAGS = 16
"""Time tags ``<t-0>`` … ``<t-15>``: frames (or frame groups) back from the newest."""
MAX_TRAJECTORY_TOKENS = 256
"""Trajectory tokens ``<traj_0>`` … ``<traj_255>`` (bins of the optional discrete option)."""
SPACE = "▁"

KNOWN_CAMERAS: tuple[str, ...] = tuple(n for n, *_ in RING7_LAYOUT) + AV2_RING_CAMERAS

# Words of the CoC template (policy/plan.py), the planner's and labeller's behaviour phrases,
# the meta-action line, and common driving words. Adding words changes token ids: append only.
_WORDS = """
drive on nothing the path requires otherwise and more ego is a an of to in at from by with
without for its it no not vehicle pedestrian cyclist other traffic light stop sign road
standing crossing walking riding along stopped moving ahead away behind left right slowing
stopping accelerating keeping cutting changing lane lanes merging turning on collision
course red yellow green amber unknown car truck bus bicycle motorcycle junction intersection
crosswalk ramp roundabout front rear side oncoming parked leading lead following braking
hard cut jaywalking emerging occluded signal meta longitudinal lateral decision none m s mps
""".split()  # noqa: SIM905 - a word list reads best as text


def _special_tokens() -> list[str]:
    cams = [f"<cam:{c}>" for c in KNOWN_CAMERAS]
    times = [f"<t-{i}>" for i in range(MAX_TIME_TAGS)]
    traj = [f"<traj_{i}>" for i in range(MAX_TRAJECTORY_TOKENS)]
    return [PAD, UNK, EOS, IMAGE, HIST, COC, META, *cams, *times, *traj]


def _vocabulary_words() -> list[str]:
    words: list[str] = list(_WORDS)
    for vocab in (LongitudinalDecision, LateralDecision):
        for m in vocab:
            words += m.text.split("_")  # decisions are written with spaces in a CoC
    for label_vocab in (LongitudinalAction, LateralAction, LaneAction):
        words += [m.text for m in label_vocab]  # meta-action labels are one token each
    words += [w.capitalize() for w in list(words)]  # sentence starts
    seen: dict[str, None] = {}
    for w in words:
        seen.setdefault(w, None)
    return list(seen)


def _vocab() -> dict[str, int]:
    tokens = _special_tokens()
    chars = [c for c in string.printable if c not in string.whitespace]
    tokens += [SPACE, *chars, *(SPACE + c for c in chars)]
    words = _vocabulary_words()
    # With and without the space mark: words also follow punctuation (``(and``, ``=stop``).
    tokens += [SPACE + w for w in words] + words
    out: dict[str, int] = {}
    for t in tokens:
        out.setdefault(t, len(out))
    return out


def build_tokenizer() -> PreTrainedTokenizerFast:
    """The Cordillera tokenizer (deterministic: same ids on every machine)."""
    vocab = _vocab()
    tok = Tokenizer(models.WordPiece(vocab, unk_token=UNK, continuing_subword_prefix=""))
    # Newlines and tabs are spaces to the model: the meta-action line is told apart by <meta>.
    tok.normalizer = normalizers.Replace(Regex(r"\s+"), " ")
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="always", split=True),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.Split(Regex(r"[.,:;()/='\-]"), behavior="isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement=SPACE, prepend_scheme="always", split=True)
    specials = _special_tokens()
    tok.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        unk_token=UNK,
        eos_token=EOS,
        additional_special_tokens=[t for t in specials if t not in (PAD, UNK, EOS)],
        clean_up_tokenization_spaces=False,
    )
    return fast


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """A tokenizer saved with a run (``tokenizer.json``), read without any network access."""
    p = Path(path)
    if not (p / "tokenizer.json").is_file():
        raise ConfigError(f"{p}: no tokenizer.json (not a saved VLA tokenizer)")
    tok = PreTrainedTokenizerFast.from_pretrained(str(p), local_files_only=True)
    if not isinstance(tok, PreTrainedTokenizerFast):  # pragma: no cover - defensive
        raise ConfigError(f"{p}: not a fast tokenizer")
    return tok


def camera_tag(name: str) -> str:
    """The prompt tag of a camera (``<cam:front_wide_120fov>``)."""
    if name not in KNOWN_CAMERAS:
        raise ConfigError(f"camera {name!r} has no tag (known: {', '.join(KNOWN_CAMERAS)})")
    return f"<cam:{name}>"


def time_tag(frames_back: int) -> str:
    """The prompt tag of the frame (group) ``frames_back`` steps before the newest."""
    if not 0 <= frames_back < MAX_TIME_TAGS:
        raise ConfigError(f"time tag {frames_back} outside [0, {MAX_TIME_TAGS})")
    return f"<t-{frames_back}>"


def trajectory_token(k: int) -> str:
    if not 0 <= k < MAX_TRAJECTORY_TOKENS:
        raise ConfigError(f"trajectory token {k} outside [0, {MAX_TRAJECTORY_TOKENS})")
    return f"<traj_{k}>"


def token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    """The id of one token of ``tokenizer`` (an error when it has none)."""
    i = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(i, int) or (i == tokenizer.unk_token_id and token != tokenizer.unk_token):
        raise ConfigError(f"tokenizer has no token {token!r}")
    return i


def padded_vocab_size(tokenizer: PreTrainedTokenizerFast, multiple: int = 64) -> int:
    """Embedding rows for ``tokenizer`` rounded up (to a multiple, for matmul efficiency)."""
    n = len(tokenizer)
    return -(-n // multiple) * multiple


__all__ = [
    "COC",
    "EOS",
    "HIST",
    "IMAGE",
    "KNOWN_CAMERAS",
    "META",
    "PAD",
    "UNK",
    "build_tokenizer",
    "camera_tag",
    "load_tokenizer",
    "padded_vocab_size",
    "time_tag",
    "token_id",
    "trajectory_token",
]

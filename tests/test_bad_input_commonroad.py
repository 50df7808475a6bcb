"""Malformed CommonRoad XML: the reader returns a scene or raises SceneFormatError, nothing else.

Random byte mutations (hypothesis) of a real scenario, plus targeted edits: deleted elements,
non-numbers in coordinates, dropped attributes, absurd time steps and light cycles.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import shared_path
from cordillera.errors import SceneFormatError
from cordillera.scene.readers import read_scene
from fuzzing import assert_reads_or_format_error, mutated_bytes
from test_reader_commonroad import write_scenario

REAL = "misc/DEU_B471-1_1_I-1-1.cr.xml"  # the smallest real file: 10 kB, all obstacle kinds


@pytest.fixture(scope="module")
def real_bytes() -> bytes:
    return shared_path("commonroad", REAL).read_bytes()


def test_real_file_reads(tmp_path: Path, real_bytes: bytes) -> None:
    path = tmp_path / "scenario.xml"
    path.write_bytes(real_bytes)
    assert read_scene(path).num_objects == 4


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_mutated_real_file(tmp_path: Path, real_bytes: bytes, data: st.DataObject) -> None:
    path = tmp_path / "mutated.xml"
    path.write_bytes(data.draw(mutated_bytes(real_bytes)))
    start = time.perf_counter()
    assert_reads_or_format_error(path)
    assert time.perf_counter() - start < 5.0  # garbage must not make parsing hang


# Text values commonroad-io converts with float()/int() or looks up in enums.
_ODD_VALUES = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "", "abc", "-1", "0", "1e308", "99999999", "true"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**12), 10**12).map(str),
    st.text(max_size=6),
)
_VALUE = re.compile(r'>([^<>]+)<|="([^"]*)"')


@st.composite
def mutated_values(draw: st.DrawFn, original: str) -> str:
    """``original`` with 1–3 element texts or attribute values replaced; still well-formed XML."""
    spans = [m.span(1) if m.group(1) is not None else m.span(2) for m in _VALUE.finditer(original)]
    picks = sorted(
        set(draw(st.lists(st.integers(0, len(spans) - 1), min_size=1, max_size=3))), reverse=True
    )
    text = original
    for i in picks:  # right to left, so earlier spans stay valid
        a, b = spans[i]
        value = draw(_ODD_VALUES).replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
        text = text[:a] + value + text[b:]
    return text


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_mutated_values_of_a_made_file(tmp_path: Path, data: st.DataObject) -> None:
    """Deeper than byte flips: the XML stays well-formed, so the values reach the converters."""
    path = tmp_path / "DEU_Cordillera-1.xml"
    if not path.exists():
        write_scenario(path)
        (tmp_path / "original.xml").write_text(path.read_text())
    original = (tmp_path / "original.xml").read_text()
    path.write_text(data.draw(mutated_values(original)))
    start = time.perf_counter()
    assert_reads_or_format_error(path)
    assert time.perf_counter() - start < 5.0


# --- targeted edits ----------------------------------------------------------------------------

Edit = Callable[[str], str]


def _delete(tag: str, nth: int = 0) -> Edit:
    """Remove the ``nth`` ``<tag ...>...</tag>`` element."""

    def edit(text: str) -> str:
        matches = list(re.finditer(rf"<{tag}\b[^>]*>.*?</{tag}>", text, flags=re.S))
        m = matches[nth]
        return text[: m.start()] + text[m.end() :]

    return edit


def _set_first(pattern: str, value: str, after: str = "") -> Edit:
    """Replace group 1 of the first ``pattern`` match (after the text ``after``) by ``value``."""

    def edit(text: str) -> str:
        offset = text.index(after) if after else 0
        m = re.compile(pattern, flags=re.S).search(text, offset)
        assert m is not None, pattern
        return text[: m.start(1)] + value + text[m.end(1) :]

    return edit


def _drop_attribute(name: str) -> Edit:
    return lambda text: re.sub(rf'\s{name}="[^"]*"', "", text, count=1)


# (edit, whether the file must be rejected, text the error must mention)
REAL_EDITS: dict[str, tuple[Edit, bool, str]] = {
    "no leftBound": (_delete("leftBound"), True, "lanelet"),
    "no shape": (_delete("shape"), True, ""),
    "no initialState": (_delete("initialState"), True, ""),
    "no trajectory": (_delete("trajectory"), False, ""),
    "no planning problem": (_delete("planningProblem"), False, ""),
    "no goal state": (_delete("goalState"), False, ""),  # commonroad-io allows it
    "no lanelets": (lambda t: re.sub(r"<lanelet\b.*?</lanelet>", "", t, flags=re.S), True, ""),
    "lanelet x nan": (_set_first(r"<x>([^<]*)</x>", "nan"), True, "lanelet"),
    "lanelet x abc": (_set_first(r"<x>([^<]*)</x>", "abc"), True, "lanelet"),
    "lanelet x empty": (_set_first(r"<x>([^<]*)</x>", ""), True, "lanelet"),
    "obstacle x nan": (
        _set_first(r"<x>([^<]*)</x>", "nan", after="<dynamicObstacle"),
        True,
        "dynamicObstacle",
    ),
    "obstacle y inf": (
        _set_first(r"<y>([^<]*)</y>", "inf", after="<dynamicObstacle"),
        True,
        "dynamicObstacle",
    ),
    "static obstacle x nan": (
        _set_first(r"<point>\s*<x>([^<]*)</x>", "nan", after="<staticObstacle"),
        True,
        "staticObstacle",
    ),
    "orientation nan": (
        _set_first(r"<orientation>\s*<exact>([^<]*)<", "nan", after="<dynamicObstacle"),
        True,
        "orientation",
    ),
    "length abc": (_set_first(r"<length>([^<]*)</length>", "abc"), True, ""),
    "length negative": (_set_first(r"<length>([^<]*)</length>", "-4.5"), True, ""),
    "planning x nan": (
        _set_first(r"<x>([^<]*)</x>", "nan", after="<planningProblem"),
        True,
        "planningProblem",
    ),
    "time step huge": (
        _set_first(r"<time>\s*<exact>([^<]*)<", "99999999", after="<trajectory"),
        True,
        "time",
    ),
    "time step negative": (
        _set_first(r"<time>\s*<exact>([^<]*)<", "-3", after="<trajectory"),
        True,
        "time",
    ),
    "time step fraction": (
        _set_first(r"<time>\s*<exact>([^<]*)<", "1.5", after="<trajectory"),
        True,
        "",
    ),
    "no timeStepSize": (_drop_attribute("timeStepSize"), True, ""),
    "timeStepSize zero": (_set_first(r'timeStepSize="([^"]*)"', "0"), True, "timeStepSize"),
    "timeStepSize nan": (_set_first(r'timeStepSize="([^"]*)"', "nan"), True, "timeStepSize"),
    "no commonRoadVersion": (_drop_attribute("commonRoadVersion"), True, ""),
    "unknown version": (_set_first(r'commonRoadVersion="([^"]*)"', "1999z"), True, ""),
    "no benchmarkID": (_drop_attribute("benchmarkID"), True, ""),
    "no lanelet id": (_set_first(r'<lanelet( id="[^"]*")>', ""), True, ""),
    "lanelet id text": (_set_first(r'<lanelet id="([^"]*)"', "abc"), True, "lanelet"),
    "dangling successor": (
        _set_first(r"<lanelet [^>]*>(.)", '<successor ref="424242"/>'),
        False,
        "",
    ),
    "unknown obstacle type": (_set_first(r"<type>([^<]*)</type>", "spaceship"), True, ""),
    "speed sign abc": (_set_first(r"<additionalValue>([^<]*)<", "abc"), True, "trafficSign"),
    "truncated": (lambda t: t[: len(t) // 2], True, "XML"),
    "not xml": (lambda t: "lanelet,x,y\n1,2,3\n", True, "XML"),
}


@pytest.mark.parametrize("case", sorted(REAL_EDITS))
def test_targeted_edits_of_a_real_file(tmp_path: Path, real_bytes: bytes, case: str) -> None:
    edit, must_fail, mention = REAL_EDITS[case]
    text = real_bytes.decode()
    edited = edit(text)
    assert edited != text, "the edit did not change the file"
    path = tmp_path / "edited.xml"
    path.write_text(edited)
    _check(path, must_fail, mention)


# Edits of the hand-made scenario, which has a light, signs, a stop line and a crosswalk.
MADE_EDITS: dict[str, tuple[Edit, bool, str]] = {
    "cycle duration negative": (
        _set_first(r"<duration>([^<]*)</duration>", "-5"),
        True,
        "trafficLight",
    ),
    "cycle all zero": (
        lambda t: re.sub(r"<duration>[^<]*</duration>", "<duration>0</duration>", t),
        True,
        "trafficLight",
    ),
    "cycle duration abc": (_set_first(r"<duration>([^<]*)</duration>", "abc"), True, ""),
    "light colour unknown": (_set_first(r"<color>([^<]*)</color>", "purple"), True, ""),
    "no cycle": (_delete("cycle"), True, "trafficLight"),
    "stop line x nan": (
        _set_first(r"<x>([^<]*)</x>", "nan", after="<stopLine>"),
        True,
        "",
    ),
    "stop line one point": (_delete("point", nth=13), True, ""),
    "sign position nan": (
        _set_first(r"<x>([^<]*)</x>", "nan", after="<trafficSign id"),
        True,
        "trafficSign",
    ),
    # An unknown sign id is an unknown sign (commonroad-io keeps it), not a broken file.
    "unknown sign id": (_set_first(r"<trafficSignID>([^<]*)<", "999-99"), False, ""),
    "no sign element": (_delete("trafficSignElement"), False, ""),
    "crosswalk x nan": (
        _set_first(r"<x>([^<]*)</x>", "nan", after='<lanelet id="5"'),
        True,
        "lanelet",
    ),
    "goal centre nan": (
        _set_first(r"<x>([^<]*)</x>", "nan", after="<goalState>"),
        True,
        "",
    ),
    "no goal position": (_delete("position", nth=-1), False, ""),
    "lanelet type unknown": (_set_first(r"<laneletType>([^<]*)<", "moonbase"), True, ""),
    "line marking unknown": (_set_first(r"<lineMarking>([^<]*)<", "zigzag"), True, ""),
}


@pytest.mark.parametrize("case", sorted(MADE_EDITS))
def test_targeted_edits_of_a_made_file(tmp_path: Path, case: str) -> None:
    edit, must_fail, mention = MADE_EDITS[case]
    path = write_scenario(tmp_path / "DEU_Cordillera-1.xml")
    text = path.read_text()
    edited = edit(text)
    assert edited != text, "the edit did not change the file"
    path.write_text(edited)
    _check(path, must_fail, mention)


def _check(path: Path, must_fail: bool, mention: str) -> None:
    scene = assert_reads_or_format_error(path)
    if must_fail:
        assert scene is None, "a broken file was accepted"
        with pytest.raises(SceneFormatError) as info:
            read_scene(path)
        assert info.value.path == str(path)
        assert mention in str(info.value), str(info.value)


def test_entity_bomb_is_refused_quickly(tmp_path: Path) -> None:
    """A "billion laughs" DTD: expat's amplification limit stops it, no hang, no memory blow-up."""
    entities = "".join(
        f' <!ENTITY e{i} "{(f"&e{i - 1};" if i else "lol") * 10}">\n' for i in range(10)
    )
    path = tmp_path / "bomb.xml"
    path.write_text(
        f'<?xml version="1.0"?>\n<!DOCTYPE b [\n{entities}]>\n'
        '<commonRoad timeStepSize="0.1" commonRoadVersion="2020a" benchmarkID="ZAM_Bomb-1">'
        "<location><geoNameId>&e9;</geoNameId></location></commonRoad>\n"
    )
    start = time.perf_counter()
    with pytest.raises(SceneFormatError) as info:
        read_scene(path)
    assert time.perf_counter() - start < 5.0
    assert "XML" in str(info.value) and info.value.path == str(path)


def test_missing_file_is_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(SceneFormatError) as info:
        read_scene(tmp_path / "absent.xml")
    assert info.value.path is not None

"""Property tests and a linearity check for the Cookie request-header parser.

``koasession.cookies.parse_cookie_header(values)`` takes every ``cookie`` header field of a
request (HTTP/2 may send several) and returns ``{name: value}``; the first occurrence of a name
wins and names are matched exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from koasession.cookies import TOKEN_CHARS, parse_cookie_header

# RFC 6265 cookie-octet: visible ASCII except DQUOTE, comma, semicolon and backslash.
COOKIE_OCTETS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\')
TOKENS = "".join(sorted(TOKEN_CHARS))

names = st.text(alphabet=TOKENS, min_size=1, max_size=20)
values = st.text(alphabet=COOKIE_OCTETS, max_size=40)
# Text a client could put in a header field (latin-1, as ASGI servers decode it), with the
# characters that matter to the grammar made frequent.
header_text = st.text(
    alphabet=st.sampled_from(list(';= \t"\\,abcAB.\x00\x7f\xff\u00e9')) | st.characters(),
    max_size=300,
)


@settings(max_examples=1000)
@given(st.lists(header_text, max_size=5))
def test_parser_never_raises_and_returns_clean_pairs(fields: list[str]) -> None:
    jar = parse_cookie_header(fields)
    assert isinstance(jar, dict)
    for name, value in jar.items():
        assert isinstance(name, str) and isinstance(value, str)
        assert name and name == name.strip(" \t")
        assert ";" not in name and "=" not in name
        assert ";" not in value
        assert value == value.strip()


@settings(max_examples=500)
@given(st.lists(st.tuples(names, values), max_size=20))
def test_well_formed_header_round_trips_first_occurrence_wins(pairs: list[tuple[str, str]]) -> None:
    expected: dict[str, str] = {}
    for name, value in pairs:
        expected.setdefault(name, value)
    header = "; ".join(f"{n}={v}" for n, v in pairs)
    assert parse_cookie_header([header]) == expected


@settings(max_examples=500)
@given(st.lists(st.tuples(names, values), max_size=20), st.data())
def test_several_fields_read_like_one_joined_header(
    pairs: list[tuple[str, str]], data: st.DataObject
) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(pairs)), max_size=4)))
    fields, start = [], 0
    for cut in [*cuts, len(pairs)]:
        fields.append("; ".join(f"{n}={v}" for n, v in pairs[start:cut]))
        start = cut
    joined = "; ".join(f"{n}={v}" for n, v in pairs)
    assert parse_cookie_header(fields) == parse_cookie_header([joined])


@settings(max_examples=300)
@given(names, values)
def test_names_match_exactly_and_case_sensitively(name: str, value: str) -> None:
    other = name.swapcase()
    header = f"x{name}={value}; {name}y=z"
    if other != name:
        header += f"; {other}=u"
    header += f"; {name}={value}"
    jar = parse_cookie_header([header])
    assert jar[name] == value
    assert jar[f"x{name}"] == value and jar[f"{name}y"] == "z"
    if other != name:
        assert jar[other] == "u"


# --------------------------------------------------------------------------- linearity

PATHOLOGICAL: dict[str, Callable[[int], list[str]]] = {
    "backslashes": lambda n: ["\\" * n],
    "semicolons": lambda n: [";" * n],
    "equals": lambda n: ["=" * n],
    "nameless": lambda n: ["=x;" * (n // 3)],
    "spaces": lambda n: [" " * n + "a=b"],
    "many cookies": lambda n: ["; ".join(f"c{i}=v" for i in range(n // 8))],
    "same name": lambda n: ["; ".join("a=b" for _ in range(n // 5))],
    "quotes": lambda n: ['a="' + '\\"' * (n // 2)],
    "many fields": lambda n: ["a=b"] * (n // 4),
    "long value": lambda n: ["a=" + "v" * n],
}


def _best_time(fields: list[str], repeat: int = 5) -> float:
    # CPU time of this thread: other processes on a busy machine do not inflate the ratio.
    best = float("inf")
    for _ in range(repeat):
        start = time.thread_time()
        parse_cookie_header(fields)
        best = min(best, time.thread_time() - start)
    return max(best, 1e-6)


def test_parser_is_linear_on_pathological_input() -> None:
    n = 64 * 1024
    ratios = {}
    for label, make in PATHOLOGICAL.items():
        small, large = make(n), make(8 * n)
        _best_time(small, 1)  # warm up
        ratios[label] = _best_time(large) / _best_time(small)
    # linear: about 8; quadratic: about 64. 30 leaves ample room for timer noise.
    slow = {k: round(v, 1) for k, v in ratios.items() if v >= 30}
    assert not slow, f"super-linear parse times (8x input): {slow}"

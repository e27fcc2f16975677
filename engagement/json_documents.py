"""Which JSON documents the readers judge themselves, and the strict verdict they give.

Engines parse JSON with parsers that disagree at the edges: DuckDB's yyjson accepts
trailing commas and ``NaN``; Snowpark local testing is Python's ``json`` (lone surrogates,
duplicate keys with the last winning); Snowflake's ``TRY_PARSE_JSON`` returns NULL for
duplicate keys. So that every engine gives the same verdict on the same bytes, a document
that shows any of those constructs (or does not even look like one object) is judged here,
once, by a strict RFC 8259 parser, and reaches the engines either with a ``parse_error``
or known to be plain JSON. The engines parse only documents where their parsers agree.

The screen is vectorised: one RE2 pass over the column (about 0.35 s per million events on
the 2-core machine of the README), plus a count of brackets in documents long enough to nest
too deep. False positives only cost a strict parse of that document in Python.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

JSON_WHITESPACE = " \t\r\n"
# Deeper documents are refused: Python's parser (local testing) recurses per level.
MAX_DEPTH = 200
# Constructs where the engines' parsers disagree (anywhere: inside a string is a false positive).
# NaN/Infinity; a trailing comma; a surrogate escape; an exponent of 3+ digits (beyond a double);
# two values side by side; comments; single quotes.
_SUSPECT = (
    r"NaN|Infinity|,[ \t\r\n]*[\]}]|\\u[dD][89a-fA-F]|[0-9][eE][+-]?[0-9]{3}"
    r"|\}[ \t\r\n]*\{|/[/*]|'"
)
_OPENERS = r"[\[{]"


def _screen(keys: tuple[str, ...]) -> str:
    """The one regex of every suspect construct, and of each key of the model appearing twice."""
    return "|".join([_SUSPECT, *(f'"{re.escape(k)}".*"{re.escape(k)}"' for k in keys)])
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class _Object(list):
    """An object's (key, value) pairs in document order, so duplicate keys can be seen."""


def _pairs(pairs: list[tuple[str, object]]) -> _Object:
    return _Object(pairs)


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:40]} is too large for a double")
    return value


def _strings(value: object) -> Iterable[str]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, (tuple, list)):
            stack.extend(item)


def strict_verdict(text: str, keys: tuple[str, ...]) -> str | None:
    """Why ``text`` is no strict JSON object with each of ``keys`` at most once (None: it is one)."""
    try:
        value = json.loads(text, object_pairs_hook=_pairs, parse_constant=_reject_constant,
                           parse_float=_finite)
    except RecursionError:
        return f"not valid JSON (nested deeper than {MAX_DEPTH} levels)"
    except ValueError as exc:
        return f"not valid JSON ({str(exc).split(':')[0]})"
    if not isinstance(value, _Object):
        return "not a JSON object"
    if any(_LONE_SURROGATE.search(s) for s in _strings(value)):
        return "not valid JSON (a lone UTF-16 surrogate escape)"
    seen: set[str] = set()
    for key, _ in value:
        if key in keys and key in seen:
            return f"not valid JSON (the key {key!r} appears twice)"
        seen.add(key)
    if _depth(text) > MAX_DEPTH:
        return f"not valid JSON (nested deeper than {MAX_DEPTH} levels)"
    return None


def _depth(text: str) -> int:
    """The deepest nesting of arrays and objects in valid JSON ``text`` (strings skipped)."""
    depth = deepest = 0
    for token in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]', text):
        t = token.group()
        if t in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif t in "]}":
            depth -= 1
    return deepest


def judge(documents: pa.Array, errors: pa.Array, keys: tuple[str, ...]) -> pa.Array:
    """``errors`` with a strict verdict added for every document the engines must not judge."""
    trimmed = pc.utf8_trim(documents, characters=JSON_WHITESPACE)
    plain = pc.and_(pc.starts_with(trimmed, "{"), pc.ends_with(trimmed, "}"))
    suspect = pc.or_(pc.invert(plain), pc.match_substring_regex(documents, _screen(keys)))
    suspect = pc.and_(suspect, pc.is_null(errors)).to_numpy(zero_copy_only=False).copy()
    # Nesting deeper than MAX_DEPTH takes more than 2 * MAX_DEPTH characters: only such documents are counted.
    long = np.flatnonzero(pc.greater(pc.binary_length(documents), 2 * MAX_DEPTH).to_numpy(zero_copy_only=False))
    if len(long):
        openers = pc.count_substring_regex(documents.take(pa.array(long)), _OPENERS).to_numpy(zero_copy_only=False)
        deep = long[openers > MAX_DEPTH]
        suspect[deep] |= pc.is_null(errors).to_numpy(zero_copy_only=False)[deep]
    positions = np.flatnonzero(suspect)
    if not len(positions):
        return errors
    verdicts = errors.to_pylist()
    for i in positions:
        verdicts[i] = strict_verdict(documents[int(i)].as_py(), keys)
    return pa.array(verdicts, pa.string())


_DECODER = json.JSONDecoder()
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[{]|[\]}]|,')


def _element_end(text: str, start: int) -> int | None:
    """Where the array element starting at ``start`` ends (at its ``,`` or ``]``), by structure alone."""
    depth = 0
    for token in _TOKEN.finditer(text, start):
        t = token.group()
        if t in "[{":
            depth += 1
        elif t in "]}":
            if depth == 0:
                return token.start()
            depth -= 1
        elif t == "," and depth == 0:
            return token.start()
    return None


def array_elements(text: str) -> list[str] | None:
    """The raw text of each element when ``text`` is one top-level JSON array, else None.

    Elements are cut by the array's structure, so an element that is itself bad (a lone
    surrogate, ``NaN``, 10,000 levels deep) is one element for the engines to reject;
    the text between them must be JSON whitespace and commas.
    """
    pos = len(text) - len(text.lstrip(JSON_WHITESPACE))
    if not text.startswith("[", pos):
        return None
    pos, out = pos + 1, []
    while True:
        pos = _skip(text, pos)
        if text.startswith("]", pos) and not out:
            return out if not text[pos + 1:].strip(JSON_WHITESPACE) else None
        try:
            end = _DECODER.raw_decode(text, pos)[1]
        except (ValueError, RecursionError):
            found = _element_end(text, pos)
            if found is None:
                return None
            end = found
        element = text[pos:end].rstrip(JSON_WHITESPACE)
        if not element:
            return None
        out.append(element)
        pos = _skip(text, end)
        if text.startswith(",", pos):
            pos += 1
        elif text.startswith("]", pos):
            return out if not text[pos + 1:].strip(JSON_WHITESPACE) else None
        else:
            return None


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in JSON_WHITESPACE:
        pos += 1
    return pos

"""Identifiers that come from configuration: validated, then always quoted."""

from __future__ import annotations

import re

from engagement.exceptions import ConfigError

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")


def validate(name: str, setting: str) -> str:
    """Return ``name`` when it is a plain identifier, else raise naming the setting and the rule."""
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise ConfigError(
            f"{setting}={name!r} is not a valid identifier: use letters, digits, _ or $, "
            "starting with a letter or _"
        )
    return name


def quote(name: str) -> str:
    """A double-quoted identifier (embedded quotes doubled), safe in any SQL position."""
    return '"' + name.replace('"', '""') + '"'

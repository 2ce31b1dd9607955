"""Free text in a job spec must be printable: control characters (newlines, NUL, escape sequences) are refused.

A name or a parameter string is shown in terminals, logs, HTML and CSV exports; a control character in it could
forge log lines, move the cursor or hide text. Every string of a spec, dictionary keys included, is checked.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any

__all__ = ["control_character", "refuse_control_characters"]


def control_character(text: str) -> str | None:
    """The first control character (Unicode category Cc: C0, DEL, C1) in ``text``, or ``None``."""
    for char in text:
        if unicodedata.category(char) == "Cc":
            return char
    return None


def refuse_control_characters(value: Any, path: str = "") -> None:
    """Walk a raw spec (dicts, lists, strings) and refuse the first string holding a control character.

    Raises:
        ValueError: ``"<field path>: control character U+000A is not allowed in text"``.
    """
    if isinstance(value, str):
        char = control_character(value)
        if char is not None:
            where = path or "(spec)"
            raise ValueError(f"{where}: control character U+{ord(char):04X} is not allowed in text")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and control_character(key) is not None:
                refuse_control_characters(key, f"{path or '(spec)'} key {key!r}")
            refuse_control_characters(item, child)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            refuse_control_characters(item, f"{path}.{index}" if path else str(index))

"""Parsers of the app's setting values (`ui.config.SETTINGS`): text from a flag or an environment variable ->
a value, or ValueError saying what is expected (`ui.config` adds which flag and variable it came from).

    parse_positive(int)("4")        # 4;   parse_bool("on") -> True;   parse_workers("auto") -> None
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE | _FALSE:
        return value in _TRUE
    raise ValueError("expected true/false (1/0, yes/no, on/off)")


def parse_optional(text: str) -> str | None:
    return text.strip() or None


def parse_roots(text: str) -> tuple[Path, ...]:
    return tuple(Path(part).expanduser() for part in text.split(os.pathsep) if part.strip())


def parse_choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"choose one of {', '.join(choices)}")
        return text
    return parse


def parse_positive(kind: type) -> Callable[[str], float | int]:
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise ValueError("must be positive")
        return value
    return parse


def parse_from_profile(kind: type) -> Callable[[str], float | int | None]:
    """"profile" -> None (the generation profile's value, filled in by AppConfig), else a value >= 0."""
    def parse(text: str):
        if text.strip() == "profile":
            return None
        value = kind(text)
        if value < 0:
            raise ValueError("must be >= 0 (or 'profile')")
        return value
    return parse


def parse_auto_or_positive(text: str) -> float | None:
    """"auto" -> None (decided at start-up), else a positive number."""
    if text.strip() == "auto":
        return None
    return parse_positive(float)(text)


def parse_ratio(text: str) -> float:
    value = float(text)
    if value < 1:
        raise ValueError("must be at least 1 (unpacked bytes per compressed byte)")
    return value


def parse_workers(text: str) -> int | None:
    if text.strip() == "auto":
        return None
    value = int(text)
    if value < 0:
        raise ValueError("must be 'auto' or >= 0")
    return value

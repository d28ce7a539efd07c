"""Writing configuration as TOML: the effective configuration and the commented default file.

``render_toml`` is what ``hygeia config show`` prints: every key of a loaded
``NodeConfig``, secrets redacted, each non-default value followed by where it
came from. ``render_default_toml`` is the ``config.toml`` that ``hygeia init``
writes: every key of the schema (``node.setup.config_schema``) with its
description, kind and environment variable, commented out at its default
unless the caller pins it. Both load back as what they show.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from node.setup.config_schema import SECTIONS, ConfigError, NodeConfig, plain, redacted, schema

__all__ = ["render_default_toml", "render_toml", "toml_value"]


def _toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value: Any) -> str:
    """``value`` (plain data: booleans, integers, strings, arrays, tables) as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        items = ", ".join(f"{_toml_string(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def render_toml(cfg: NodeConfig, *, origins: bool = True) -> str:
    """The effective configuration (secrets redacted) as TOML, each non-default value
    followed by where it came from when ``origins``."""
    data = redacted(cfg)
    lines = [f"# effective configuration of {data.pop('home')}"]
    for section, table in data.items():
        lines += ["", f"[{section}]"]
        for name, value in table.items():
            line = f"{name} = {toml_value(value)}"
            origin = cfg.origins.get(f"{section}.{name}")
            if origins and origin:
                line += f"  # {origin}"
            lines.append(line)
    return "\n".join(lines) + "\n"


def _comment(text: str, width: int = 78) -> list[str]:
    lines: list[str] = []
    line = "#"
    for word in text.split():
        if len(line) + 1 + len(word) > width and line != "#":
            lines.append(line)
            line = "#"
        line += " " + word
    lines.append(line)
    return lines


def render_default_toml(settings: Mapping[str, Any] | None = None) -> str:
    """A commented ``config.toml``: every key with its description.

    Keys in ``settings`` (``"section.key"`` -> typed value) are written as active
    lines; every other key as a commented-out default, so that later changes of
    a default apply to this home unless the operator pins the key. A name in
    ``settings`` that is no key is a ``ConfigError``.
    """
    settings = dict(settings or {})
    keys_of = schema()
    for dotted in settings:
        section, _, name = dotted.partition(".")
        if name not in keys_of.get(section, {}):
            raise ConfigError(f"no configuration key {dotted}")
    lines = [
        "# Hygeia node configuration.",
        "#",
        "# Every key is shown with its description; commented-out keys have their default.",
        "# Precedence: command-line flag > HYGEIA_<SECTION>_<KEY> environment variable >",
        "# this file > default. Relative paths are relative to the home directory.",
        "# Reference: docs/configuration.md. Check this file: hygeia config check --home DIR",
    ]
    for section, keys in keys_of.items():
        lines += ["", "#" * 78, f"[{section}]"]
        lines += _comment(SECTIONS[section].__doc__ or "")
        for key in keys.values():
            lines.append("")
            lines += _comment(key.doc)
            lines.append(f"# ({key.kind.label}; environment: {key.env_var})")
            if key.dotted in settings:
                lines.append(f"{key.name} = {toml_value(plain(settings[key.dotted]))}")
            else:
                lines.append(f"# {key.name} = {toml_value(plain(key.default))}")
    return "\n".join(lines) + "\n"

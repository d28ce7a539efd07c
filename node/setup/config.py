"""Node configuration: ``config.toml``, the environment and flags, loaded into a ``NodeConfig``.

The schema (sections, keys, kinds, defaults) is ``node.setup.config_schema``;
writing TOML is ``node.setup.config_render``; both are re-exported here, so this
module is the configuration's one entry point. docs/configuration.md is the
reference.

Precedence, highest first (``load_config``):

1. command-line flags (``overrides``: ``{"section.key": value}``; a string is
   parsed like an environment variable, anything else must have the key's type);
2. environment variables ``HYGEIA_<SECTION>_<KEY>`` (upper-case), parsed by type;
3. ``<home>/config.toml`` (read with ``tomllib``);
4. the defaults of the schema.

Every source is checked as it is read, through ``node.core.strict`` against the
schema: the file as a whole, then each environment variable and each flag as a
one-key document, so that an error names the source it is in. Unknown sections
and keys are errors naming the closest known spelling; a value of the wrong
type is an error naming ``section.key``, the expected type and the value. Then
the layers are merged and the checks no type can say run on the effective
configuration: listen addresses, the levels of ``log.modules``, and the checks
across keys (ports not shared, backoff and size bounds, a transaction and a
snapshot chunk within a frame). An environment variable that looks like
``HYGEIA_<SECTION>_<KEY>`` for a known section but names no key is a warning
(``NodeConfig.warnings``): other ``HYGEIA_*`` variables belong to other tools.
Every error is a ``ConfigError`` with a one-line message.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from node.core import strict
from node.core.strict import Problem, StrictError
from node.net.addr import WILDCARD_HOSTS, is_loopback_host, parse_host_port
from node.setup.config_render import render_default_toml, render_toml, toml_value
from node.setup.config_schema import (
    _SCHEMA,
    CONFIG_FILE,
    ENV_PREFIX,
    LOG_FORMATS,
    LOG_LEVELS,
    REDACTED,
    SECTIONS,
    SNAPSHOT_FRAME_HEADROOM,
    AdminSection,
    ApiSection,
    ConfigError,
    Key,
    LogSection,
    MempoolSection,
    Mismatch,
    NodeConfig,
    NodeSection,
    P2PSection,
    ShutdownSection,
    SyncSection,
    env_var_name,
    redacted,
    schema,
)

__all__ = [
    "CONFIG_FILE",
    "ENV_PREFIX",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "REDACTED",
    "SECTIONS",
    "SNAPSHOT_FRAME_HEADROOM",
    "AdminSection",
    "ApiSection",
    "ConfigError",
    "LogSection",
    "MempoolSection",
    "NodeConfig",
    "NodeSection",
    "P2PSection",
    "ShutdownSection",
    "SyncSection",
    "default_config",
    "env_var_name",
    "load_config",
    "parse_overrides",
    "redacted",
    "render_default_toml",
    "render_toml",
    "schema",
    "toml_value",
]

# config.toml as a whole: a table per section, each section's dataclass (checked
# through node.core.strict, unknown sections and keys refused)
_FILE: Final = dataclasses.make_dataclass(
    "ConfigFile",
    [(name, cls, dataclasses.field(default_factory=cls)) for name, cls in SECTIONS.items()],
    frozen=True,
)


# ------------------------------------------------------------------ messages
def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


def _show(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    try:
        return toml_value(value)
    except TypeError:
        return repr(value)


def _unknown_key(where: str, section: str, key: str) -> ConfigError:
    hint = strict.suggest(key, _SCHEMA[section])
    tail = f" (did you mean {hint}?)" if hint else f" (known: {', '.join(_SCHEMA[section])})"
    return ConfigError(f"{where}: unknown key [{section}] {key}{tail}")


def _unknown_section(where: str, section: str, value: Any) -> ConfigError:
    if not isinstance(value, dict):
        homes = [sec for sec, keys in _SCHEMA.items() if section in keys]
        hint = f" (put it under [{homes[0]}])" if homes else ""
        return ConfigError(f"{where}: key {section} is outside any section{hint}")
    hint = strict.suggest(section, _SCHEMA)
    tail = f" (did you mean [{hint}]?)" if hint else f" (sections: {', '.join(_SCHEMA)})"
    return ConfigError(f"{where}: unknown section [{section}]{tail}")


def _error(where: str, p: Problem) -> ConfigError:
    """The message of a problem that ``where`` (a file, a variable, the command line) has."""
    section = str(p.path[0]) if p.path else ""
    if p.what == "unknown":
        if len(p.path) == 1:
            return _unknown_section(where, section, p.value)
        return _unknown_key(where, section, str(p.path[1]))
    if len(p.path) < 2:
        return ConfigError(f"{where}: [{section}] must be a table, got {_show(p.value)}")
    dotted = f"{section}.{p.path[1]}"
    if p.what == "type":
        got = f"{_show(p.value)} ({_type_name(p.value)})"
        return ConfigError(f"{where}: {dotted}: expected {p.expected}, got {got}")
    return ConfigError(f"{where}: {dotted}: {p.why(_show)}")


def _check(doc: Mapping[str, Any], where: str) -> Any:
    """``doc`` (``{section: {key: value}}``) as sections; a ``ConfigError`` names ``where``."""
    try:
        return strict.convert(doc, _FILE)
    except StrictError as e:
        raise _error(where, e.problem) from None


def _from_text(key: Key | None, value: str, where: str) -> Any:
    """The value of environment or flag text for ``key`` (unknown keys: the text as is)."""
    if key is None:
        return value
    try:
        return key.kind.from_text(value)
    except Mismatch:
        raise ConfigError(
            f"{where}: {key.dotted}: expected {key.kind.expected}, got {_show(value)}"
        ) from None


# ------------------------------------------------------------------ the sources
def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: invalid TOML: not UTF-8") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None


def _from_file(path: Path, values: dict[str, Any], origins: dict[str, str]) -> None:
    doc = _read_toml(path)
    _check(doc, str(path))
    for section, table in doc.items():
        for name, value in table.items():
            values[f"{section}.{name}"] = value
            origins[f"{section}.{name}"] = f"file {path}"


def _from_env(
    env: Mapping[str, str], values: dict[str, Any], origins: dict[str, str], warnings: list[str]
) -> None:
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :]
        for section, keys in _SCHEMA.items():
            prefix = section.upper() + "_"
            if not rest.startswith(prefix):
                continue
            key = keys.get(rest[len(prefix) :].lower())
            if key is None:
                hint = strict.suggest(rest[len(prefix) :].lower(), keys)
                note = f" (did you mean {env_var_name(section, hint)}?)" if hint else ""
                warnings.append(
                    f"environment variable {name} ignored: [{section}] has no such key{note}"
                )
                break
            where = f"environment variable {name}"
            value = _from_text(key, env[name], where)
            _check({section: {key.name: value}}, where)
            values[key.dotted] = value
            origins[key.dotted] = f"environment {name}"
            break


def _from_overrides(
    overrides: Mapping[str, Any], values: dict[str, Any], origins: dict[str, str]
) -> None:
    for dotted, raw in overrides.items():
        section, _, name = dotted.partition(".")
        key = _SCHEMA.get(section, {}).get(name)
        value = _from_text(key, raw, "command line") if isinstance(raw, str) else raw
        _check({section: {name: value}}, "command line")
        values[dotted] = value
        origins[dotted] = "command line"


# ------------------------------------------------------------------ the effective config
def _origin_where(origin: str) -> str:
    if origin.startswith("file "):
        return origin[len("file ") :]
    if origin.startswith("environment "):
        return "environment variable " + origin[len("environment ") :]
    return origin or "default"


def _module_levels(modules: Mapping[str, str]) -> str:
    """Why ``log.modules`` cannot be used, or ``""``."""
    for module, level in modules.items():
        if not module or any(not part for part in module.split(".")):
            return f"{module!r} is not a module name like node.net"
        if level not in LOG_LEVELS:
            return f"{module}: level must be one of {', '.join(LOG_LEVELS)}; got {level!r}"
    return ""


def _checks(cfg: NodeConfig, warnings: list[str]) -> None:
    """The checks of the effective configuration that no key's type says."""

    def where(*dotted: str) -> str:
        places = []
        for d in dotted:
            origin = cfg.origins.get(d)
            if origin and _origin_where(origin) not in places:
                places.append(_origin_where(origin))
        return ", ".join(places) or "defaults"

    def fail(message: str, *dotted: str) -> ConfigError:
        return ConfigError(f"{where(*dotted)}: {message}")

    listeners = {"p2p.listen": cfg.p2p.listen, "api.listen": cfg.api.listen}
    listeners["admin.listen"] = cfg.admin.listen
    bound: list[tuple[str, str, int]] = []
    for dotted, address in listeners.items():
        try:
            host, port = parse_host_port(address, allow_zero_port=True)
        except ValueError as e:
            raise fail(f"{dotted}: {e}", dotted) from None
        bound.append((dotted, host, port))
    if why := _module_levels(cfg.log.modules):
        raise fail(f"log.modules: {why}", "log.modules")
    p2p, mem = cfg.p2p, cfg.mempool
    if p2p.dial_backoff_min_ms > p2p.dial_backoff_max_ms:
        raise fail(
            f"p2p.dial_backoff_min_ms ({p2p.dial_backoff_min_ms}) must not exceed "
            f"p2p.dial_backoff_max_ms ({p2p.dial_backoff_max_ms})",
            "p2p.dial_backoff_min_ms",
            "p2p.dial_backoff_max_ms",
        )
    if mem.max_tx_bytes > mem.max_bytes:
        raise fail(
            f"mempool.max_tx_bytes ({mem.max_tx_bytes}) must not exceed "
            f"mempool.max_bytes ({mem.max_bytes})",
            "mempool.max_tx_bytes",
            "mempool.max_bytes",
        )
    if mem.max_tx_bytes > p2p.max_frame_bytes:
        raise fail(
            f"mempool.max_tx_bytes ({mem.max_tx_bytes}) must not exceed "
            f"p2p.max_frame_bytes ({p2p.max_frame_bytes}): a transaction must fit in a frame",
            "mempool.max_tx_bytes",
            "p2p.max_frame_bytes",
        )
    chunk = cfg.sync.snapshot_chunk_bytes
    if chunk + SNAPSHOT_FRAME_HEADROOM > p2p.max_frame_bytes:
        raise fail(
            f"sync.snapshot_chunk_bytes ({chunk}) must be at most p2p.max_frame_bytes "
            f"({p2p.max_frame_bytes}) - {SNAPSHOT_FRAME_HEADROOM}: a snapshot chunk and its "
            "proof must fit in a frame",
            "sync.snapshot_chunk_bytes",
            "p2p.max_frame_bytes",
        )
    for name, http in (("api", cfg.api), ("admin", cfg.admin)):
        if http.max_connections_per_source > http.max_connections:
            raise fail(
                f"{name}.max_connections_per_source ({http.max_connections_per_source}) must "
                f"not exceed {name}.max_connections ({http.max_connections})",
                f"{name}.max_connections_per_source",
                f"{name}.max_connections",
            )
    for i, (dotted, host, port) in enumerate(bound):
        for other, other_host, other_port in bound[:i]:
            if (
                port
                and port == other_port
                and (host == other_host or host in WILDCARD_HOSTS or other_host in WILDCARD_HOSTS)
            ):
                raise fail(
                    f"{dotted} ({listeners[dotted]}) and {other} ({listeners[other]}) "
                    "use the same port",
                    dotted,
                    other,
                )
    if not is_loopback_host(bound[2][1]):
        warnings.append(
            f"admin.listen {cfg.admin.listen} is not a loopback address: the admin API is "
            "reachable from the network (only its bearer token protects it)"
        )


def _build(
    home: Path, values: Mapping[str, Any], origins: Mapping[str, str], warnings: list[str]
) -> NodeConfig:
    doc: dict[str, dict[str, Any]] = {}
    for dotted, value in values.items():
        section, _, name = dotted.partition(".")
        doc.setdefault(section, {})[name] = value
    sections: Any = strict.convert(doc, _FILE)  # every value checked already
    cfg = NodeConfig(home, **vars(sections), origins=dict(origins))
    _checks(cfg, warnings)
    return dataclasses.replace(cfg, warnings=tuple(warnings))


def load_config(
    home: str | os.PathLike[str],
    *,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    require_file: bool = True,
) -> NodeConfig:
    """The effective configuration of ``home``: flags > environment > config.toml > defaults.

    ``overrides`` maps ``"section.key"`` to a value from the command line (text
    is parsed like an environment variable). ``env`` defaults to ``os.environ``.
    Without ``<home>/config.toml`` this is an error unless ``require_file`` is
    false. Raises ``ConfigError`` with a one-line message.
    """
    home_path = Path(home).expanduser().absolute()
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    warnings: list[str] = []
    path = home_path / CONFIG_FILE
    if path.is_file():
        _from_file(path, values, origins)
    elif path.exists():
        raise ConfigError(f"{path}: not a regular file")
    elif require_file:
        raise ConfigError(
            f"{path}: not found (is {home_path} a node home? create one with "
            f"`hygeia init --home {home}`)"
        )
    _from_env(os.environ if env is None else env, values, origins, warnings)
    _from_overrides(overrides or {}, values, origins)
    return _build(home_path, values, origins, warnings)


def default_config(home: str | os.PathLike[str] = ".") -> NodeConfig:
    """The schema's defaults for ``home``: no file, no environment, no flags."""
    return _build(Path(home).expanduser().absolute(), {}, {}, [])


def parse_overrides(items: Iterable[str]) -> dict[str, str]:
    """``["p2p.listen=0.0.0.0:1", ...]`` (``--set`` options) -> ``{"p2p.listen": "0.0.0.0:1"}``."""
    out: dict[str, str] = {}
    for item in items:
        dotted, sep, value = item.partition("=")
        dotted = dotted.strip()
        if not sep or "." not in dotted:
            raise ConfigError(f"command line: {item!r} is not SECTION.KEY=VALUE")
        out[dotted] = value
    return out

"""Config files: a study (`autosys tune --config study.toml`) and the agent (`autosys agent --config`).

A study file holds what a `tune` command line can say. Its top-level keys
are `tune`'s flags with dashes as underscores (`budget`, `time_budget`,
`trial_timeout`, `dir`, `json`, ...; the keys come from the command's own
options, so a new flag is a new key) plus `system`; three tables hold the
name=value parts:

    system = "sqlite"
    tuner = "bo"
    budget = 30
    seed = 1

    [options]        # the system's options (autosys list SYSTEM), typed: records = 20000
    workload = "ycsb-b"

    [set]            # knobs pinned, as --set journal_mode=wal
    journal_mode = "wal"

    [tuner_options]  # keyword options of the tuner's constructor (--tuner-option name=value)

Every value is checked against the flag's type (or the option's default's
type), and a mistake is one line naming the file and the key. What the user
gives on the command line wins over the file; the file wins over defaults.
Paths are read as on the command line: relative to the current directory.
A file is data, never code: parsed with `tomllib`, nothing in it is imported
but the registered system and tuner names it gives (a `module:Class` name is
imported as when given on the command line).
"""

from __future__ import annotations

import inspect
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Union, get_args, get_origin

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: tune's parameters (click names) that a file cannot hold: they are about this run of the command
NOT_IN_FILE = ("show_help", "config", "print_config", "resume")
#: tune's repeatable name=value options (click names) and the table a file holds them in
TABLES = {"set_": "set", "tuner_option": "tuner_options"}
#: the table of system options
OPTIONS_TABLE = "options"
#: constructor parameters of every tuner that the study itself sets
TUNER_RESERVED = ("space", "direction", "seed", "features", "objectives")
#: agent config keys and their types (guardrails: a table of these)
AGENT_KEYS: dict[str, tuple[type, ...]] = {"window": (int, float), "duration": (int, float), "tuner": (str,),
                                          "tries_per_regime": (int,), "seed": (int,), "guardrails": (dict,),
                                          "policy": (str,)}
GUARDRAIL_KEYS: dict[str, tuple[type, ...]] = {"change_budget": (int,), "budget_seconds": (int, float),
                                              "noise_sigmas": (int, float), "min_relative_gain": (int, float),
                                              "settle_windows": (int,)}


class ConfigError(ValueError):
    """A config file that cannot be used: one line naming the file and the key."""


@dataclass
class StudyConfig:
    """What a study config file says, checked; `values` are keyed by tune's parameter names."""

    path: Path
    values: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    fixed: dict[str, str] = field(default_factory=dict)
    tuner_options: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- reading


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict, or a ConfigError naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def file_keys(command: Any) -> dict[str, Any]:
    """Top-level key -> the tune parameter it sets: the long flag without dashes (`--time-budget` -> time_budget)."""
    out: dict[str, Any] = {}
    for param in command.params:
        if param.name in NOT_IN_FILE or param.name in TABLES:
            continue
        longs = [o for o in param.opts if o.startswith("--")]
        key = longs[0][2:].replace("-", "_") if longs else str(param.name)
        out[key] = param
    return out


def load_study_config(path: Path, command: Any, types: Mapping[str, Any]) -> StudyConfig:
    """Read and check a study file against `command`'s parameters (`types`: their annotations, by name),
    the system's options and the tuner's."""
    path = Path(path)
    data = read_toml(path)
    keys = file_keys(command)
    tables = {table: name for name, table in TABLES.items() if any(p.name == name for p in command.params)}
    config = StudyConfig(path)
    for key, value in data.items():
        if key in tables or key == OPTIONS_TABLE:
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: {key} must be a table ([{key}] with name = value lines), not {_kind(value)}")
            continue
        if key not in keys:
            known = ", ".join(sorted([*keys, OPTIONS_TABLE, *tables]))
            raise ConfigError(f"{path}: unknown key {key!r}; known: {known}")
        name = keys[key].name
        config.values[name] = _scalar(path, key, value, types.get(name, str))
    for table, name in tables.items():
        for knob, value in (data.get(table) or {}).items():
            if name == "set_":
                config.fixed[knob] = _knob_text(path, f"{table}.{knob}", value)
            else:
                config.tuner_options[knob] = _plain(path, f"{table}.{knob}", value)
    system = config.values.get("system")
    config.options = dict(data.get(OPTIONS_TABLE) or {})  # without a system here, checked against the command line's
    if system is not None:
        factory = _lookup(path, "system", system, _system_factory)
        config.options = check_options(factory, config.options, f"{path}: {OPTIONS_TABLE}")
    tuner = config.values.get("tuner")
    if tuner is not None:
        _lookup(path, "tuner", tuner, _tuner_class)
    return config


def _system_factory(name: str) -> Callable:
    from autosys.core.registry import system_factory

    return system_factory(name)


def _tuner_class(name: str) -> Callable:
    from autosys.tuners import tuner_class

    return tuner_class(name)


def _lookup(path: Path, key: str, name: str, find: Callable[[str], Callable]) -> Callable:
    try:
        return find(name)
    except (ImportError, LookupError, ValueError) as exc:  # UnknownSystem, UnknownTuner, PluginError
        raise ConfigError(f"{path}: {key}: {' '.join(str(exc).split())}") from None


def _kind(value: Any) -> str:
    """How a TOML value reads in an error: 'ten' (a string), 3 (an integer), a table, an array."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    return f"{json.dumps(value, default=str)} ({names.get(type(value), type(value).__name__)})"


def _plain_type(annotation: Any) -> Any:
    """`Optional[int]` -> int: the one type an annotation allows besides None."""
    if get_origin(annotation) is Union:
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return annotation


def _scalar(path: Path, key: str, value: Any, annotation: Any) -> Any:
    """A top-level value checked against its flag's type (a Path flag takes a string and gives a Path)."""
    kind = _plain_type(annotation)
    if get_origin(kind) is list:  # a repeatable flag: a list of strings, or one string
        items = [value] if isinstance(value, str) else value
        if not (isinstance(items, list) and all(isinstance(item, str) for item in items)):
            raise ConfigError(f"{path}: {key} must be a string or an array of strings, not {_kind(value)}")
        return list(items)
    if kind is bool:
        ok, wanted = isinstance(value, bool), "true or false"
    elif kind is int:
        ok, wanted = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif kind is float:
        ok, wanted = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), "a finite number"
        value = float(value) if ok else value
    else:
        ok, wanted = isinstance(value, str), "a string"
    if not ok:
        raise ConfigError(f"{path}: {key} must be {wanted}, not {_kind(value)}")
    return Path(value) if kind is Path else value


def _knob_text(path: Path, key: str, value: Any) -> str:
    """A pinned knob's value as the command line gives it (--set name=TEXT), so both take one path."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)) and not (isinstance(value, float) and not math.isfinite(value)):
        return str(value)
    raise ConfigError(f"{path}: {key} must be a string, number or boolean, not {_kind(value)}")


def _plain(path: Path, key: str, value: Any) -> Any:
    if isinstance(value, (dict, list)) or not isinstance(value, (bool, int, float, str)):
        raise ConfigError(f"{path}: {key} must be a string, number or boolean, not {_kind(value)}")
    return value


# ----------------------------------------------------------------------------- typed options


def check_options(factory: Callable, values: Mapping[str, Any], where: str,
                  reserved: tuple[str, ...] = ()) -> dict[str, Any]:
    """Typed options (from a file) checked against a constructor: known names, each one's type (`option_type`).

    A float option also takes an integer.
    """
    from autosys.core.registry import option_names

    accepted = {n: p for n, p in option_names(factory).items() if n not in reserved}
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name not in accepted:
            known = ", ".join(accepted) or "none"
            raise ConfigError(f"{where}.{name}: unknown option; known: {known}")
        kind = option_type(accepted[name])
        if kind is bool:
            ok, wanted = isinstance(value, bool), "true or false"
        elif kind is int:
            ok, wanted = isinstance(value, int) and not isinstance(value, bool), "an integer"
        elif kind is float:
            ok, wanted = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
            value = float(value) if ok else value
        elif kind is str:
            ok, wanted = isinstance(value, str), "a string"
        else:
            ok, wanted = not isinstance(value, (dict, list)), "a plain value"
        if not ok:
            raise ConfigError(f"{where}.{name} must be {wanted}, not {_kind(value)}")
        out[name] = value
    return out


def tuner_parameters(tuner: str) -> dict[str, inspect.Parameter]:
    """The keyword options a user may give tuner `tuner` (those the study sets itself left out)."""
    from autosys.core.registry import option_names

    return {n: p for n, p in option_names(_tuner_class(tuner)).items() if n not in TUNER_RESERVED}


_SIMPLE = {"bool": bool, "int": int, "float": float, "str": str}


def option_type(param: inspect.Parameter) -> type | None:
    """The type an option takes: its default's, else a simple annotation's (`int | None` -> int), else str.

    None for a default of another kind (a list, an object): such values are passed as given.
    """
    default = param.default
    if default is not None and default is not inspect.Parameter.empty:
        return type(default) if isinstance(default, (bool, int, float, str)) else None
    annotation = param.annotation
    if annotation is inspect.Parameter.empty:
        return str
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    text = text.strip()
    if text.startswith("Optional[") and text.endswith("]"):
        text = text[len("Optional["):-1]
    names = [part.strip() for part in text.split("|") if part.strip() != "None"]
    return _SIMPLE.get(names[0], str) if len(names) == 1 else str


# ----------------------------------------------------------------------------- writing


def dump_toml(data: Mapping[str, Any]) -> str:
    """A study config as TOML: scalars first, then one table per mapping; None values are left out.

    Enough TOML for what `load_study_config` reads (strings, numbers, booleans, arrays of them, one level of tables).
    """
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in data.items() if v is not None and not isinstance(v, Mapping)]
    for name, table in data.items():
        if isinstance(table, Mapping) and table:
            lines += ["", f"[{_toml_key(name)}]"]
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() and key.isascii() else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return json.dumps(str(value))  # a JSON string is a TOML basic string (\", \\, \n, \uXXXX)


# ----------------------------------------------------------------------------- the agent's file


def load_agent_config(path: Path) -> dict[str, Any]:
    """The agent's settings from a JSON or TOML file, checked: keys, types, guardrails (see docs/formats.md)."""
    path = Path(path)
    if path.suffix == ".toml":
        data = read_toml(path)
    else:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the settings must be an object of name: value, not {_kind(data)}")
    _check_typed(path, "", data, AGENT_KEYS, "setting")
    _check_typed(path, "guardrails.", data.get("guardrails") or {}, GUARDRAIL_KEYS, "guardrail")
    return data


def _check_typed(path: Path, prefix: str, data: Mapping[str, Any], known: Mapping[str, tuple[type, ...]], what: str) -> None:
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{path}: unknown {what} {prefix}{key!r}; known: {', '.join(sorted(known))}")
        types = known[key]
        if isinstance(value, bool) or not isinstance(value, types):
            wanted = {(int,): "an integer", (int, float): "a number", (str,): "a string", (dict,): "a table"}[types]
            raise ConfigError(f"{path}: {prefix}{key} must be {wanted}, not {_kind(value)}")


__all__ = ["ConfigError", "StudyConfig", "check_options", "option_type", "dump_toml", "file_keys", "load_agent_config",
           "load_study_config", "read_toml", "tuner_parameters"]

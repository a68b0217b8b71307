"""`SystemSpec`: the public description of a system (its name and constructor options).

A spec is derived once, when a system is constructed, from its constructor's
signature and the values it was given (the way scikit-learn's `get_params`
reads an estimator's parameters); `autosys.core.system.System` records it, so
`MySystem(x=1)` built directly has one too. It is what a study stores, what a
worker process rebuilds the system from, and what names an exclusive system's
host lock.

Two kinds of options are marked by the system's class and treated apart:

- `secret_options` (passwords, tokens) and any password inside a URL value
  (postgresql://user:PASSWORD@host/db) never leave the process: `public()`
  drops them, and they come from the user again on resume (a flag, the
  environment variable `AUTOSYS_<OPTION>` such as `AUTOSYS_PASSWORD`, or the
  server's own mechanism such as PGPASSWORD or ~/.pgpass).
- `executable_options` (commands to run, e.g. `restart_command`) are never
  stored either, and are never taken from a stored spec: only from the
  invoking user on this run.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

#: the entry-point group that registers systems by name
ENTRY_POINT_GROUP = "autosys.systems"
#: prefix of the environment variables that give secret options on resume (AUTOSYS_PASSWORD, ...)
SECRET_ENV_PREFIX = "AUTOSYS_"
#: option names that look secret even where no class marks them (used when redacting stored text)
_SECRET_NAME = re.compile(r"pass(word|wd)?$|secret|token|api_?key", re.IGNORECASE)
#: scheme://user:password@ inside any text
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@'\"]*):[^\s/@'\"]*@")


class StoredOptionIgnored(UserWarning):
    """A stored spec carried an option that is never taken from storage (a command to run)."""


def strip_url_password(value: str) -> str:
    """`scheme://user:pw@host/db?x` -> `scheme://user@host/db?x`; any other text unchanged."""
    if "://" not in value or "@" not in value:
        return value
    try:
        parts = urlsplit(value)
        if parts.password is None:
            return value
        host = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        return urlunsplit((parts.scheme, f"{user}@{host}" if user else host, parts.path, parts.query, parts.fragment))
    except ValueError:
        return redact_text(value)


def redact_text(text: str) -> str:
    """Remove the password of every `scheme://user:password@` inside a message or log line."""
    return _URL_PASSWORD.sub(r"\g<head>@", text)


def redact_options(options: Mapping[str, Any], secret: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Options fit to show or store: secret ones dropped, URL passwords stripped.

    `secret`: the option names the system marks; None (a spec read back
    without its class) drops names that look secret (password, token, ...).
    """
    out: dict[str, Any] = {}
    for name, value in options.items():
        if (name in secret) if secret is not None else bool(_SECRET_NAME.search(name)):
            continue
        out[name] = strip_url_password(value) if isinstance(value, str) else value
    return out


def secret_env_name(option: str) -> str:
    """The environment variable that gives secret option `option` (password -> AUTOSYS_PASSWORD)."""
    return SECRET_ENV_PREFIX + option.upper()


def secrets_from_env(secret: tuple[str, ...], given: Mapping[str, Any]) -> dict[str, str]:
    """Secret options not in `given` whose AUTOSYS_<OPTION> environment variable is set."""
    return {n: os.environ[secret_env_name(n)] for n in secret if n not in given and secret_env_name(n) in os.environ}


def constructor_parameters(factory: Any) -> dict[str, inspect.Parameter]:
    """The parameters of a class's `__init__` (without self) or of a factory function."""
    target = factory.__init__ if isinstance(factory, type) else factory
    if target is object.__init__:
        return {}
    params = dict(inspect.signature(target).parameters)
    if isinstance(factory, type):
        params.pop(next(iter(params), ""), None)  # self
    return params


def bound_options(cls: type, args: tuple, kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The keyword options a constructor call means, defaults filled in; None if they cannot be named.

    Positional arguments are named by the signature; `**kwargs` are flattened
    in; a call with extra positional values (`*args`) has no keyword form.
    """
    params = constructor_parameters(cls)
    try:
        bound = inspect.Signature(list(params.values())).bind_partial(*args, **kwargs)
    except TypeError:
        return None  # the constructor itself reports the bad call
    bound.apply_defaults()
    options: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = params[name].kind
        if kind == inspect.Parameter.VAR_POSITIONAL:
            if value:
                return None
        elif kind == inspect.Parameter.VAR_KEYWORD:
            options.update(value)
        elif value is not inspect.Parameter.empty:
            options[name] = value
    return options


def class_path(cls: type) -> str:
    """`module:QualName` of a class (importable unless defined in __main__ or inside a function)."""
    return f"{cls.__module__}:{cls.__qualname__}"


@functools.lru_cache(maxsize=1)
def _entry_point_names() -> dict[str, str]:
    """module:Class path -> the name its entry point registers (read once per process)."""
    names: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        names.setdefault(ep.value.split("[")[0].strip(), ep.name)
    return names


def entry_point_name(cls: type) -> str | None:
    """The name a class is registered under as an `autosys.systems` entry point, if any."""
    return _entry_point_names().get(class_path(cls))


@dataclass(frozen=True)
class SystemSpec:
    """A system's name (registered name or `module:Class`) and the keyword options it was built with.

    `secret` and `executable` name the options the system's class marks (see
    the module docstring); `rebuildable` is False when the options have no
    keyword form (extra positional arguments), so only the object itself can
    travel.
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    secret: tuple[str, ...] = ()
    executable: tuple[str, ...] = ()
    rebuildable: bool = True

    def __post_init__(self):
        object.__setattr__(self, "options", dict(self.options))
        object.__setattr__(self, "secret", tuple(self.secret))
        object.__setattr__(self, "executable", tuple(self.executable))

    @property
    def importable(self) -> bool:
        """True when another process can build it by name (not a class of __main__ or a local one)."""
        module, _, attr = self.name.partition(":")
        return self.rebuildable and (not attr or (module != "__main__" and "<locals>" not in attr))

    def public(self) -> "SystemSpec":
        """The storable, printable form: secrets and commands removed, URL passwords stripped."""
        options = redact_options(self.options, self.secret + self.executable)
        return SystemSpec(self.name, options, self.secret, self.executable, self.rebuildable)

    def to_json(self) -> dict[str, Any]:
        """The public form as the study spec stores it: {"system": name, "system_options": {...}}."""
        return {"system": self.name, "system_options": dict(self.public().options)}

    def key(self) -> str:
        """A text that identifies the spec (secrets included: it stays in this process)."""
        return json.dumps([self.name, self.options], sort_keys=True, default=repr)

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:  # never print a secret, even in a traceback
        return f"SystemSpec({self.name!r}, {self.public().options!r})"


__all__ = [
    "SECRET_ENV_PREFIX",
    "StoredOptionIgnored",
    "SystemSpec",
    "bound_options",
    "class_path",
    "constructor_parameters",
    "redact_options",
    "redact_text",
    "secret_env_name",
    "secrets_from_env",
    "strip_url_password",
]

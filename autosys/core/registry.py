"""Finds systems by name without the core importing any adapter.

Names come from the `autosys.systems` entry-point group (declared in
pyproject.toml by the adapters package or by any third-party package), from
`register_system()` at run time, or are given directly as `module:Class`.
A study's stored spec is rebuilt by `rebuild_system`, which imports only
registered names (or a `module:Class` the user names again) and takes commands
to run only from the invoking user (autosys.core.spec, DESIGN.md).
"""

from __future__ import annotations

import inspect
import warnings
from importlib.metadata import entry_points
from typing import Any, Callable, Mapping

from autosys.core.plugins import PluginError, check_stored_name, import_object, is_path
from autosys.core.spec import (
    ENTRY_POINT_GROUP, StoredOptionIgnored, SystemSpec, constructor_parameters, secrets_from_env,
    strip_url_password,
)
from autosys.core.system import System

_runtime: dict[str, Callable[..., System] | str] = {}


class UnknownSystem(PluginError):
    """No system of that name, or it cannot be imported."""


def register_system(name: str, factory: Callable[..., System] | str) -> None:
    """Make `name` resolve to a System class/factory (or a "module:attr" path)."""
    _runtime[name] = factory


def available_systems() -> dict[str, str]:
    """name -> "module:attr" (or repr of the factory) for every known system."""
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    for name, factory in _runtime.items():
        found[name] = factory if isinstance(factory, str) else f"{factory.__module__}:{factory.__qualname__}"
    return dict(sorted(found.items()))


def _import(path: str) -> Any:
    return import_object(path, kind="system", error=UnknownSystem)


def system_factory(name: str) -> Callable[..., System]:
    """The class (or factory) registered under `name`, imported on demand."""
    if name in _runtime:
        factory = _runtime[name]
        return _import(factory) if isinstance(factory, str) else factory
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            try:
                return ep.load()
            except ImportError as exc:
                raise UnknownSystem(f"system {name!r} is installed but cannot be imported: {exc}") from exc
    if is_path(name):
        return _import(name)
    known = ", ".join(available_systems()) or "none"
    raise UnknownSystem(f"unknown system {name!r}; known systems: {known} (or give module:Class)")


def option_names(factory: Callable[..., System]) -> dict[str, inspect.Parameter]:
    """The keyword options a system's constructor accepts."""
    params = constructor_parameters(factory)
    return {n: p for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def option_marks(factory: Callable[..., System]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(secret, executable) option names a system class (or factory function) declares."""
    return tuple(getattr(factory, "secret_options", ())), tuple(getattr(factory, "executable_options", ()))


def make_system(name: str, options: Mapping[str, Any] | None = None) -> System:
    """Build system `name` from keyword options, rejecting unknown option names clearly."""
    factory = system_factory(name)
    options = dict(options or {})
    accepted = option_names(factory)
    takes_any = any(p.kind == p.VAR_KEYWORD for p in constructor_parameters(factory).values())
    unknown = [k for k in options if k not in accepted]
    if unknown and not takes_any:
        flags = ", ".join("--" + k.replace("_", "-") for k in accepted) or "none"
        raise ValueError(f"system {name!r} has no option --{unknown[0].replace('_', '-')}; its options: {flags}")
    system = factory(**options)
    if not isinstance(system, System):
        raise TypeError(f"{name!r} built a {type(system).__name__}, not an autosys System")
    built = system.spec  # a class records every constructor option; a factory function only what it was given
    system.spec = SystemSpec(
        name,
        built.options if isinstance(factory, type) else options,
        type(system).secret_options,
        type(system).executable_options,
        built.rebuildable if isinstance(factory, type) else True,
    )
    return system


def rebuild_system(
    stored: Mapping[str, Any], *, named: str | None = None, given: Mapping[str, Any] | None = None
) -> System:
    """Build the system of a stored study spec ({"system": ..., "system_options": ...}) without trusting it.

    named: the system the invoking user names for this resume; a stored
        `module:Class` is imported only when it is the same path (a planted
        `os:system` is refused before anything is imported).
    given: options from the invoking user: secret ones (else taken from
        AUTOSYS_<OPTION> when set), commands to run (never taken from the
        stored spec: one that is there is ignored with a `StoredOptionIgnored`
        warning), and a URL option whose password was stripped, given again.
    """
    name = str(stored.get("system", ""))
    if named is not None and named != name:
        raise UnknownSystem(f"this study was made with system {name!r}; name that system or none to resume it, not {named!r}")
    check_stored_name(name, named, kind="system", flag="autosys tune --resume DIR")
    factory = system_factory(name)
    secret, executable = option_marks(factory)
    options = dict(stored.get("system_options") or {})
    for option in executable:
        value = options.pop(option, None)
        if value not in (None, "", (), []):
            warnings.warn(
                f"the stored spec sets {option}={value!r}; ignored: commands run only when given on this run "
                f"(--{option.replace('_', '-')})",
                StoredOptionIgnored,
                stacklevel=2,
            )
    given = dict(given or {})
    for option, value in given.items():
        stored_value = options.get(option)
        url_again = isinstance(value, str) and isinstance(stored_value, str) and strip_url_password(value) == stored_value
        if option not in secret and option not in executable and not url_again:
            allowed = ", ".join("--" + n.replace("_", "-") for n in (*secret, *executable)) or "none"
            raise ValueError(
                f"--{option.replace('_', '-')} would change the study; a resume takes only secret or command options "
                f"(this system's: {allowed}) and a URL given again with its password"
            )
    options.update(given)
    options.update(secrets_from_env(secret, options))
    return make_system(name, options)


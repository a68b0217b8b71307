"""Finds systems by name without the core importing any adapter.

Names come from the `autosys.systems` entry-point group (declared in
pyproject.toml by the adapters package or by any third-party package), from
`register_system()` at run time, or are given directly as `module:Class`.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from importlib.metadata import entry_points
from typing import Any, Callable, Mapping

from autosys.core.system import System

ENTRY_POINT_GROUP = "autosys.systems"
_runtime: dict[str, Callable[..., System] | str] = {}


class UnknownSystem(LookupError):
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
    module_name, _, attr = path.partition(":")
    if not attr:
        raise UnknownSystem(f"{path!r} is not of the form module:Class")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # lets `autosys tune mymodule:MySystem` find a local file
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownSystem(f"cannot import {module_name!r} for system {path!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise UnknownSystem(f"module {module_name!r} has no {attr!r}") from None


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
    if ":" in name:
        return _import(name)
    known = ", ".join(available_systems()) or "none"
    raise UnknownSystem(f"unknown system {name!r}; known systems: {known} (or give module:Class)")


def option_names(factory: Callable[..., System]) -> dict[str, inspect.Parameter]:
    """The keyword options a system's constructor accepts."""
    params = inspect.signature(factory).parameters
    return {
        n: p for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and n != "self"
    }


def make_system(name: str, options: Mapping[str, Any] | None = None) -> System:
    """Build system `name` from keyword options, rejecting unknown option names clearly."""
    factory = system_factory(name)
    options = dict(options or {})
    accepted = option_names(factory)
    takes_any = any(p.kind == p.VAR_KEYWORD for p in inspect.signature(factory).parameters.values())
    unknown = [k for k in options if k not in accepted]
    if unknown and not takes_any:
        flags = ", ".join("--" + k.replace("_", "-") for k in accepted) or "none"
        raise ValueError(f"system {name!r} has no option --{unknown[0].replace('_', '-')}; its options: {flags}")
    system = factory(**options)
    if not isinstance(system, System):
        raise TypeError(f"{name!r} built a {type(system).__name__}, not an autosys System")
    system._registry_name = name  # type: ignore[attr-defined]
    system._options = options  # type: ignore[attr-defined]
    return system

"""Loading plug-ins (systems, tuners) from `module:Class` paths, and the rule for stored ones.

One helper imports a `module:Class` the user named; one rule decides whether a
name read back from storage (a study's spec) may be imported: registered names
always, a `module:Class` path only when the invoking user names the same path
again. Nothing stored is trusted to run code on its own (see DESIGN.md).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, Iterable


class PluginError(LookupError):
    """A plug-in name that is unknown, cannot be imported, or may not be imported."""


class UntrustedPlugin(PluginError):
    """A `module:Class` read back from storage that the user did not name again."""


#: name prefixes that look like paths but resolve through a fixed allow-list, never an import
#: (`optuna:TPESampler` names one of Optuna's samplers: autosys/tuners/optuna_sampler.py)
ALLOW_LISTED_PREFIXES = ("optuna:",)


def is_path(name: str) -> bool:
    """True for a `module:Class` import path (registered names never contain ':'; allow-listed prefixes are names)."""
    return ":" in name and not name.startswith(ALLOW_LISTED_PREFIXES)


def import_object(path: str, *, kind: str = "plug-in", error: type[PluginError] = PluginError) -> Any:
    """Import `module:attr` (the current directory first on the path, so a local file is found).

    Raises `error` (a PluginError subclass) with one line naming what failed.
    """
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise error(f"{path!r} is not of the form module:Class")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # lets `--tuner mymodule:MyTuner` find a local file
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise error(f"cannot import {module_name!r} for {kind} {path!r}: {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise error(f"module {module_name!r} has no {attr!r}") from None


def check_stored_name(stored: str, named: str | Iterable[str] | None, *, kind: str, flag: str) -> None:
    """Refuse to import a `module:Class` read from storage unless the user named it again.

    `stored` is the name in a study's spec; `named` is what the invoking user
    gave on the command line (or in code) for this resume. Registered names
    (no ':') pass; a path passes only when it is among `named`. Both the
    system and the tuner of a resumed study go through here, so the rule
    lives in one place.
    """
    if not is_path(stored):
        return
    given = {named} if isinstance(named, str) else set(named or ())
    if stored not in given:
        raise UntrustedPlugin(
            f"the stored study names {kind} {stored!r}, a module:Class path; it is imported only when you name it "
            f"again: {flag} {stored}"
        )


__all__ = ["PluginError", "UntrustedPlugin", "check_stored_name", "import_object", "is_path"]

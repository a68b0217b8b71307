"""What a system takes and what it tunes, for `autosys tune SYSTEM --help` and `autosys list SYSTEM`.

Options come from the constructor's signature (name, type, default) and its
help text from one docstring convention, a Google-style block in the class
(or `__init__`) docstring; a base class's block documents what its subclasses share:

    Args:
        workload: preset name, or a JSON/TOML file of settings.
        records, operations: sizes of the load and the run (0 = the workload's own).

Knobs come from the system's space, built with the options given (or the
defaults): type, range or choices, default, apply cost and risk where a
parameter declares them, plus the space's constraints.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from click.formatting import HelpFormatter
from rich.console import Console

from autosys.core.registry import make_system, option_marks, option_names

_HEADING = re.compile(r"^(\s*)(Args|Arguments|Options|Parameters):\s*$")
_ENTRY = re.compile(r"^\s*(\w+(?:\s*,\s*\w+)*)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


@dataclass(frozen=True)
class OptionInfo:
    """One constructor option as the command line sees it."""

    name: str
    flag: str
    type: str
    default: Any
    help: str
    mark: str = ""  # "secret" or "command" (never stored in a study)


def parse_option_docs(doc: str | None) -> dict[str, str]:
    """name -> help text from an `Args:` (or `Options:`) block; `a, b: text` documents both."""
    if not doc:
        return {}
    lines = inspect.cleandoc(doc).splitlines()
    out: dict[str, str] = {}
    in_block, heading_indent, entry_indent, current = False, 0, None, []
    for line in lines:
        match = _HEADING.match(line)
        if match:
            in_block, heading_indent, entry_indent, current = True, len(match.group(1)), None, []
            continue
        if not in_block or not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent <= heading_indent:
            in_block = False  # the block ends where the text comes back to the heading's margin
            continue
        entry = _ENTRY.match(line)
        if entry and (entry_indent is None or indent <= entry_indent):
            entry_indent = indent
            current = [n.strip() for n in entry.group(1).split(",")]
            for name in current:
                out[name] = entry.group(2).strip()
        elif current:  # a continuation line
            for name in current:
                out[name] = f"{out[name]} {line.strip()}".strip()
    return out


def _type_name(param: inspect.Parameter) -> str:
    annotation = param.annotation
    if annotation is not inspect.Parameter.empty:
        return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    if param.default is not inspect.Parameter.empty and param.default is not None:
        return type(param.default).__name__
    return "str"


def describe_options(factory: Callable) -> list[OptionInfo]:
    """The options of a system class (or factory function), documented from its docstrings."""
    docs: dict[str, str] = {}
    # a base class documents the options its subclasses share; a subclass's own text wins
    for owner in reversed(factory.__mro__) if isinstance(factory, type) else (factory,):
        docs.update(parse_option_docs(owner.__dict__.get("__doc__") if isinstance(owner, type) else owner.__doc__))
        init = owner.__dict__.get("__init__") if isinstance(owner, type) else None
        if init is not None:
            docs.update(parse_option_docs(init.__doc__))
    secret, executable = option_marks(factory)
    out = []
    for name, param in option_names(factory).items():
        mark = "secret" if name in secret else "command" if name in executable else ""
        default = param.default if param.default is not inspect.Parameter.empty else "(required)"
        out.append(OptionInfo(name, "--" + name.replace("_", "-"), _type_name(param), default, docs.get(name, ""), mark))
    return out


def format_default(value: Any) -> str:
    """A default as a user would type it: none, "" for an empty string, true/false."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if value == "":
        return '""'
    return str(value)


def _knob_range(param: Any) -> str:
    choices = getattr(param, "choices", None)
    if choices is not None:
        return ", ".join(format_default(c) for c in choices)
    scale = ", log" if getattr(param, "log", False) else ""
    return f"[{param.low}, {param.high}]{scale}"


def options_text(name: str, factory: Callable, width: int | None = None) -> str:
    """The options of a system, in the layout of click's own help: flag and type, help, [default: ...]."""
    rows = []
    for option in describe_options(factory):
        mark = f" ({option.mark}: never stored in a study)" if option.mark else ""
        text = f"{option.help}{mark}".strip()
        rows.append((f"{option.flag} <{option.type}>", f"{text}  [default: {format_default(option.default)}]".strip()))
    formatter = HelpFormatter(width=width, max_width=width)
    with formatter.section(f"Options of {name} (--flag VALUE; a boolean also as a bare --flag or --no-flag)"):
        if rows:
            formatter.write_dl(rows)
        else:
            formatter.write_text("none")
    return formatter.getvalue().rstrip()


def knobs_text(name: str, space: Any, width: int | None = None) -> str:
    """A space's knobs: type with range or choices, [default: ...], apply cost, risk, condition; then constraints."""
    rows = []
    for p in space:
        notes = [f"apply cost: {getattr(p, 'apply_cost', 'none') or 'none'}"]
        if getattr(p, "risk", None):
            values = "|".join(map(format_default, p.risky_values)) if p.risky_values else "any value but the default"
            notes.append(f"risky ({values}): {p.risk}; left out unless --allow-risky {p.name}")
        condition = getattr(p, "condition", None)
        if condition is not None:
            notes.append(f"only when {condition.parent}={'|'.join(map(format_default, condition.values))}")
        rows.append((p.name, f"{p.kind} {_knob_range(p)}  [default: {format_default(p.default_value())}]  ({'; '.join(notes)})"))
    formatter = HelpFormatter(width=width, max_width=width)
    with formatter.section(f"Knobs of {name} ({len(rows)}; pin one with --set name=value)"):
        if rows:
            formatter.write_dl(rows, col_max=32)
        else:
            formatter.write_text("none")
    constraints = list(dict.fromkeys(_constraint_row(c) for c in getattr(space, "constraints", [])))
    if constraints:
        with formatter.section("Constraints (configs the search never tries)"):
            formatter.write_dl(constraints)
    return formatter.getvalue().rstrip()


def _constraint_row(constraint: Any) -> tuple[str, str]:
    """(name, what it forbids and why); a declarative Forbid names its values."""
    clauses = getattr(constraint, "clauses", ())
    forbids = " and ".join(f"{key}={'|'.join(map(format_default, values))}" for key, values in clauses)
    text = "; ".join(t for t in (f"forbids {forbids}" if forbids else "", getattr(constraint, "reason", "")) if t)
    return constraint.name, text or "a rule on the config"


def print_system(console: Console, name: str, factory: Callable, options: Mapping[str, Any] | None = None) -> None:
    """Print a system's description, options and knobs; a space that cannot be built here says why."""
    width = max(60, min(console.width, 120))
    summary = (inspect.getdoc(factory) or "").split("\n\n")[0].strip()
    if summary:
        console.print(f"{name}: {' '.join(summary.split())}", highlight=False, markup=False)
        console.print()
    console.print(options_text(name, factory, width), highlight=False, markup=False, soft_wrap=True)
    console.print()
    try:
        space = make_system(name, dict(options or {})).space()
    except Exception as exc:  # a missing engine, an unreachable server: the options are still useful
        console.print(f"Knobs of {name}: not listed here: {' '.join(str(exc).split()) or type(exc).__name__}",
                      highlight=False, markup=False)
        return
    console.print(knobs_text(name, space, width), highlight=False, markup=False, soft_wrap=True)

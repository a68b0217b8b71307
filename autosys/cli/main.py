"""The `autosys` command line: a thin layer over Study, the registries and storage.

    autosys tune SYSTEM [--tuner T] [--budget N] [--seed S] [--dir DIR] [--json PATH]
                        [--set knob=value ...] [--<system option> VALUE ...]
    autosys tune --resume DIR [SYSTEM] [--<secret or command option> VALUE ...]
    autosys tune --config study.toml [any flag above, which wins over the file] [--print-config]
    autosys tune SYSTEM --help      (SYSTEM's options and knobs too)
    autosys list [SYSTEM]
    autosys show DIR [--watch [--interval S] [--timeout S]]
    autosys --version

Any `--flag value` that `tune` does not know is passed to the system's
constructor as keyword `flag` (dashes become underscores), converted to the
type of that parameter's default; a boolean option also takes a bare `--flag`
(true) or `--no-flag` (false). User errors print one line and exit 2.
A config file (autosys/cli/config.py, docs/formats.md) holds the same flags
and options; `--print-config` turns a command line into one.

On a terminal `tune` shows a progress bar; without one (a log file, CI) it
writes the library's log line for each trial as it ends (autosys/run/progress.py).

A study never stores secrets (options a system marks secret, such as
MariaDB's --password, and passwords inside URLs) nor commands to run (such as
--restart-command). On `--resume` they come from you again: the same flags,
an environment variable AUTOSYS_<OPTION> (AUTOSYS_PASSWORD), or the server's
own mechanism (PGPASSWORD, ~/.pgpass, MariaDB option files). A study whose
system is a module:Class is resumed only when you name it again:
`autosys tune --resume DIR module:Class`.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import tempfile
import time
import typing
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from autosys import __version__
from autosys.core.plugins import PluginError
from autosys.core.registry import UnknownSystem, available_systems, option_marks, option_names, system_factory
from autosys.core.spec import StoredOptionIgnored, redact_options, redact_text, secrets_from_env
from autosys.core.space import InvalidConfig
from autosys.storage import StorageError
from autosys.core.system import Objective, SystemUnavailable
from autosys.core.trial import Trial, TrialState
from autosys.core.units import better_text, format_number, format_quantity
from autosys.cli.config import dump_toml, option_type

# Plain help text, not Rich markup: markup would eat every "[default: ...]" (tests/test_cli_help.py checks them).
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="autosys: tune real systems with ML.")
console = Console()
err_console = Console(stderr=True, soft_wrap=True)


class UsageError(ValueError):
    """A mistake on the command line, reported as one line."""


# ----------------------------------------------------------------------------- helpers


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(redact_text(message))}", highlight=False)  # "[set]" is text, not markup
    raise typer.Exit(2)


def parse_assignments(items: list[str], what: str = "--set") -> dict[str, str]:
    """['a=1', 'b=x'] -> {'a': '1', 'b': 'x'} with a clear error for a malformed item."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"{what} takes name=value, not {item!r}")
        out[name.strip()] = value.strip()
    return out


def parse_extra_flags(args: list[str]) -> dict[str, str | None]:
    """['--cache-size', '0.1', '--trace=f', '--durable'] -> {'cache_size': '0.1', 'trace': 'f', 'durable': None}.

    A bare flag (followed by another flag or by nothing) maps to None: `convert_options`
    reads it as true for a boolean option (`--no-flag` as false) and refuses it for others.
    """
    out: dict[str, str | None] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise UsageError(f"unexpected argument {arg!r}")
        name, sep, value = arg[2:].partition("=")
        if not sep:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                value = None
            else:
                value = args[i + 1]
                i += 1
        out[name.replace("-", "_")] = value
        i += 1
    return out


def _bare_flags_refused(raw: dict[str, str | None]) -> dict[str, str]:
    """The flags with their values; a bare flag here is an option missing its value."""
    for name, value in raw.items():
        if value is None:
            raise UsageError(f"option --{name.replace('_', '-')} needs a value")
    return dict(raw)  # type: ignore[arg-type]


def convert_options(factory: Callable, raw: dict[str, str | None]) -> dict[str, Any]:
    """Convert string options to each constructor parameter's type (its default's, else a simple
    annotation's: `n_initial: int | None = None` takes an integer; see config.option_type).

    A bare `--flag` (value None) is true for a boolean option and `--no-flag` false.
    """
    accepted = option_names(factory)
    out: dict[str, Any] = {}
    for name, text in raw.items():
        if text is None:
            positive = name[3:] if name.startswith("no_") and name not in accepted else name
            if positive in accepted and option_type(accepted[positive]) is bool:
                out[positive] = positive == name
                continue
            if positive in accepted or name in accepted:
                flag = "--" + positive.replace("_", "-")
                raise UsageError(f"option {flag} needs a value" if positive == name else f"{flag} is not a boolean option; give {flag} VALUE")
        if name not in accepted:
            flags = ", ".join("--" + n.replace("_", "-") for n in accepted) or "none"
            raise UsageError(f"unknown option --{name.replace('_', '-')}; this system's options: {flags}")
        kind = option_type(accepted[name])  # the default's type, else a simple annotation's (int | None -> int)
        flag = "--" + name.replace("_", "-")
        try:
            if kind is bool:
                lowered = text.lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ValueError
                out[name] = lowered in ("true", "1", "yes", "on")
            elif kind is int:
                out[name] = int(text)
            elif kind is float:
                out[name] = float(text)
            else:
                out[name] = text
        except ValueError:
            kind = {bool: "true or false", int: "an integer", float: "a number"}.get(kind, "a value")
            raise UsageError(f"{flag} expects {kind}, not {text!r}") from None
    return out


def check_number(flag: str, value: float | int | None, *, minimum: float = 0, above: bool = False,
                 maximum: float | None = None) -> None:
    """Refuse NaN, infinity and out-of-range values of a numeric flag, naming the flag (None = not given)."""
    if value is None:
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"{flag} must be a finite number, not {value}")
    if value < minimum or (above and value == minimum):
        raise UsageError(f"{flag} must be {'above' if above else 'at least'} {minimum:g}, not {value:g}")
    if maximum is not None and value > maximum:
        raise UsageError(f"{flag} must be at most {maximum:g}, not {value:g}")


def check_writable(flag: str, path: Path | None) -> None:
    """Refuse an output path that cannot be written, before anything runs; creates nothing."""
    if path is None:
        return
    path = path.expanduser()
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a directory, not a file")
    try:
        if path.exists():
            open(path, "ab").close()  # append mode: the file is not changed
            return
        parent = path.absolute().parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise UsageError(f"{flag} {path} cannot be created: {parent} is not a directory")
        tempfile.TemporaryFile(dir=parent).close()  # a real probe (root passes os.access everywhere); leaves nothing
    except OSError as exc:
        raise UsageError(f"{flag} {path} is not writable: {exc.strerror or exc}") from None


def _fmt(value: Any, unit: str = "") -> str:
    """A value as printed: thousands separators, about four significant digits, the unit if any."""
    return format_quantity(value, unit)


def _knob(value: Any) -> str:
    """A knob's value as `--set` takes it (4096, not 4,096); a float rounded to four significant digits."""
    return format_number(value) if isinstance(value, float) else str(value)


def _objective_title(objective: dict) -> str:
    """ "maximize throughput (ops/s, higher is better)" from a stored objective."""
    unit = Objective.from_json(objective).unit_of()
    why = ", ".join(part for part in (unit, better_text(objective["direction"])) if part)
    return f"{objective['direction']} {objective['metric']} ({why})"


def _results_table(summary: dict) -> Table:
    objective = summary["objective"]
    units = Objective.from_json(objective)
    table = Table(title=f"{summary['system']}: {_objective_title(objective)}")
    table.add_column("")
    table.add_column("default", overflow="fold")
    table.add_column("best", overflow="fold")
    default, best = summary.get("default") or {}, summary.get("best") or {}
    metrics = list(dict.fromkeys([*(default.get("metrics") or {}), *(best.get("metrics") or {})]))
    for name in metrics:
        unit = units.unit_of(name)
        table.add_row(name, _fmt((default.get("metrics") or {}).get(name, ""), unit), _fmt((best.get("metrics") or {}).get(name, ""), unit))
    knobs = list(dict.fromkeys([*(default.get("config") or {}), *(best.get("config") or {})]))
    for name in knobs:
        d, b = (default.get("config") or {}).get(name, "-"), (best.get("config") or {}).get(name, "-")
        mark = "" if d == b else " *"
        table.add_row(f"[dim]{name}[/]", _knob(d), _knob(b) + mark)
    if default and best:
        table.caption = f"{_gain_text(summary)}; * marks changed knobs"
    return table


def _gain_text(summary: dict) -> str:
    """The best's gain over the default with its interval from paired runs (autosys/run/intervals.py)."""
    from autosys.run.intervals import describe

    return describe(summary.get("vs_default"), summary["objective"]["metric"])


# ----------------------------------------------------------------------------- commands


# --help is tune's own option (not click's eager one), so `tune SYSTEM --help` can describe SYSTEM
@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
def tune(
    ctx: typer.Context,
    system: Optional[str] = typer.Argument(
        None, help="System name (see `autosys list`) or module:Class; with --resume, a stored module:Class named again."
    ),
    tuner: str = typer.Option("meta", "--tuner", help="Search strategy (see `autosys list`); meta is a bandit over BO, local steps and TPE."),
    budget: Optional[int] = typer.Option(None, "--budget", help="Trials to run, the default's included [default: 12]."),
    time_budget: Optional[float] = typer.Option(None, "--time-budget", help="Stop after this many seconds [default: no time limit]."),
    confirm: int = typer.Option(
        0, "--confirm", help="Spend the last K trials of the budget on a side-by-side final of the leading configs, which decides (noisy systems)."
    ),
    intensify: bool = typer.Option(
        True, "--intensify/--no-intensify",
        help="Race a proposal that beats the best against it in paired re-runs before it takes over (noise-aware; re-runs count in the budget).",
    ),
    multifidelity: bool = typer.Option(
        False, "--multifidelity/--full-fidelity",
        help="Run proposals in stages up the system's fidelity rungs and prune those outside the best 1/eta at a rung (successive halving).",
    ),
    eta: float = typer.Option(3.0, "--eta", help="With --multifidelity: keep the best 1/eta at each rung; rungs grow eta-fold."),
    brackets: int = typer.Option(1, "--brackets", help="With --multifidelity: Hyperband-style brackets (trials start at rung 0, 1, ... in turn)."),
    seed: int = typer.Option(0, "--seed", help="Seeds the tuner, and the system if it takes a seed."),
    directory: Optional[Path] = typer.Option(None, "--dir", help="Study directory [default: studies/SYSTEM-TIME]."),
    resume: Optional[Path] = typer.Option(
        None, "--resume", help="Continue the study in this directory (secrets and commands are given again: flags or AUTOSYS_<OPTION>) [default: a new study]."
    ),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the result summary as JSON here [default: none]."),
    set_: list[str] = typer.Option([], "--set", help="Pin a knob: --set journal_mode=wal (repeatable) [default: none]."),
    allow_risky: list[str] = typer.Option(
        [], "--allow-risky", help="Let a knob take values that risk more than speed (durability, locked-out readers, unbounded disk use; `autosys list SYSTEM` lists them): --allow-risky locking_mode (repeatable; 'all' for every one) [default: none].",
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar [default: off]."),
    patience: Optional[int] = typer.Option(None, "--patience", help="Stop early after this many trials without improvement [default: never]."),
    executor_kind: Optional[str] = typer.Option(
        None, "--executor", help="Where trials run: inline, subprocess, pool or dask [default: inline, subprocess with --trial-timeout]."
    ),
    workers: Optional[int] = typer.Option(None, "--workers", help="Parallel trials (pool, subprocess, local dask cluster) [default: 1; pool and dask: 2]."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address tcp://HOST:PORT [default: a local cluster]."),
    trial_timeout: Optional[float] = typer.Option(None, "--trial-timeout", help="Kill a trial (and its children) after S seconds [default: no timeout]."),
    storage: Optional[str] = typer.Option(
        None, "--storage", help="Keep the study in PostgreSQL: postgresql://USER@HOST/DB[?study=NAME] [default: DIR/study.sqlite]."
    ),
    warm_start: str = typer.Option(
        "auto", "--warm-start",
        help="Seed a new study once its default is measured: auto (the nearest past study of the same system in the knowledge base), none, or a study DIR [default: auto].",
    ),
    kb: Optional[str] = typer.Option(
        None, "--kb", help="The knowledge base finished studies add themselves to (autosys kb): a file, a postgresql:// URL, or off [default: AUTOSYS_KB, else ~/.local/share/autosys/knowledge.db].",
    ),
    tuner_option: list[str] = typer.Option(
        [], "--tuner-option", help="A keyword option of the tuner's constructor: --tuner-option n_initial=5 (repeatable) [default: none]."
    ),
    config: Optional[Path] = typer.Option(
        None, "--config", help="A TOML file holding any of these options, SYSTEM and its options (docs/formats.md); the command line wins over it [default: none]."
    ),
    print_config: bool = typer.Option(
        False, "--print-config", help="Print the study these options (and --config) describe as a config file, and exit; nothing runs [default: off]."
    ),
    show_help: bool = typer.Option(False, "--help", "-h", help="Show this message (and SYSTEM's options and knobs) and exit."),
) -> None:
    """Tune SYSTEM (or resume a study) and print the default vs the best config.

    Options this command does not know go to SYSTEM's constructor: `autosys tune SYSTEM --help` lists them.
    """
    if show_help:
        _tune_help(ctx, system)
        return
    try:
        request = resolve_tune(ctx)
    except (UsageError, PluginError, ValueError, OSError) as exc:  # ConfigError, UnknownSystem are ValueErrors
        _fail(str(exc))
        return
    if print_config:
        sys.stdout.write(redact_text(dump_toml(request.file_form())))
        return
    _run_tune(request)


@dataclass
class TuneRequest:
    """A `tune` command resolved from the command line and a --config file: checked, nothing built yet.

    params: tune's parameters by name (the file's values where the command line gave none);
    options: the system's options, typed (the file's, then the command line's);
    extra: the command line's unknown flags as text (on --resume: secrets and commands);
    fixed: pinned knobs as text (--set); tuner_options: typed.
    """

    command: Any
    params: dict[str, Any]
    config_path: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, str | None] = field(default_factory=dict)
    fixed: dict[str, str] = field(default_factory=dict)
    tuner_options: dict[str, Any] = field(default_factory=dict)
    file_fixed: dict[str, str] = field(default_factory=dict)  # the knobs the file pinned (its errors name the file)

    def file_form(self) -> dict[str, Any]:
        """The request as a study config file holds it (`autosys tune --config`); secrets left out."""
        from autosys.cli.config import OPTIONS_TABLE, TABLES, file_keys

        out: dict[str, Any] = {}
        for key, param in file_keys(self.command).items():
            value = self.params.get(param.name)
            out[key] = str(value) if isinstance(value, Path) else value
        secret = option_marks(system_factory(self.params["system"]))[0] if self.params.get("system") else ()
        out[OPTIONS_TABLE] = redact_options(self.options, secret)
        out[TABLES["set_"]] = dict(self.fixed)
        out[TABLES["tuner_option"]] = dict(self.tuner_options)
        return out


def resolve_tune(ctx: typer.Context) -> TuneRequest:
    """Merge the command line with a --config file (the command line wins, flag by flag and option by option)
    and check every value, naming the flag or the file's key; builds and creates nothing."""
    from autosys.cli.config import check_options, load_study_config
    from autosys.tuners import tuner_class

    params = dict(ctx.params)
    raw_args = list(ctx.args)
    given = {name for name in params if getattr(ctx.get_parameter_source(name), "name", "") == "COMMANDLINE"}
    if params["system"] is not None and params["system"].startswith("-"):  # click hands a leading unknown flag to SYSTEM
        raw_args, params["system"] = [params["system"], *raw_args], None
        given.discard("system")
    file = None
    if params["config"] is not None:
        if params["resume"] is not None:
            raise UsageError("--config describes a new study; --resume DIR continues one as it was created")
        file = load_study_config(params["config"], ctx.command, typing.get_type_hints(tune))
        params.update({name: value for name, value in file.values.items() if name not in given})
    # every bad flag is one line before anything is built or created; a bad value from the file names its key
    def check(flag: str, name: str, checker: Callable = check_number, **limits: Any) -> None:
        try:
            checker(flag, params[name], **limits)
        except UsageError as exc:
            if file is None or name in given or name not in file.values:
                raise
            key = flag[2:].replace("-", "_")
            raise UsageError(f"{file.path}: {str(exc).replace(flag, key, 1)}") from None

    check("--budget", "budget", minimum=1)
    check("--time-budget", "time_budget", above=True)
    check("--trial-timeout", "trial_timeout", above=True)
    check("--patience", "patience", minimum=1)
    check("--seed", "seed", maximum=2**32 - 1)
    check("--confirm", "confirm")
    check("--workers", "workers", minimum=1)
    check("--json", "json_path", check_writable)
    kind = params["executor_kind"] or ("dask" if params["scheduler"] else "subprocess" if params["trial_timeout"] is not None else "inline")
    if kind == "inline" and params["workers"] not in (None, 1):
        raise UsageError("--workers needs --executor pool, subprocess or dask")
    request = TuneRequest(ctx.command, params, extra=parse_extra_flags(raw_args), config_path=file.path if file else None)
    if params["resume"] is not None:
        if params["set_"] or params["tuner_option"] or params["allow_risky"]:
            raise UsageError("--resume DIR continues a study as it was created; give no --set, --tuner-option or --allow-risky")
        return request
    system = params["system"]
    if system is None and file is not None:
        raise UsageError(f"{file.path}: no system: add system = \"NAME\" (see `autosys list`) or name one on the command line")
    if system is None:
        raise UsageError("name a system to tune (see `autosys list`), give --config FILE with a system, or --resume DIR")
    tuner_class(params["tuner"])  # an unknown tuner is named before the system is built
    factory = system_factory(system)
    if file is not None:
        options = file.options
        if file.values.get("system") != system and options:  # SYSTEM on the command line replaced (or supplied) the file's
            options = check_options(factory, options, f"{file.path}: options (for {system})")
        request.options.update(options)
        request.fixed.update(file.fixed)
        request.file_fixed = dict(file.fixed)
    request.options.update(convert_options(factory, request.extra))
    request.fixed.update(parse_assignments(params["set_"]))
    where = f"{file.path}: tuner_options" if file is not None else "tuner_options"
    request.tuner_options = _tuner_options(params["tuner"], file.tuner_options if file else {},
                                           parse_assignments(params["tuner_option"], "--tuner-option"), where)
    return request


def _tuner_options(tuner: str, values: dict[str, Any], raw: dict[str, str], where: str) -> dict[str, Any]:
    """A tuner's keyword options: typed ones from a file, then text ones from --tuner-option (which win)."""
    from autosys.cli.config import TUNER_RESERVED, check_options, tuner_parameters
    from autosys.tuners import tuner_class

    options = check_options(tuner_class(tuner), values, where, reserved=TUNER_RESERVED)
    accepted = tuner_parameters(tuner)
    for name in raw:
        if name in TUNER_RESERVED:
            raise UsageError(f"--tuner-option {name} is set by the study, not by hand")
        if name not in accepted:
            raise UsageError(f"--tuner-option {name}: tuner {tuner!r} has no such option; known: {', '.join(accepted) or 'none'}")
    options.update(convert_options(tuner_class(tuner), dict(raw)))
    return options


def _run_tune(request: TuneRequest) -> None:
    """Create (or resume) the study a request describes, run it with progress, print default vs best."""
    from autosys.executors import make_executor
    from autosys.core.registry import make_system
    from autosys.run.study import Study, StudyError

    p = request.params
    system, tuner, budget, time_budget, seed = p["system"], p["tuner"], p["budget"], p["time_budget"], p["seed"]
    directory, resume, storage, quiet, json_path = p["directory"], p["resume"], p["storage"], p["quiet"], p["json_path"]
    executor = None
    try:
        kind = p["executor_kind"] or ("dask" if p["scheduler"] else "subprocess" if p["trial_timeout"] is not None else "inline")
        executor = make_executor(kind, workers=p["workers"], scheduler=p["scheduler"], timeout=p["trial_timeout"])
        from autosys.cli.kb import TuneKnowledge  # the knowledge base: warm start, and the study adds itself at the end

        knowledge = TuneKnowledge(p.get("warm_start", "auto"), p.get("kb"), resumed=resume is not None, console=err_console)
        if resume is not None:
            extra = _bare_flags_refused(request.extra)
            # SYSTEM names a stored module:Class again; extra flags give secrets and commands, never stored
            with warnings.catch_warnings(record=True) as ignored:
                warnings.simplefilter("always", StoredOptionIgnored)
                try:
                    study = Study.resume(resume, system=system, system_options=extra or None, budget=budget,
                                         seconds=time_budget, storage=storage, tuner=tuner)
                finally:
                    for warning in [w for w in ignored if issubclass(w.category, StoredOptionIgnored)]:
                        err_console.print(f"warning: {redact_text(str(warning.message))}", highlight=False)
        else:
            factory = system_factory(system)
            options = dict(request.options)
            options.update(secrets_from_env(option_marks(factory)[0], options))  # AUTOSYS_PASSWORD etc.
            if "seed" in option_names(factory):
                options.setdefault("seed", seed)
            system_obj = make_system(system, options)
            if request.file_fixed:  # a bad knob in the file's [set] names the file
                try:
                    system_obj.space().subspace({k: v for k, v in request.file_fixed.items() if k not in parse_assignments(p["set_"])})
                except InvalidConfig as exc:
                    raise UsageError(f"{request.config_path}: set: {exc}") from None
            default_name = directory is None  # two runs in one second get a study each (-2, -3, ...)
            directory = directory or Path("studies") / f"{system.replace(':', '-')}-{time.strftime('%Y%m%d-%H%M%S')}"
            study = Study.create(
                directory,
                system_obj,
                tuner=tuner,
                tuner_options=request.tuner_options or None,
                budget=budget if budget is not None else (None if time_budget else 12),
                seconds=time_budget,
                seed=seed,
                fixed=request.fixed,
                storage=storage,
                confirm=p["confirm"],
                intensify=p["intensify"],
                multifidelity={"eta": p["eta"], "brackets": p["brackets"]} if p["multifidelity"] else None,
                allow_risky=p["allow_risky"],
                unique=default_name,
            )
    except (UsageError, InvalidConfig, PluginError, StudyError, StorageError, SystemUnavailable, ValueError, OSError) as exc:
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        _fail(str(exc))
        return

    total = study.budget.trials
    done = study.n_finished()
    err_console.print(f"study: {study.directory}  system: {study.spec['system']}  tuner: {study.spec['tuner']}", highlight=False)
    # on a terminal: a progress bar; else (a log file, a pipe, CI) one line per trial as it ends (autosys/run/progress.py)
    log_lines = not quiet and not err_console.is_terminal
    with _trial_log(log_lines), Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=quiet or log_lines,
        transient=False,
    ) as progress:
        task = progress.add_task("tuning", total=total, completed=done)

        def on_trial(study_: "Study", trial: Trial) -> None:
            knowledge.on_trial(study_, trial)
            if log_lines:
                return  # the trial's log line says it all
            best = study_.best
            objective = study_.objective
            best_text = f"best {objective.metric} {format_quantity(best.value, objective.unit_of())}" if best else "no success yet"
            if trial.state != TrialState.COMPLETE or trial.error:
                err_console.print(f"  trial {trial.number} {trial.state.value}: {redact_text(str(trial.error))}", highlight=False)
            progress.update(task, advance=1, description=f"tuning ({best_text})")

        try:
            stop_when = None
            if p["patience"] is not None:
                from autosys.tuners.stopping import stop_on_stagnation

                stop_when = stop_on_stagnation(p["patience"])
            study.run(callback=on_trial, executor=executor, stop_when=stop_when)
        except KeyboardInterrupt:
            executor.shutdown(wait=False, cancel_futures=True)
            err_console.print(f"interrupted; continue with: autosys tune --resume {study.directory}")
            raise typer.Exit(130)
        except (SystemUnavailable, StorageError, InvalidConfig) as exc:
            executor.shutdown(wait=False, cancel_futures=True)
            _fail(str(exc))
        executor.shutdown()

    summary = study.summary()
    summary["study_dir"] = str(study.directory)
    console.print(_results_table(summary))
    if summary["objective"].get("others") and study.directory is not None:
        _show_pareto(study.directory, summary, storage)
    counts = summary["trials"]
    console.print(
        f"trials: {counts['complete']} complete, {counts['failed']} failed, {counts['timed_out']} timed out"
        + (f", {counts['pruned']} pruned" if counts.get("pruned") else "")
        + f"  -  study saved in {study.directory}",
        highlight=False,
    )
    knowledge.finish(study, storage)
    if knowledge.report is not None:
        summary["warm_start"] = knowledge.report
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(redact_text(json.dumps(summary, indent=2, default=str)))
    study.close()


@contextmanager
def _trial_log(enabled: bool) -> Iterator[None]:
    """While a study runs, send the library's INFO lines ("autosys.study": one per trial) to stderr."""
    if not enabled:
        yield
        return
    logger = logging.getLogger("autosys")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _tune_help(ctx: typer.Context, system: str | None) -> None:
    """`tune --help`; with SYSTEM, its options and knobs too (built from the options given, else defaults)."""
    from autosys.cli.describe import print_system

    console.print(ctx.get_help(), highlight=False, markup=False)
    if system is None or system.startswith("-"):
        return
    try:
        factory = system_factory(system)
        options = convert_options(factory, parse_extra_flags(list(ctx.args)))
    except (UsageError, PluginError, ValueError) as exc:
        _fail(str(exc))
        return
    console.print()
    print_system(console, system, factory, options)


def _show_pareto(directory: Path, summary: dict, storage: str | None = None) -> None:
    """Print the trade-off front of a multi-metric objective, add it to the summary, draw pareto.png."""
    from autosys.analysis.report import load_study, pareto_rows, plot_pareto

    data = load_study(directory, storage)
    rows = pareto_rows(data)
    if not rows:
        return
    summary["pareto_front"] = rows
    metric, second = summary["objective"]["metric"], summary["objective"]["others"][0][0]
    table = Table(title=f"Pareto front: {metric} vs {second} ({len(rows)} of the feasible trials)")
    for column in ("#", metric, second, "config"):
        table.add_column(column, overflow="fold")
    units = Objective.from_json(summary["objective"])
    for row in rows[:10]:
        table.add_row(str(row["number"]), _fmt(row[metric], units.unit_of(metric)), _fmt(row[second], units.unit_of(second)),
                      json.dumps(row["config"], default=str))
    console.print(table)
    path = plot_pareto(data, Path(directory) / "pareto.png")
    if path is not None:
        console.print(f"trade-off plot: {path}", highlight=False)


@app.command("list")
def list_(
    system: Optional[str] = typer.Argument(None, help="Describe this system: its options and knobs [default: list everything]."),
) -> None:
    """Show the systems and tuners autosys knows, or one system's options and knobs."""
    from autosys.tuners import TUNERS, available_tuners, shadowed_tuners, tuner_class

    if system is not None:
        from autosys.cli.describe import print_system

        try:
            factory = system_factory(system)
        except PluginError as exc:
            _fail(str(exc))
            return
        print_system(console, system, factory)
        return

    table = Table(title="systems")
    table.add_column("name")
    table.add_column("status")
    table.add_column("options")
    for name in available_systems():
        try:
            factory = system_factory(name)
            options = ", ".join("--" + n.replace("_", "-") for n in option_names(factory))
            status = "ok"
        except UnknownSystem as exc:
            options, status = "", f"unavailable: {exc}"
        table.add_row(name, status, options)
    console.print(table)
    console.print("options and knobs of one system: autosys list SYSTEM (or autosys tune SYSTEM --help)", highlight=False)
    console.print("tuners: " + ", ".join(TUNERS) + " (built in; or --tuner module:Class)", highlight=False)
    plugins = {n: p for n, p in available_tuners().items() if n not in TUNERS}
    for name, path in [*plugins.items(), *shadowed_tuners().items()]:
        status = "ignored: a built-in has this name" if name in TUNERS else "ok"
        if status == "ok":
            try:
                tuner_class(name)
            except PluginError as exc:
                status = f"unavailable: {exc}"
        console.print(f"  plug-in tuner {name} = {path}  ({status})", highlight=False, soft_wrap=True)


def _study_header(spec: dict) -> str:
    budget = spec.get("budget") or {}
    limits = [f"{budget['trials']:,} trials" if budget.get("trials") else "", f"{_fmt(budget['seconds'], 's')}" if budget.get("seconds") else ""]
    return (f"system {spec['system']} {redact_options(spec.get('system_options') or {})}  tuner {spec['tuner']}  seed {spec['seed']}"
            f"  budget {' and '.join(t for t in limits if t) or 'none'}  objective: {_objective_title(spec['objective'])}")


def _trials_table(trials: list[Trial], spec: dict, rows: int | None = None) -> Table:
    """Every trial (or the last `rows`): value with its unit, seconds, config or error."""
    objective = spec["objective"]
    unit = Objective.from_json(objective).unit_of()
    shown = trials if rows is None or len(trials) <= rows else trials[-rows:]
    table = Table(caption=f"the last {len(shown)} of {len(trials):,} trials" if len(shown) < len(trials) else None)
    for column in ("#", "state", "source", f"{objective['metric']} ({unit})" if unit else objective["metric"], "seconds", "config / error"):
        table.add_column(column, overflow="fold")
    for t in shown:
        detail = redact_text(t.error) if t.error else json.dumps(t.config)
        table.add_row(
            str(t.number), t.state.value, t.source, _fmt(t.value) if t.value is not None else "-",
            _fmt(t.duration) if t.duration else "-", detail,
        )
    return table


def _show_trials(storage, spec: dict) -> None:
    console.print(_study_header(spec), highlight=False)
    console.print(_trials_table(storage.trials(), spec))


def _watch_view(snapshot: Any, rows: int | None) -> Any:
    """The terminal view of `show --watch`: the header, progress and best so far, the latest trials."""
    from rich.console import Group
    from rich.text import Text

    done, budget, best = len(snapshot.finished), snapshot.budget, snapshot.best()
    unit = snapshot.objective.unit_of()
    progress = f"{done:,} of {budget:,} trials done" if budget else f"{done:,} trials done"
    progress += f", {snapshot.running} running" if snapshot.running else ""
    progress += f"; best {_fmt(best.value, unit)} (trial {best.number})" if best is not None and best.value is not None else "; no successful trial yet"
    stamp = time.strftime("%H:%M:%S")
    return Group(Text(_study_header(snapshot.spec)), Text(f"{stamp}  {progress}  (Ctrl-C stops watching)"),
                 _trials_table(snapshot.trials, snapshot.spec, rows))


@app.command()
def show(
    directory: Path = typer.Argument(..., help="A study directory."),
    watch: bool = typer.Option(False, "--watch", help="Follow the study as trials land, until it ends or Ctrl-C [default: off]."),
    interval: float = typer.Option(2.0, "--interval", help="With --watch: seconds between looks."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="With --watch: stop watching after this many seconds [default: until the study ends]."),
) -> None:
    """Show a study's spec and every trial (with --watch: follow it while it runs)."""
    from autosys.storage import SQLiteStorage

    try:
        check_number("--interval", interval, above=True)
        check_number("--timeout", timeout, above=True)
    except UsageError as exc:
        _fail(str(exc))
        return
    if watch:
        _watch(directory, interval, timeout)
        return
    try:
        storage = SQLiteStorage(directory, create=False)
    except StorageError as exc:
        _fail(str(exc))
        return
    try:
        spec = storage.load_spec()
        if spec is not None:
            _show_trials(storage, spec)
        events = storage.events("agent")
    except StorageError as exc:
        _fail(str(exc))
        return
    if events:
        timeline = Table(title="agent timeline")
        for column in ("time", "window", "action", "value", "reason"):
            timeline.add_column(column, overflow="fold")
        for t, _, body in events:
            value = body.get("value")
            timeline.add_row(time.strftime("%H:%M:%S", time.localtime(t)), str(body.get("window")), body.get("action", ""),
                             _fmt(value) if value is not None else "-", body.get("reason", ""))
        console.print(timeline)
    storage.close()


def _watch(directory: Path, interval: float, timeout: float | None) -> None:
    """`show --watch`: the view redrawn on a terminal, else one line per finished trial; ends with why it stopped."""
    from autosys.cli.watch import watch

    try:
        if not console.is_terminal:
            from autosys.storage import SQLiteStorage

            storage = SQLiteStorage(directory, create=False)
            spec = storage.load_spec()
            storage.close()
            if spec is not None:
                console.print(_study_header(spec), highlight=False, soft_wrap=True)
        reason = watch(directory, console, _watch_view, interval=interval, timeout=timeout)
    except StorageError as exc:
        _fail(str(exc))
        return
    except KeyboardInterrupt:
        reason = "stopped watching (Ctrl-C)"
    console.print(reason, highlight=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def agent(
    ctx: typer.Context,
    system: str = typer.Argument(..., help="System to keep tuned (it must support apply/current and monitors)."),
    config: Optional[Path] = typer.Option(None, "--config", help="JSON/TOML: window, duration, tuner, guardrails, tries_per_regime [default: none, built-in settings]."),
    directory: Path = typer.Option(Path("studies/agent"), "--dir", help="Where decisions are logged (resumes from it)."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Stop after this many seconds [default: run until Ctrl-C]."),
    policy_name: Optional[str] = typer.Option(None, "--policy", help="tuner (explores blind) or safe (tries only what the knowledge base predicts is safe) [default: the config's policy, else tuner]."),
) -> None:
    """Run the agent as a sidecar: watch SYSTEM, try candidates, keep wins, roll back losses."""
    from autosys.cli.config import load_agent_config
    from autosys.online.agent import Agent, Guardrails, TunerPolicy
    from autosys.core.registry import make_system
    from autosys.storage import SQLiteStorage

    try:
        check_number("--duration", duration, above=True)
        settings = load_agent_config(config) if config else {}  # keys and types checked (docs/formats.md)
        factory = system_factory(system)
        system_obj = make_system(system, convert_options(factory, parse_extra_flags(list(ctx.args))))
        system_obj.setup()
        guard_settings = settings.get("guardrails", {})
        policy_name = policy_name or settings.get("policy", "tuner")
        if policy_name not in ("tuner", "safe"):
            raise UsageError(f"--policy takes tuner or safe, not {policy_name!r}")
        if policy_name == "safe":  # autosys/online/safe_policy.py: a prior from the knowledge base (none: live windows only)
            from autosys.online.safe_policy import SafePolicy, prior_from_knowledge_base

            objective = system_obj.objective
            prior = prior_from_knowledge_base(system, metric=objective.metric, direction=objective.direction)
            policy = SafePolicy(system_obj.space().safe(), objective.direction, prior, seed=int(settings.get("seed", 0)),
                                tries_per_regime=int(settings.get("tries_per_regime", 4)),
                                min_gain=Guardrails(**guard_settings).min_relative_gain)
            err_console.print(f"safe policy: a prior of {len(prior)} past studies of {system} from the knowledge base", highlight=False)
        else:
            policy = TunerPolicy(system_obj.space().safe(), system_obj.objective.direction, tuner=settings.get("tuner", "random"),
                                 seed=int(settings.get("seed", 0)), tries_per_regime=int(settings.get("tries_per_regime", 8)))
        runner = Agent(system_obj, policy, guardrails=Guardrails(**guard_settings), window=float(settings.get("window", 1.0)),
                       storage=SQLiteStorage(directory))
    except (UsageError, InvalidConfig, UnknownSystem, SystemUnavailable, ValueError, StorageError) as exc:
        _fail(str(exc))
        return
    limit = duration if duration is not None else settings.get("duration")
    err_console.print(f"agent on {system}: logging to {directory}; Ctrl-C to stop", highlight=False)
    runner.start()
    try:
        deadline = None if limit is None else time.monotonic() + float(limit)
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        runner.stop()
        system_obj.teardown()
    console.print(f"decisions: {runner.counts()}  incumbent: {runner.incumbent}", highlight=False)


@app.command()
def report(
    directories: list[Path] = typer.Argument(..., help="One or more study directories."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder [default: DIR/report]."),
) -> None:
    """Write an HTML report with plots for one study, or a comparison of several."""
    from autosys.analysis.report import write_report

    try:
        page = write_report(directories, out)
    except (StorageError, ValueError) as exc:
        _fail(str(exc))
        return
    console.print(f"report written to {page}", highlight=False)


def _print_version(value: bool) -> None:
    if value:
        console.print(f"autosys {__version__}", highlight=False)
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print the version and exit [default: off]."),
) -> None:
    """autosys: tune real systems with ML."""


def _mount_command_groups() -> None:
    """Add command groups that packages contribute through the `autosys.commands` entry points."""
    existing = {group.name for group in app.registered_groups}
    for ep in entry_points(group="autosys.commands"):
        if ep.name in existing:
            continue
        try:
            sub = ep.load()
        except ImportError:
            continue  # its adapter is not installed; `autosys list` shows systems, not groups
        app.add_typer(sub, name=ep.name)


def main(argv: list[str] | None = None) -> None:
    _mount_command_groups()
    try:
        code = app(args=argv, prog_name="autosys", standalone_mode=False)
    except typer.Abort:
        sys.exit(130)
    except typer.TyperException as exc:  # a flag typer could not parse (`--budget nan`): one line, like every user error
        if type(exc).__name__ == "NoArgsIsHelpError":
            console.print(exc.ctx.get_help(), highlight=False, markup=False)  # type: ignore[attr-defined]
            sys.exit(0)
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        err_console.print(f"[bold red]error:[/] {' '.join(message.split())}", highlight=False)
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main(sys.argv[1:])

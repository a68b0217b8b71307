"""`autosys export DIR --to optuna URL` and `autosys import optuna URL`: studies to and from Optuna storage.

So Optuna's plots and optuna-dashboard work on autosys studies (and autosys's
show, report and importance on Optuna's). The mapping lives in
`autosys/analysis/optuna_io.py`. Mounted through the `autosys.commands`
entry-point group:

    [project.entry-points."autosys.commands"]
    export = "autosys.cli.optuna:export_app"
    import = "autosys.cli.optuna:import_app"
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from autosys.core.spec import redact_text

FORMATS = ("optuna",)

export_app = typer.Typer(
    add_completion=False, invoke_without_command=True, context_settings={"allow_interspersed_args": True},
    help="Export a study to another tool's storage (Optuna), for its plots and dashboard.",
)
import_app = typer.Typer(
    add_completion=False, invoke_without_command=True, context_settings={"allow_interspersed_args": True},
    help="Import a study from another tool's storage (Optuna) into a new study directory.",
)
console = Console()
err = Console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {redact_text(' '.join(str(message).split()))}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        _fail(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _states(states: dict[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in sorted(states.items()))


@export_app.callback(invoke_without_command=True)
def export(
    directory: Path = typer.Argument(..., help="A study directory."),
    url: str = typer.Argument(..., help="Where to write: an Optuna storage URL (sqlite:///optuna.db, postgresql://user@host/db)."),
    to: str = typer.Option(..., "--to", help="The format to export to: optuna."),
    study_name: Optional[str] = typer.Option(None, "--study-name", help="The Optuna study's name [default: the directory's name]."),
    storage: Optional[str] = typer.Option(None, "--storage", help="The study's postgresql:// storage, when it is not DIR/study.sqlite [default: none]."),
) -> None:
    """Write the study in DIRECTORY to the Optuna storage URL as an Optuna study (trials, states, metrics, conditional knobs)."""
    _check_format(to)
    from autosys.analysis.optuna_io import export_study
    from autosys.run.study import StudyError
    from autosys.storage import StorageError

    try:
        done = export_study(directory, url, study_name=study_name, storage=storage)
    except (ImportError, StorageError, StudyError, ValueError, OSError) as exc:
        _fail(str(exc))
        return
    console.print(f"exported {done.trials} trials ({_states(done.states)}) of {directory} to Optuna study "
                  f"{done.study_name!r} in {done.url}", highlight=False, soft_wrap=True)
    console.print(f"view: optuna-dashboard {done.url}", highlight=False, soft_wrap=True)


@import_app.callback(invoke_without_command=True)
def import_(
    fmt: str = typer.Argument(..., metavar="FORMAT", help="The format to import from: optuna."),
    url: str = typer.Argument(..., help="An Optuna storage URL (sqlite:///optuna.db, postgresql://user@host/db)."),
    study_name: Optional[str] = typer.Option(None, "--study-name", help="The Optuna study to import [default: the storage's only study]."),
    directory: Optional[Path] = typer.Option(None, "--dir", help="The new study directory [default: studies/optuna-NAME-TIME]."),
) -> None:
    """Make a new study directory from an Optuna study (show, report and importance then work on it)."""
    _check_format(fmt)
    from autosys.analysis.optuna_io import import_study
    from autosys.run.study import StudyError
    from autosys.storage import StorageError

    try:
        name = study_name or _only_study(url)
        target = directory or Path("studies") / f"optuna-{_safe(name)}-{time.strftime('%Y%m%d-%H%M%S')}"
        done = import_study(url, name, target)
    except (ImportError, StorageError, StudyError, ValueError, OSError) as exc:
        _fail(str(exc))
        return
    console.print(f"imported {done.trials} trials ({_states(done.states)}) of Optuna study {done.study_name!r} "
                  f"into {done.directory}", highlight=False, soft_wrap=True)


def _only_study(url: str) -> str:
    from autosys.analysis.optuna_io import OptunaInteropError, study_names

    names = study_names(url)
    if len(names) != 1:
        raise OptunaInteropError(f"{redact_text(url)} holds {len(names)} Optuna studies; name one with --study-name: "
                                 f"{', '.join(names) or 'none'}")
    return names[0]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:60] or "study"


__all__ = ["export_app", "import_app"]

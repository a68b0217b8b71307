"""`autosys kb list|show|add|forget`: the knowledge base of finished studies; and what `tune` does with it.

    autosys kb list [--system NAME] [--kb LOCATION]
    autosys kb show ID [--kb LOCATION]
    autosys kb add DIR... [--storage URL] [--kb LOCATION]
    autosys kb forget ID... [--kb LOCATION]
    autosys kb models [--train] [--kb LOCATION]

LOCATION is a file, a postgresql://USER@HOST/DB[?schema=NAME] URL, or "off";
the default is AUTOSYS_KB, else ~/.local/share/autosys/knowledge.db
(autosys/learn/knowledge.py). `autosys tune` adds each study it finishes
(`TuneKnowledge.finish`) and, unless told `--warm-start none`, seeds a new
study from the nearest past study of the same system once its default config
is measured (`TuneKnowledge.on_trial`: autosys/analysis/kb_warm_start.py, which
Python callers use directly), printing one line that says from which study and how many configs.

Mounted through the `autosys.commands` entry points:

    [project.entry-points."autosys.commands"]
    kb = "autosys.cli.kb:app"
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from autosys.core.spec import redact_text
from autosys.core.trial import Trial
from autosys.core.units import format_quantity
from autosys.learn.knowledge import (
    ENV, KnowledgeBase, KnowledgeBaseError, add_study, default_location, entry_from_study, is_off, open_knowledge_base,
)

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="The knowledge base of finished studies that tune warm-starts from: list, show, add, forget.")
console = Console()
err = Console(stderr=True, soft_wrap=True)

KB_HELP = (f"The knowledge base: a file, a postgresql://USER@HOST/DB[?schema=NAME] URL, or off "
           f"[default: {ENV}, else ~/.local/share/autosys/knowledge.db].")


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(redact_text(message))}", highlight=False)
    raise typer.Exit(2)


def _open(location: str | None, *, create: bool) -> KnowledgeBase | None:
    """The knowledge base, or None when it does not exist yet (and `create` is False)."""
    where = location or default_location()
    if is_off(where):
        _fail(f"the knowledge base is turned off ({where!r}); give --kb LOCATION")
    if not create and "://" not in where and not Path(where).expanduser().exists():
        return None
    try:
        return open_knowledge_base(where, create=create)
    except KnowledgeBaseError as exc:
        if not create and "no knowledge base" in str(exc):
            return None
        _fail(str(exc))
    return None


def _host_text(host: dict[str, Any]) -> str:
    ram = host.get("ram_bytes") or 0
    fsync = host.get("fsync_ms")
    parts = [str(host.get("cpu_model") or "?"), f"{host.get('cores', '?')} cores", f"{ram / 2**30:.0f} GiB"]
    if fsync is not None:
        parts.append(f"fsync {fsync:.3g} ms")
    return ", ".join(parts)


def _value(v: float | None) -> str:
    return "-" if v is None else format_quantity(v, "")


@app.command("list")
def list_(
    system: Optional[str] = typer.Option(None, "--system", help="Only studies of this system [default: all]."),
    kb: Optional[str] = typer.Option(None, "--kb", help=KB_HELP),
) -> None:
    """List the studies in the knowledge base."""
    base = _open(kb, create=False)
    if base is None:
        console.print(f"the knowledge base {kb or default_location()} is empty: studies add themselves when `autosys tune` finishes",
                      highlight=False)
        return
    with base:
        try:
            studies = base.studies(system)
        except KnowledgeBaseError as exc:
            _fail(str(exc))
            return
        table = Table(title=f"knowledge base {base.where}: {len(studies)} studies")
        for column in ("id", "system", "study", "trials", "default", "best", "metric", "host", "added"):
            table.add_column(column, overflow="fold")
        for s in studies:
            table.add_row(str(s.id), s.system, s.name, str(s.n_trials), _value(s.default_value), _value(s.best_value),
                          f"{s.metric} ({s.direction})", _host_text(s.host), time.strftime("%Y-%m-%d %H:%M", time.localtime(s.added_at)))
        console.print(table)


@app.command()
def show(
    study_id: int = typer.Argument(..., help="A study's id (see `autosys kb list`)."),
    top: int = typer.Option(10, "--top", help="How many of the best trials to show."),
    kb: Optional[str] = typer.Option(None, "--kb", help=KB_HELP),
) -> None:
    """Show one study: where it came from, its host, its workload signature and its best trials."""
    base = _open(kb, create=False)
    if base is None:
        _fail(f"no study {study_id}: the knowledge base {kb or default_location()} is empty")
        return
    with base:
        try:
            study = base.get(study_id)
        except KnowledgeBaseError as exc:
            _fail(str(exc))
            return
    if study is None:
        _fail(f"no study {study_id} in the knowledge base {base.where} (see `autosys kb list`)")
        return
    out = console.print
    out(f"study {study.id}: {study.system} {study.name}  ({study.n_trials} trials, {study.metric} {study.direction})", highlight=False)
    out(f"from: {redact_text(study.origin)}", highlight=False)
    out(f"host: {study.host.get('hostname', '?')}: {_host_text(study.host)}; vector: {' '.join(study.host.get('vector_extensions') or []) or '-'}",
        highlight=False)
    sig = study.signature
    out(f"options: {sig.get('options') or {}}", highlight=False, markup=False)
    for kind in ("metrics", "monitors"):
        values = sig.get(kind) or {}
        if values:
            out(f"{kind} (default config): " + ", ".join(f"{k}={format_quantity(v, '')}" for k, v in sorted(values.items())),
                highlight=False, markup=False)
    table = Table(title=f"the best {min(top, len(study.ranked()))} trials (default {_value(study.default_value)})")
    for column in ("#", "source", study.metric, "config"):
        table.add_column(column, overflow="fold")
    for t in study.ranked()[:top]:
        table.add_row(str(t.number), t.source, _value(t.value), escape(str(t.config)))
    out(table)


@app.command()
def models(
    train: bool = typer.Option(False, "--train", help="Fit each model now and say how long it took [default: only list]."),
    kb: Optional[str] = typer.Option(None, "--kb", help=KB_HELP),
) -> None:
    """The learning loop's models (autosys/learn/loop.py): which system's studies each learns from, its data version."""
    from autosys.core.registry import UnknownSystem
    from autosys.learn.loop import LearningLoop, NoTrainingData

    base = _open(kb, create=False)
    if base is None:
        console.print(f"the knowledge base {kb or default_location()} is empty: no model has data to learn from", highlight=False)
        return
    with base:
        loop = LearningLoop(base)
        try:
            systems = sorted({s.system for s in base.studies()})
        except KnowledgeBaseError as exc:
            _fail(str(exc))
            return
        for system in systems:
            try:
                loop.register_system(system)
            except (UnknownSystem, ValueError):
                continue  # a study of a system not installed here (or stored under a path): nothing to train
        if not loop.names:
            console.print("no study in the knowledge base is of a system with a learned model (kv, kernel)", highlight=False)
            return
        table = Table(title=f"learning loop over {base.where}")
        for column in ("model", "learns from", "data version", "studies", "rows", "fit"):
            table.add_column(column, overflow="fold")
        for name in loop.names:
            version, studies, rows, fit = loop.version(name), "-", "-", "not fitted (--train)"
            if train:
                try:
                    served = loop.model(name)
                    studies, rows, fit = str(served.studies), str(served.rows), f"{served.fit_seconds:.2f} s"
                except NoTrainingData as exc:
                    fit = str(exc)
            table.add_row(name, ", ".join(loop.systems_of(name)), version, studies, rows, fit)
        console.print(table)


@app.command()
def add(
    directories: list[Path] = typer.Argument(..., help="Study directories to add (a study already there is updated)."),
    storage: Optional[str] = typer.Option(None, "--storage", help="The studies live in PostgreSQL: postgresql://USER@HOST/DB [default: DIR/study.sqlite]."),
    kb: Optional[str] = typer.Option(None, "--kb", help=KB_HELP),
) -> None:
    """Add finished studies by hand (tune adds its own); the host recorded is this one."""
    from autosys.learn.host import host_fingerprint
    from autosys.run.study import open_study
    from autosys.storage import StorageError

    entries = []
    for directory in directories:
        try:
            study_storage, spec = open_study(directory, storage)
            try:
                trials = study_storage.trials()
            finally:
                study_storage.close()
        except StorageError as exc:
            _fail(str(exc))
            return
        host = host_fingerprint(directory if directory.is_dir() else None).to_json()
        origin = f"{redact_text(storage)}#{directory.name}" if storage else str(directory.resolve())
        entries.append(entry_from_study(spec, trials, host=host, name=directory.name, origin=origin))
    base = _open(kb, create=True)
    assert base is not None
    with base:
        for directory, entry in zip(directories, entries):
            try:
                study_id, replaced = base.add(entry)
            except KnowledgeBaseError as exc:
                _fail(str(exc))
                return
            console.print(f"{'updated' if replaced else 'added'} study {study_id}: {entry.system} {directory} "
                          f"({entry.n_trials} trials) in {base.where}", highlight=False)


@app.command()
def forget(
    study_ids: list[int] = typer.Argument(..., help="Ids of studies to remove (see `autosys kb list`)."),
    kb: Optional[str] = typer.Option(None, "--kb", help=KB_HELP),
) -> None:
    """Remove studies from the knowledge base (their study directories are left alone)."""
    base = _open(kb, create=False)
    if base is None:
        _fail(f"the knowledge base {kb or default_location()} is empty")
        return
    missing = []
    with base:
        for study_id in study_ids:
            try:
                gone = base.forget(study_id)
            except KnowledgeBaseError as exc:
                _fail(str(exc))
                return
            if gone:
                console.print(f"forgot study {study_id}", highlight=False)
            else:
                missing.append(study_id)
    if missing:
        _fail(f"no study {', '.join(map(str, missing))} in the knowledge base {base.where}")


# ----------------------------------------------------------------------------- what `autosys tune` does with it


class TuneKnowledge:
    """A `tune` run's use of the knowledge base: warm start once the default is measured, add at the end.

    mode: "auto" (the nearest past study of the same system, when one
    matches), "none", or a study directory (as `analysis.workload_mapping`
    warm-starts from it). A resumed study keeps its own history: no warm start.
    Knowledge-base trouble never fails a tune: it is one warning line.
    """

    #: past studies a warm start draws on (experiments/transfer.py: two reached 95% of cold search's
    #: best within 3 trials on more systems than one: learned-index and PostgreSQL too)
    WARM_STUDIES = 2

    def __init__(self, mode: str = "auto", location: str | None = None, *, resumed: bool = False,
                 console: Console | None = None):
        self.location = location or default_location()
        self.console = console or err
        self.report: dict[str, Any] | None = None
        text = (mode or "auto").strip()
        self.record = None
        if text.lower() in ("auto", "none"):
            self.mode = text.lower()
        else:
            directory = Path(text).expanduser()
            if not directory.is_dir():
                raise ValueError(f"--warm-start takes auto, none or a study directory, not {text!r}")
            if resumed:
                raise ValueError("--warm-start DIR seeds a new study; --resume continues one as it was created")
            from autosys.analysis.workload_mapping import load_record

            try:
                self.record = load_record(directory)
            except Exception as exc:  # noqa: BLE001 - any unreadable study is one line
                raise ValueError(f"--warm-start {text}: not a readable study ({exc})") from None
            self.mode = "dir"
        if self.mode == "auto" and is_off(self.location):
            self.mode = "none"
        self.pending = not resumed and self.mode != "none"
        self.warm: Any = None  # the auto mode's KnowledgeWarmStart, once the default is measured

    # --- warm start
    def on_trial(self, study: Any, trial: Trial) -> None:
        """The study's callback, told every finished trial: seed the tuner once the default is measured.

        In auto mode every trial goes on to a `KnowledgeWarmStart`, which tells the past
        studies' results once the seeded configs are measured here too (corrected by all
        those pairs, as `experiments/transfer.py` measured it), drawing on the
        `WARM_STUDIES` nearest past studies.
        """
        if self.mode == "auto":
            self._forward(study, trial)
            return
        if not self.pending or trial.source != "default":
            return
        self.pending = False
        from autosys.analysis.kb_warm_start import seed_from_record

        result = seed_from_record(study, self.record, trial, f"study {self.record.directory}")
        if result.done:
            self.report = result.to_json()
        self._say(result.line())

    def _forward(self, study: Any, trial: Trial) -> None:
        if self.warm is None:
            if not self.pending or trial.source != "default":
                return
            from autosys.analysis.kb_warm_start import KnowledgeWarmStart

            self.pending = False
            self.warm = KnowledgeWarmStart(self.location, studies=self.WARM_STUDIES, done=self._started)
        try:
            self.warm(study, trial)
        except KnowledgeBaseError as exc:
            self._warn(f"no warm start: {exc}")
            self.warm = None

    def _started(self, result: Any) -> None:
        self._say(result.line())

    def _final_report(self) -> None:
        result = self.warm.result if self.warm is not None else None
        if result is not None and result.done:
            self.report = result.to_json()

    # --- adding the finished study
    def finish(self, study: Any, storage: str | None = None) -> None:
        """Record what the warm start did, and add the finished study to the knowledge base (unless it is off)."""
        self._final_report()
        if is_off(self.location):
            return
        directory = Path(study.directory) if study.directory is not None else None
        origin = f"{redact_text(storage)}#{directory.name}" if storage and directory is not None else None
        try:
            study_id, replaced, where = add_study(study, self.location, origin=origin)
        except KnowledgeBaseError as exc:
            self._warn(f"the study was not added to the knowledge base: {exc}")
            return
        self._say(f"knowledge base: {'updated' if replaced else 'added'} study {study_id} ({len(study.trials())} trials) in {where}")

    def _say(self, text: str) -> None:
        self.console.print(redact_text(text), highlight=False, markup=False)

    def _warn(self, text: str) -> None:
        self.console.print(f"warning: {redact_text(text)}", highlight=False, markup=False)


"""`autosys recommend kv --workload FILE`: an engine and knobs for a workload, with no trial runs.

Mounted by the core CLI through the `autosys.commands` entry point
`recommend = "autosys_adapters.kv.cli:recommend_app"`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

recommend_app = typer.Typer(help="Recommend a configuration from learned models, without running trials.", no_args_is_help=True)

#: written by experiments/kv_select.py (or experiments/kv_training_data.py) in the repository
DEFAULT_TRAINING = Path(__file__).resolve().parents[2] / "experiments" / "results" / "kv_select_training.csv"


@recommend_app.callback()
def _group() -> None:
    """Recommend a configuration from learned models, without running trials."""


@recommend_app.command("kv")
def kv(
    workload: str = typer.Option(..., "--workload", help="A workload preset name or a JSON/TOML workload file."),
    training: List[str] = typer.Option(
        [], "--training", help="Training CSV, a directory of stored kv studies, or `kb`: the learning loop's model over "
        f"the knowledge base's kv studies (repeatable) [default: kb when it holds kv studies, else {DEFAULT_TRAINING}]."
    ),
    kb: Optional[str] = typer.Option(None, "--kb", help="The knowledge base for `--training kb` [default: AUTOSYS_KB, "
                                     "else ~/.local/share/autosys/knowledge.db]."),
    memory_cap_mb: float = typer.Option(0.0, "--memory-cap-mb", help="Memory cap in MB (0 = the workload's own or none)."),
    disk_cap_mb: float = typer.Option(0.0, "--disk-cap-mb", help="Disk cap in MB (0 = the workload's own or none)."),
    top: int = typer.Option(3, "--top", help="How many configs to list."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the recommendations as JSON here [default: none]."),
    seed: int = typer.Option(0, "--seed", help="Seeds the workload stream and the candidate sampling."),
) -> None:
    """Recommend an engine and its knobs for WORKLOAD from its features alone."""
    from autosys_adapters.kv.recommender import fit_from
    from autosys_adapters.kv.system import KVSelect

    try:
        system = KVSelect(workload=workload, memory_cap_mb=memory_cap_mb, disk_cap_mb=disk_cap_mb, seed=seed)
        if list(training) in ([], ["kb"]):
            model = _from_knowledge_base(kb, required=bool(training))
            if model is None:
                training = [str(DEFAULT_TRAINING)]
        if training and list(training) != ["kb"]:
            if "kb" in training:
                raise ValueError("--training kb cannot be combined with files or directories")
            sources = [Path(t) for t in training]
            for path in sources:
                if not path.exists():
                    raise ValueError(
                        f"no training data at {path}: run experiments/kv_training_data.py (or experiments/kv_select.py) first,"
                        " or pass --training"
                    )
            model = fit_from(sources, random_state=seed)
            typer.echo(f"trained on {', '.join(map(str, sources))}")
        recs = model.recommend(system.kv_workload, system.space(), k=top, seed=seed)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    w = system.kv_workload
    caps = [f"{name} {cap:g} MB" for name, cap in (("memory", w.memory_cap_mb), ("disk", w.disk_cap_mb)) if cap]
    typer.echo(f"workload {w.name}: {dict(w.base.mix)}, {w.base.records} records, {w.base.value_size} B values, "
               f"caps: {', '.join(caps) or 'none'}")
    if system.missing_engines:
        typer.echo("left out: " + "; ".join(f"{k} ({v})" for k, v in system.missing_engines.items()))
    for i, rec in enumerate(recs, 1):
        p = rec["predicted"]
        flag = "" if rec["feasible"] else "  (predicted over a cap: nothing predicted feasible)"
        typer.echo(
            f"{i}. predicted {p['throughput']:,.0f} ops/s, memory {p['memory_bytes'] / 2**20:.1f} MB, "
            f"disk {p['disk_bytes'] / 2**20:.1f} MB{flag}\n   {json.dumps(rec['config'])}"
        )
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"workload": w.to_json(), "recommendations": recs}, indent=2))


def _from_knowledge_base(location: Optional[str], required: bool):
    """The learning loop's KV recommender over the knowledge base, or None (not `required`: none there, fall back)."""
    from autosys.learn.knowledge import KnowledgeBaseError, default_location, is_off, open_knowledge_base
    from autosys.learn.loop import LearningLoop, NoTrainingData
    from autosys_adapters.kv.recommender import KVRecommenderLearner

    where = location or default_location()
    if is_off(where) or ("://" not in where and not Path(where).expanduser().exists()):
        if required:
            raise ValueError(f"no knowledge base at {where}: kv studies add themselves there when `autosys tune kv` finishes")
        return None
    try:
        with open_knowledge_base(where, create=False) as base:
            served = LearningLoop(base, [KVRecommenderLearner()]).model("kv-recommender")
    except (KnowledgeBaseError, NoTrainingData) as exc:
        if required:
            raise ValueError(str(exc)) from None
        return None
    typer.echo(f"model kv-recommender version {served.version}: learned from {served.studies} kv studies "
               f"({served.rows} trials) in the knowledge base {where}")
    return served.model


__all__ = ["recommend_app"]

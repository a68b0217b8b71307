"""`autosys importance DIR`: rank a study's knobs and write a bar plot.

Adapter-independent: it reads only the study's storage. Mounted as a typer
app through the `autosys.commands` entry-point group:

    [project.entry-points."autosys.commands"]
    importance = "autosys.cli.importance:app"
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    add_completion=False,
    invoke_without_command=True,
    context_settings={"allow_interspersed_args": True},
    help="Rank a study's knobs by importance.",
)
console = Console()
err = Console(stderr=True)


@app.callback(invoke_without_command=True)
def importance(
    directory: Path = typer.Argument(..., help="A study directory."),
    method: str = typer.Option("both", "--method", help="lasso, forest or both."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Bar plot path [default: DIR/importance.png]."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Also write the ranking as CSV here [default: none]."),
    top: int = typer.Option(0, "--top", help="Show only the top N knobs (0: all)."),
    seed: int = typer.Option(0, "--seed", help="Seeds the forest."),
) -> None:
    """Print the knob ranking of the study in DIRECTORY and write its bar plot."""
    from autosys.analysis.importance import knob_importance, plot_importance
    from autosys.storage import StorageError

    try:
        ranking = knob_importance(directory, method=method, seed=seed)
    except (StorageError, ValueError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2)
    shown = ranking.head(top) if top > 0 else ranking
    table = Table(title=f"knob importance ({method}) - {directory}")
    for column in shown.columns:
        table.add_column(str(column))
    for row in shown.itertuples(index=False):
        table.add_row(*[f"{v:.3g}" if isinstance(v, float) else str(v) for v in row])
    console.print(table)
    out = plot_importance(shown, plot or Path(directory) / "importance.png", title=f"knob importance: {Path(directory).name}")
    console.print(f"plot: {out}", highlight=False)
    if csv is not None:
        ranking.to_csv(csv, index=False)
        console.print(f"csv: {csv}", highlight=False)


def main() -> None:  # `python -m autosys.cli.importance DIR`
    app()


if __name__ == "__main__":
    main()

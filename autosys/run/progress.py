"""One log line per finished trial, so a study run without a terminal can be followed as it goes.

The study calls `log_trial` as each trial ends; it logs on the logger
"autosys.study" at INFO. As a library autosys stays quiet (the "autosys"
logger has only a NullHandler): the line shows only where someone configured
logging, as the CLI does when its stderr is not a terminal:

    14:02:11 trial 3 complete: throughput 12,346 ops/s (higher is better); best 13,020 ops/s (trial 1); 4 of 12 done

`trial_line` builds the same text for anything else that follows a study
(`autosys show DIR --watch`).
"""

from __future__ import annotations

import logging
from typing import Any

from autosys.core.spec import redact_text
from autosys.core.system import Objective
from autosys.core.trial import Trial, TrialState
from autosys.core.units import better_text, format_quantity


logger = logging.getLogger("autosys.study")

#: sources of trials no tuner proposed, named in the line
_NAMED_SOURCES = ("default", "intensify", "confirm", "start")
#: an error longer than this is cut in the one-line form
MAX_ERROR = 200


def trial_line(trial: Trial, objective: Objective, best: Trial | None = None, done: int | None = None,
               total: int | None = None) -> str:
    """One line for one finished trial: number, state, value with its unit, best so far, progress."""
    source = f" ({trial.source})" if trial.source in _NAMED_SOURCES else ""
    unit = objective.unit_of()
    head = f"trial {trial.number}{source} {trial.state.value}"
    if trial.state == TrialState.COMPLETE and trial.value is not None:
        text = f"{head}: {objective.metric} {format_quantity(trial.value, unit)} ({better_text(objective.direction)})"
        if trial.infeasible:
            text += f", infeasible: {_short(str(trial.info.get('infeasible')))}"
    elif trial.state == TrialState.PRUNED and trial.value is not None:
        step = (trial.info.get("intermediate") or [{}])[-1]
        at = f" at fidelity {step['fidelity']:g}" if "fidelity" in step else ""
        text = f"{head}{at}: {objective.metric} {format_quantity(trial.value, unit)} (partial)"
    else:
        reason = trial.error or trial.info.get("infeasible")
        text = f"{head}: {_short(str(reason))}" if reason else head
    if best is not None and best.value is not None:
        text += f"; best {format_quantity(best.value, unit)} (trial {best.number})"
    else:
        text += "; no successful trial yet"
    if done is not None:
        text += f"; {done:,} of {total:,} done" if total else f"; {done:,} done"
    return text


def log_trial(study: Any, trial: Trial) -> None:
    """Log one line for a trial that just finished (logger "autosys.study", INFO); never raises.

    Costs nothing unless INFO is enabled for the logger: the best so far is
    computed from storage only when the line will be written.
    """
    if not logger.isEnabledFor(logging.INFO):
        return
    try:
        line = trial_line(trial, study.objective, study.best, study.n_finished(), study.budget.trials)
    except Exception:  # a log line must never stop a study
        logger.debug("cannot describe trial %s", trial.number, exc_info=True)
        return
    logger.info("%s", line)


def _short(text: str) -> str:
    """The error's first line, without secrets, cut to MAX_ERROR characters."""
    first = redact_text(text).strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= MAX_ERROR else first[: MAX_ERROR - 3] + "..."


__all__ = ["log_trial", "logger", "trial_line"]

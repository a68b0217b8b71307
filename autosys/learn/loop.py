"""One training and inference loop: models trained from the knowledge base, versioned, served to every consumer.

A `Learner` says how one model learns from a system's finished studies: which
systems' studies it reads (`systems`), the training rows one stored study
gives (`rows`), and how rows become a fitted model (`fit`). Systems name
their learners (`System.learners()`: the KV recommender for `kv`, the kernel
cost model for `kernel`), so the loop needs no adapter code of its own.

`LearningLoop(kb).model(name)` serves a learner's model. Its *version* is a
hash of what it was trained on (each study's uid and trial count, in order),
so a model is retrained exactly when a study of its systems has landed in
(or left) the knowledge base since, and two processes reading the same base
serve the same version. Models live in memory only: nothing is unpickled from
stored data, and retraining from the base is the way a model comes back.
The loop's consumers: the KV recommender (`autosys kv recommend --training kb`),
the kernel cost model behind the kernel system's `predictor()`
(`KernelSchedule.use_cost_model`), and whatever else asks by name.
"""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from autosys.learn.knowledge import KnowledgeBase, StoredStudy


class Learner(ABC):
    """How one model learns from stored studies: `systems` read, `rows` per study, `fit` on all rows."""

    #: the model's name, unique in a loop (e.g. "kv-recommender")
    name: str = ""
    #: the system names (as studies store them) whose studies it learns from
    systems: tuple[str, ...] = ()

    @abstractmethod
    def rows(self, study: StoredStudy) -> list[Any]:
        """Training examples from one stored study (its trials filled in); [] when it has none to give."""

    @abstractmethod
    def fit(self, rows: list[Any]) -> Any:
        """A fitted model from the rows of every study the loop read (never empty)."""


@dataclass(frozen=True)
class ServedModel:
    """A fitted model and what it was trained on."""

    name: str
    version: str
    model: Any
    studies: int  # studies that gave rows
    rows: int
    trained_at: float
    fit_seconds: float


class NoTrainingData(LookupError):
    """The knowledge base holds no study a learner can learn from (the message says which systems)."""


class LearningLoop:
    """Serves each registered learner's model, retrained when its training data in the knowledge base changes."""

    def __init__(self, kb: KnowledgeBase, learners: Iterable[Learner] = ()):
        self.kb = kb
        self._learners: dict[str, Learner] = {}
        self._served: dict[str, ServedModel] = {}
        self.trainings = 0  # how many times a model was fitted (a test and `autosys kb models` read it)
        for learner in learners:
            self.register(learner)

    def register(self, learner: Learner) -> None:
        if not learner.name or not learner.systems:
            raise ValueError(f"learner {type(learner).__name__} needs a name and the systems it learns from")
        if learner.name in self._learners and type(self._learners[learner.name]) is not type(learner):
            raise ValueError(f"two learners are named {learner.name!r}")
        self._learners[learner.name] = learner

    def register_system(self, system: str, factory: Callable[[], Sequence[Learner]] | None = None) -> list[str]:
        """Register the learners a system class names (`System.learners()`); their names."""
        if factory is None:
            from autosys.core.registry import system_factory

            factory = getattr(system_factory(system), "learners", lambda: ())
        names = []
        for learner in factory():
            self.register(learner)
            names.append(learner.name)
        return names

    @property
    def names(self) -> list[str]:
        return sorted(self._learners)

    def systems_of(self, name: str) -> tuple[str, ...]:
        """The system names a learner reads studies of."""
        return tuple(self._learner(name).systems)

    def _studies(self, learner: Learner, exclude: Sequence[str]) -> list[StoredStudy]:
        out = []
        for system in learner.systems:
            out += [s for s in self.kb.studies(system) if s.uid not in exclude]
        return sorted(out, key=lambda s: (s.added_at, s.uid))

    def version(self, name: str, exclude: Sequence[str] = ()) -> str:
        """The version the model would have now: a hash of its studies' uids and trial counts."""
        learner = self._learner(name)
        return _version(self._studies(learner, exclude))

    def model(self, name: str, *, exclude: Sequence[str] = ()) -> ServedModel:
        """The learner's model for the knowledge base as it is now (retrained if its data changed).

        exclude: study uids to leave out (a leave-one-out evaluation, or the
        study being tuned). `NoTrainingData` when no study gives rows.
        """
        learner = self._learner(name)
        studies = self._studies(learner, exclude)
        version = _version(studies)
        key = f"{name}|{','.join(sorted(exclude))}"
        served = self._served.get(key)
        if served is not None and served.version == version:
            return served
        rows: list[Any] = []
        used = 0
        for summary in studies:
            study = self.kb.get(summary.id) if summary.id is not None else summary
            if study is None:
                continue
            got = learner.rows(study)
            used += bool(got)
            rows += got
        if not rows:
            raise NoTrainingData(f"the knowledge base holds no study of {', '.join(learner.systems)} that "
                                 f"{name} can learn from; run a study of it (it adds itself) or `autosys kb add`")
        start = time.perf_counter()
        fitted = learner.fit(rows)
        self.trainings += 1
        served = ServedModel(name, version, fitted, used, len(rows), time.time(), time.perf_counter() - start)
        self._served[key] = served
        return served

    def status(self) -> list[dict[str, Any]]:
        """Each learner: its current data version, and the version served (None: not trained in this loop yet)."""
        out = []
        for name in self.names:
            served = self._served.get(f"{name}|")
            out.append({"name": name, "systems": list(self._learners[name].systems), "version": self.version(name),
                        "served": served.version if served else None, "rows": served.rows if served else None,
                        "studies": served.studies if served else None})
        return out

    def _learner(self, name: str) -> Learner:
        try:
            return self._learners[name]
        except KeyError:
            raise KeyError(f"no learner {name!r} in this loop; known: {', '.join(self.names) or 'none'}") from None


def _version(studies: Sequence[StoredStudy]) -> str:
    text = ";".join(f"{s.uid}:{s.n_trials}" for s in studies)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


__all__ = ["Learner", "LearningLoop", "NoTrainingData", "ServedModel"]

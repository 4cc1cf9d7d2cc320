"""Predictions as registered protocols.

A prediction declares its statement (quoted from the essay), its primary metric and the
direction the essay predicts, its defaults in a ``Config`` dataclass, and two hooks:

* :meth:`Prediction.run` asks the :class:`bench.runner.RunContext` for encoders (the job
  layer trains or loads them) and returns tidy rows; it never trains or writes files itself;
* :meth:`Prediction.figures` and :meth:`Prediction.tables` turn the tidy table alone into the
  report's figures and verdict tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from bench import stats
from bench.registry import Registry

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from bench.runner import RunContext

PREDICTIONS: Registry[type[Prediction]] = Registry("prediction")

SUBJECT = "infomax"


@dataclass(frozen=True)
class PredictionConfig:
    dataset: str = "mnist5k"
    width: int = 64
    methods: tuple[str, ...] = ()  # empty: every registered method the prediction accepts


@dataclass
class Table:
    """A titled table for the report; ``verdict`` tables are the ones verdicts are read from."""

    title: str
    frame: pd.DataFrame
    verdict: bool = False
    note: str = ""


class Prediction:
    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    statement: ClassVar[str] = ""  # the essay's words
    protocol: ClassVar[str] = ""  # the protocol in brief, for the report
    primary_metric: ClassVar[str] = ""
    direction: ClassVar[str] = "higher"  # what the essay predicts for subject - baseline
    Config: ClassVar[type] = PredictionConfig
    exclude_methods: ClassVar[tuple[str, ...]] = ()
    verdict_by: ClassVar[tuple[str, ...]] = ("dataset",)  # columns that split verdict groups

    def __init__(self, cfg: Any):
        self.cfg = cfg

    @classmethod
    def describe(cls) -> str:
        return cls.title or (cls.__doc__ or "").strip().splitlines()[0]

    def default_methods(self, available: list[str]) -> list[str]:
        return [m for m in available if m not in self.exclude_methods]

    def check(self, ctx: RunContext) -> None:
        """Reject a run this protocol cannot do (raise ConfigError) before anything is trained."""

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        raise NotImplementedError

    # -- report hooks: read the tidy table only -------------------------------------------
    def tables(self, df: pd.DataFrame) -> list[Table]:
        """Verdict table of the primary metric: the subject against every other method."""
        v = stats.verdict_from_tidy(df, self.primary_metric, SUBJECT, self.direction, by=self.verdict_by)
        return [Table(f"Primary: {self.primary_metric}, predicted subject {self.direction}", v, verdict=True)]

    def figures(self, df: pd.DataFrame) -> list[tuple[str, Figure]]:
        return []

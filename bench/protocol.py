"""The prediction contract: a protocol that measures and a view that presents, apart.

A prediction is two registered classes, each in its own file under ``predictions/<name>/``:

* :class:`Prediction` (``protocol.py``, registered in :data:`PREDICTIONS`): its ``Config`` (a
  frozen dataclass whose ``check()`` raises ``ValueError("field: what is wrong")``), the data it
  ``needs`` (``labels``, ``factors``; the runner checks them once, with a clear error), and
  ``run(src) -> rows``. ``src`` is an :class:`EncoderSource`: datasets, encoders, seeds, the
  device, and a sink for matrix-valued results. A protocol never sees the command line, the
  cache, threads or progress bars, never trains by hand and never writes a file.
  Its per-encoder work is a *measurement*: a method ``measure_x(enc, src, *args) -> rows`` that
  reads one encoder (and datasets through ``src.dataset``), asked for with
  ``src.measure(self.measure_x, *args, methods=..., dataset=...)``. The runner runs it where the
  encoder is (in the pool worker that trained it) and caches its rows (:mod:`bench.engine.measure`);
  ``run`` keeps what needs several encoders (summaries over seeds or pairs). A measurement must
  depend only on the encoder, its arguments, the config and the datasets.
* :class:`View` (``view.py``, registered in :data:`VIEWS` under the same name): the essay's
  statement and the protocol in brief, each in one place; its verdicts declared as data
  (:class:`Verdict`; the first is the primary); tables and figures. It reads only the tidy table
  (and the matrices table); the report imports views, never protocols.

Rows are plain dicts built with :func:`row`: ``dataset, method, width, seed, metric, value``,
the prediction's condition columns, and the encoder's parameter counts and training time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import pandas as pd

from bench.evaluate.families import ABLATIONS, FAMILIES, REFERENCES, family  # noqa: F401 (re-exported)
from bench.evaluate.verdicts import verdict_from_tidy
from bench.registry import Registry

if TYPE_CHECKING:
    import numpy as np
    import torch
    from matplotlib.figure import Figure

    from bench.data import Dataset
    from bench.engine.jobs import JobSpec
    from bench.train.methods import Method

SUBJECT = "infomax"
PROFILES = ("quick", "full", "confirm")
EXPLORATORY = ("quick", "full")  # no verdicts: n, mean d, interval, d_z and direction only
NEEDS = ("labels", "factors")  # what a prediction may require of its dataset


@dataclass(frozen=True)
class PredictionConfig:
    """Options every prediction shares; subclasses add theirs and extend :meth:`check`."""

    dataset: str = "mnist5k"
    width: int = 64
    methods: tuple[str, ...] = ()  # empty: every registered method the prediction accepts

    def check(self) -> None:
        """Range checks; raise ``ValueError("field: what is wrong")``. Extend with super()."""
        if self.width < 1:
            raise ValueError(f"width: must be >= 1, got {self.width}")


class EncoderSource(Protocol):
    """What a protocol may use; the runner implements it (cache, threads and bars stay there)."""

    device: torch.device
    seeds: list[int]
    methods: list[str]  # the run's methods: what ``encoders()`` serves by default
    profile: str  # "quick" | "full" | "confirm": a prediction may scale its sweep with it (P3's widths)
    batch_size: int  # the run's batch size: a budget in optimisation steps converts to epochs with it

    def dataset(self, name: str | None = None, data: dict[str, Any] | None = None, seed: int | None = None) -> Dataset:
        """The run's dataset (or another by name, e.g. a class subset ``mnist5k[0-4]``), on the
        run's device; ``data`` overrides the run's DataConfig fields (``{"mixing": "nonlinear"}``);
        ``seed``: the split of that job seed (in ``confirm`` each seed has its own split)."""

    def encoders(
        self,
        methods: Iterable[str] | None = None,
        widths: Iterable[int] | None = None,
        seeds: Iterable[int] | None = None,
        dataset: str | None = None,
        data: dict[str, Any] | None = None,
        method_cfg: dict[str, Any] | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
    ) -> Iterator[Encoder]:
        """Train or load every (method, width, seed) job on ``dataset`` (default: the run's);
        ``method_cfg`` overrides fields of the methods' configs for this request (P3's CNN widths), ``epochs``
        the budget (default: the dataset's for the profile; a question's equal-steps budget), ``batch_size``
        the minibatch (default: the run's; a question's B = 2K sensitivity);
        yield the ones that succeeded (failed and skipped jobs become status rows without the
        protocol's help). Encoders come from the shared cache: the same job is trained once."""

    def measure(
        self,
        fn: Callable[..., list[dict[str, Any]]],
        *args: Any,
        methods: Iterable[str] | None = None,
        widths: Iterable[int] | None = None,
        seeds: Iterable[int] | None = None,
        dataset: str | None = None,
        data: dict[str, Any] | None = None,
        method_cfg: dict[str, Any] | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Like :meth:`encoders`, but yields, per successful job, the rows of the measurement
        ``fn(enc, src, *args)`` (a method of the prediction; ``src`` there offers ``device``,
        ``dataset(name, data)`` and ``matrix``). Run in the pool when there is one; cached."""

    def matrix(self, enc: Encoder, name: str, values: np.ndarray) -> None:
        """Record a matrix-valued result (e.g. a K x K correlation matrix) in the matrices table."""


@dataclass
class Encoder:
    """A trained (or loaded) encoder and what its training recorded."""

    spec: JobSpec
    method: Method | None
    status: str  # "ok" | "failed"
    reason: str = ""
    train_seconds: float = 0.0
    cached: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Deployed features of ``x`` (N, D) -> (N, K), in eval mode, on x's device."""
        assert self.method is not None, f"job {self.spec.key} failed: {self.reason}"
        return self.method.encode_all(x)


def row(enc: Encoder, metric: str, value: float, **conditions: Any) -> dict[str, Any]:
    """One tidy row for ``enc``; ``conditions`` are the prediction's condition columns."""
    s = enc.spec
    diag = enc.meta.get("diagnostics", {})
    return {
        "dataset": s.dataset,
        "method": s.method,
        "width": s.width,
        "seed": s.seed,
        "metric": metric,
        "value": float(value),
        **conditions,
        "n_params_encoder": diag.get("n_params_encoder"),
        "n_params_train": diag.get("n_params_train"),
        "train_seconds": enc.train_seconds,
        "under_trained": enc.meta.get("under_trained"),
    }


def data_tag(data: dict[str, Any]) -> str:
    """``{"mixing": "nonlinear"}`` -> ``"mixing=nonlinear"``: the ``data`` column of rows measured
    under DataConfig overrides, so a view can tell ``ica`` linear from nonlinear status rows."""
    return ",".join(f"{k}={v}" for k, v in sorted(data.items()))


class Prediction:
    """The protocol side of a prediction (see the module docstring)."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[PredictionConfig]] = PredictionConfig
    needs: ClassVar[frozenset[str]] = frozenset({"labels"})
    exclude_methods: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: PredictionConfig):
        self.cfg = cfg

    @classmethod
    def describe(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0]

    def default_methods(self, available: list[str], profile: str = "quick") -> list[str]:
        return [m for m in available if m not in self.exclude_methods]

    def check_profile(self, profile: str) -> None:
        """Checks that depend on the profile, run before anything trains; raise
        ``ValueError("field: what is wrong")`` (e.g. ``confirm`` refusing a subset of the primary)."""

    def run(self, src: EncoderSource) -> list[dict[str, Any]]:
        raise NotImplementedError


ROLES = ("overall", "primary", "co-primary", "secondary")
"""What a verdict table is (consumers read ``Table.role`` / ``Verdict.role``, never a title). ``overall``: the
per-member table of a prediction with two primaries (made by :meth:`View.verdict_tables`, never declared);
``co-primary``: a second primary the prediction names so (P2's step-matched gap), judged as a primary."""
PRIMARY_ROLES = ("primary", "co-primary")  # the tables the headline and the summary read
ROLE_LABELS = {
    "overall": "Overall per member",
    "primary": "Primary",
    "co-primary": "Co-primary",
    "secondary": "Secondary",
}


@dataclass(frozen=True)
class Verdict:
    """A verdict declared as data: the subject against every baseline on ``metric`` (rows
    matching ``where``), predicted ``direction`` ("higher" / "lower") for subject - baseline.

    ``role`` (one of :data:`ROLES` but ``overall``): ``"primary"``, ``"co-primary"`` or ``"secondary"``;
    empty: the first declared verdict is the primary and the rest are secondaries. A prediction with two
    primaries marks both (P4's MCC and DCI: ``"primary"`` twice; P2: ``"primary"`` and its
    ``"co-primary"``): they are judged together (Holm and Westfall-Young over both,
    the two-primaries rule per member). ``margin``: member -> non-inferiority margin added to
    every per-seed d of that member's row (supported = non-inferior within the margin).
    ``na``: member -> why that member's cell is n/a by design (it leaves the headline's
    intersection instead of blocking it)."""

    metric: str
    direction: str
    where: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    note: str = ""  # printed under its table
    role: str = ""
    margin: dict[str, float] = field(default_factory=dict)
    na: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.role not in ("", *ROLES[1:]):
            raise ValueError(f"role: unknown '{self.role}' (choices: {', '.join(ROLES[1:])})")

    @property
    def title(self) -> str:
        return f"{self.label or self.metric}; predicted subject {self.direction}"


@dataclass
class Table:
    """A titled table for the report; ``verdict`` tables are the ones verdicts are read from.

    ``role`` (verdict tables): one of :data:`ROLES`; the title is for the reader only. The first verdict table of a view carries the
    prediction's ``headline`` (word and why) and the family ``counts`` line."""

    title: str
    frame: pd.DataFrame
    verdict: bool = False
    note: str = ""
    role: str = ""
    spec: Verdict | None = None
    headline: tuple[str, str] | None = None
    counts: str = ""

    def __post_init__(self) -> None:
        if self.role not in ("", *ROLES):
            raise ValueError(f"role: unknown '{self.role}' (choices: {', '.join(ROLES)})")

    @property
    def is_primary(self) -> bool:
        """A primary's (or co-primary's) own table: what the headline and the summary read."""
        return self.role in PRIMARY_ROLES


KINDS = ("prediction", "question")  # an essay's prediction (verdicts) or open question (estimates, an answer)


class View:
    """The report side of a prediction: reads the tidy table only (see the module docstring)."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    kind: ClassVar[str] = "prediction"  # one of KINDS
    question: ClassVar[str] = ""  # a question's words, as the essay asks it (kind "question")
    main_figure: ClassVar[str] = ""  # the figure a question's opening page shows (a name from figures())
    in_all: ClassVar[bool] = True  # part of prediction=all and the summary (see in_all())
    order: ClassVar[float] = 100.0  # their order: lower first, then by name
    statement: ClassVar[str] = ""  # the essay's words
    protocol: ClassVar[str] = ""  # the protocol in brief, for the report
    verdicts: ClassVar[tuple[Verdict, ...]] = ()  # the first is the primary unless roles say otherwise
    verdict_by: ClassVar[tuple[str, ...]] = ("dataset",)  # columns that split verdict groups
    pa: ClassVar[tuple[str, ...] | None] = None  # the PA family; None: every method but AB and REF
    profile: str | None = None  # the run's profile, set by the report before tables and figures

    @property
    def exploratory(self) -> bool:
        """No verdicts (profiles quick, full): figures and notes show directions, never verdict words."""
        return self.profile != "confirm"

    @property
    def primary(self) -> Verdict:
        return self.primaries[0]

    @property
    def primaries(self) -> tuple[Verdict, ...]:
        """The declared primaries: those with a role in :data:`PRIMARY_ROLES`, else the first verdict."""
        marked = tuple(v for v in self.verdicts if v.role in PRIMARY_ROLES)
        return marked or self.verdicts[:1]

    @property
    def secondaries(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if not any(v is p for p in self.primaries))

    def verdict_frame(self, df: pd.DataFrame, v: Verdict) -> pd.DataFrame:
        """The unjudged rows of one declared verdict (``bench.evaluate.verdicts.verdict_from_tidy``); views
        may override it or add columns, never decide verdicts (:meth:`verdict_tables` does)."""
        return verdict_from_tidy(
            df,
            v.metric,
            SUBJECT,
            v.direction,
            by=self.verdict_by,
            extra_filter=v.where,
            margin=v.margin,
            na=v.na,
            judged=False,
        )

    def present(self, df: pd.DataFrame, v: Verdict) -> bool:
        """Whether the table has rows for ``v`` (secondaries without rows get no table)."""
        sel = df[df["metric"] == v.metric]
        for col, value in v.where.items():
            if col not in sel.columns:
                return False
            sel = sel[sel[col].eq(value).fillna(False).astype(bool)]
        return len(sel) > 0

    def verdict_tables(self, df: pd.DataFrame, secondaries: bool = True) -> list[Table]:
        """The judged verdict tables: with two primaries an overall per-member table first, then each
        primary (families judged together across them), then each secondary whose rows exist (each
        judged on its own). The first table carries the headline and the family counts."""
        from bench.evaluate import families

        prims = [v for i, v in enumerate(self.primaries) if i == 0 or self.present(df, v)]
        frames = families.judge([self.verdict_frame(df, v) for v in prims], [v.direction for v in prims], self.pa)
        roles = [v.role or "primary" for v in prims]
        tables = [
            Table(f"{ROLE_LABELS[r]}: {v.title}", f, verdict=True, note=v.note, role=r, spec=v)
            for v, r, f in zip(prims, roles, frames, strict=True)
        ]
        combined = None
        if len(prims) > 1:
            short = [v.metric for v in prims]  # the metric names: the table's column headers stay short
            combined = families.combine(frames, short if len(set(short)) == len(short) else [v.label for v in prims])
            tables.insert(
                0,
                Table(
                    f"{ROLE_LABELS['overall']}, both primaries together (the two-primaries rule)",
                    combined,
                    verdict=True,
                    role="overall",
                    note=""
                    if self.exploratory
                    else "A member reads supported only if supported on "
                    "every primary that applies to it, contradicted if contradicted on either.",
                ),
            )
        tables[0].headline = families.headline(frames, [v.direction for v in prims])
        tables[0].counts = families.counts(frames, combined)
        for v in self.secondaries if secondaries else ():
            if self.present(df, v):
                (f,) = families.judge([self.verdict_frame(df, v)], [v.direction], self.pa)
                tables.append(
                    Table(
                        f"{ROLE_LABELS['secondary']}: {v.title}", f, verdict=True, note=v.note, role="secondary", spec=v
                    )
                )
        return tables

    def tables(self, df: pd.DataFrame) -> list[Table]:
        return self.verdict_tables(df)

    def figures(self, df: pd.DataFrame, matrices: pd.DataFrame) -> list[tuple[str, Figure]]:
        return []

    def answer(self, df: pd.DataFrame) -> str:  # a question's one sentence from the table ("undetermined: why")
        return "undetermined: this view computes no answer"


PREDICTIONS: Registry[type[Prediction]] = Registry("prediction")
VIEWS: Registry[type[View]] = Registry("view")


def _ordered(keep: Callable[[type[View]], bool]) -> tuple[str, ...]:
    from bench.catalog import load_views

    load_views()
    return tuple(v.name for v in sorted(filter(keep, map(VIEWS.get, VIEWS.names())), key=lambda v: (v.order, v.name)))


def in_all() -> tuple[str, ...]:
    """The predictions of ``prediction=all`` and of the summary, in order (views that keep ``in_all``)."""
    return _ordered(lambda v: v.in_all and v.kind == "prediction")

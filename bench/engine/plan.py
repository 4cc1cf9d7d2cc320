"""``bench plan``: what a run would train and measure, and what it would cost, without training.

Each prediction's ``run(src)`` is played against a :class:`Recorder` (the ``recorder`` hook of
:class:`bench.engine.context.RunContext`): every ``encoders()`` and ``measure()`` call hands it the jobs
(:class:`bench.engine.jobs.JobSpec`) and measurements (:class:`bench.engine.measure.MeasureTask`) of its
selection and yields nothing. A protocol whose later calls depend on earlier rows would stop early
on that; none does today (the tests compare the enumeration with real runs), and a protocol that
raises on the empty rows is reported as ``incomplete`` with its error instead of being hidden.

Each job and measurement is then looked up in the cache (``JobCache.has``;
:func:`bench.engine.measure.cached` without reading) and priced from a cost table
(:mod:`bench.engine.costs`): a missing job costs its epochs times the table's seconds per seed-epoch;
with ``batch_seeds=true`` the missing seeds of one cell (the same job but for its seed, and in
``confirm`` its split seed) of a batchable method (:func:`bench.train.seedbatch.batchable`) train as one
task costing S seeds times the batched per-seed cost at that S. A missing measurement runs after
its job in the same worker (the pool's rule), so it is added to its job's task; one whose encoder
is cached is a task of its own. The wall time is a greedy longest-first schedule of those tasks
over the run's workers (:func:`greedy_wall`).
"""

from __future__ import annotations

import contextlib
import heapq
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from bench.config import RunConfig
from bench.engine.jobs import JobCache, JobSpec
from bench.engine.measure import MeasureCache, MeasureTask, cached
from bench.registry import UnknownNameError
from bench.train import seedbatch


def batchable(method: str, input_dim: int | None = None) -> bool:
    """Whether the seeds of ``method``'s cells train together (on data of ``input_dim`` inputs)."""
    try:
        return seedbatch.batchable(method, input_dim)
    except UnknownNameError:  # an unknown method trains alone
        return False


class Recorder:
    """What a dry run asked for: unique jobs and measurements, in the order first asked."""

    def __init__(self):
        self.specs: dict[JobSpec, None] = {}
        self.tasks: dict[str, MeasureTask] = {}

    def jobs(self, specs: Iterable[JobSpec]) -> None:
        for s in specs:
            self.specs.setdefault(s, None)

    def measures(self, tasks: Iterable[MeasureTask]) -> None:
        for t in tasks:
            self.tasks.setdefault(t.key, t)
            self.specs.setdefault(t.spec, None)


def size_key(dataset: str, data_cfg) -> str:
    """The key of a training set's size: the dataset, and its ``pretrain_n`` when a job trains on a subset
    (an open question's N axis: the epochs of a 1k-subset job are cheaper than those of the full pool)."""
    n = getattr(data_cfg, "pretrain_n", None)
    return dataset if n is None else f"{dataset}|pretrain_n={n}"


@dataclass
class Enumerated:
    """One prediction's dry run."""

    name: str
    specs: list[JobSpec]
    tasks: list[MeasureTask]
    skipped: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""  # the protocol raised on the empty rows: what it asked for before is listed
    sizes: dict[str, int] = field(default_factory=dict)  # size_key -> training-set size (as loaded)
    dims: dict[str, int] = field(default_factory=dict)  # dataset -> input dimension


def enumerate_prediction(cfg: RunConfig, device, cache: JobCache) -> Enumerated:
    """Play ``cfg.prediction``'s protocol against a recorder (bad input raises ConfigError, as ``bench run``)."""
    from bench.engine.context import RunContext
    from bench.engine.runner import build_prediction, check_needs, resolve_methods

    prediction = build_prediction(cfg)
    engine = SimpleNamespace(cache=cache, parallel=False)  # nothing is submitted, trained or loaded
    ctx = RunContext(cfg, prediction, device, resolve_methods(cfg, prediction), engine)
    check_needs(prediction, ctx.dataset())
    rec = Recorder()
    ctx.recorder = rec
    error = ""
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # its "skipping m on d" lines: the header lists them
            for _ in prediction.run(ctx):
                pass
    except Exception as e:  # noqa: BLE001 - a protocol that needs real rows to go on: say so
        from bench.config import ConfigError

        if isinstance(e, ConfigError):
            raise
        error = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:160]}"
    sizes = {size_key(name, dc): int(ds.train.x.shape[0]) for (name, dc), ds in ctx._datasets.items()}
    dims = {name: int(ds.input_dim) for (name, _), ds in ctx._datasets.items()}
    return Enumerated(cfg.prediction, list(rec.specs), list(rec.tasks.values()), ctx.skipped, error, sizes, dims)


# ----------------------------------------------------------------------------- the estimate
@dataclass
class Work:
    """One unit of a worker's time: a training task (one job, or the batched missing seeds of a
    cell) with the missing measurements of its encoders, or one measurement of a cached encoder."""

    specs: list[JobSpec]
    train: float = 0.0
    measure: float = 0.0

    @property
    def seconds(self) -> float:
        return self.train + self.measure


def greedy_wall(costs: Iterable[float], workers: int) -> float:
    """Wall time of a longest-first greedy schedule: each task, longest first, goes to the worker
    that is free first."""
    loads = [0.0] * max(1, int(workers))
    for c in sorted(costs, reverse=True):
        heapq.heappush(loads, heapq.heappop(loads) + c)
    return max(loads)


@dataclass
class Plan:
    enumerated: list[Enumerated]
    specs: list[JobSpec]
    tasks: list[MeasureTask]
    job_cached: dict[JobSpec, bool]
    task_cached: dict[str, bool]
    work: list[Work]
    workers: int
    batch_seeds: bool
    table: Any  # bench.engine.costs.CostTable
    fallbacks: dict[str, int]  # how many cells / measurements were priced by a fallback, by kind
    train_cost: dict[JobSpec, float]  # a missing job's share of its training task
    measure_cost: dict[str, float]  # a missing measurement's seconds

    @property
    def train_seconds(self) -> float:
        return sum(w.train for w in self.work)

    @property
    def measure_seconds(self) -> float:
        return sum(w.measure for w in self.work)

    @property
    def wall_seconds(self) -> float:
        return greedy_wall([w.seconds for w in self.work], self.workers)

    def per_prediction(self) -> dict[str, tuple[float, float]]:
        """(training, measurement) worker-seconds per prediction, each job and measurement counted
        for the first prediction that asks for it (as the runs of ``prediction=all`` record them)."""
        out: dict[str, tuple[float, float]] = {}
        seen_s: set[JobSpec] = set()
        seen_t: set[str] = set()
        for e in self.enumerated:
            tr = sum(self.train_cost.get(s, 0.0) for s in e.specs if s not in seen_s)
            me = sum(self.measure_cost.get(t.key, 0.0) for t in e.tasks if t.key not in seen_t)
            seen_s |= set(e.specs)
            seen_t |= {t.key for t in e.tasks}
            out[e.name] = (tr, me)
        return out


def make_plan(cfgs: dict[str, RunConfig]) -> Plan:
    """Enumerate the predictions of ``cfgs`` (one shared cache, as ``prediction=all``) and price them."""
    from bench.engine import costs
    from bench.engine.executors import resolve_workers
    from bench.engine.runner import setup_device

    first = next(iter(cfgs.values()))
    device = setup_device(first)
    cache = JobCache(first.cache_dir(), device)
    mcache = MeasureCache(cache.root)
    enums = [enumerate_prediction(cfg, device, cache) for cfg in cfgs.values()]
    specs = list(dict.fromkeys(s for e in enums for s in e.specs))
    tasks = list({t.key: t for e in enums for t in e.tasks}.values())
    sizes = {k: v for e in enums for k, v in e.sizes.items()}
    dims = {k: v for e in enums for k, v in e.dims.items()}
    job_cached = {s: cache.has(s) for s in specs}
    task_cached = {t.key: cached(t, cache, mcache, read=False) is not None for t in tasks}
    table = costs.load_table(first.cache_dir(), device)
    fallbacks: dict[str, int] = {}

    groups = seedbatch.cells([s for s in specs if not job_cached[s]], first.batch_seeds, dims.get)
    work, of_spec, train_cost = [], {}, {}
    for members in groups:
        s = members[0]
        per_epoch, how = table.epoch_seconds(s.method, s.dataset, sizes.get(size_key(s.dataset, s.data_cfg)))
        if how != "table":
            fallbacks[f"training {how}"] = fallbacks.get(f"training {how}", 0) + 1
        n = len(members)
        w = Work(members, train=n * s.epochs * per_epoch / table.speedup(s.method, s.dataset, n))
        work.append(w)
        for m in members:
            of_spec[m] = w
            train_cost[m] = w.train / n
    measure_cost = {}
    for t in tasks:
        if task_cached[t.key]:
            continue
        secs, how = table.measure_seconds(t.name, t.spec.method, t.spec.dataset)
        if how != "table":
            fallbacks[f"measurement {how}"] = fallbacks.get(f"measurement {how}", 0) + 1
        measure_cost[t.key] = secs
        if t.spec in of_spec:  # measured in the worker that trains its encoder, right after
            of_spec[t.spec].measure += secs
        else:
            work.append(Work([t.spec], measure=secs))
    workers = resolve_workers(first.workers, device.type)
    return Plan(
        enums,
        specs,
        tasks,
        job_cached,
        task_cached,
        work,
        workers,
        first.batch_seeds,
        table,
        fallbacks,
        train_cost,
        measure_cost,
    )


# ----------------------------------------------------------------------------- output
def duration(seconds: float) -> str:
    """``8,456 s (2 h 21 min)``."""
    m = round(seconds / 60)
    human = f"{m // 60} h {m % 60:02d} min" if m >= 60 else f"{m} min" if m >= 1 else "under a minute"
    return f"{seconds:,.0f} s ({human})"


def estimate_lines(plan: Plan) -> list[str]:
    """The estimate: what ``bench plan`` ends with and ``bench run`` starts with."""
    n_missing = sum(not c for c in plan.job_cached.values())
    n_tasks = sum(1 for w in plan.work if w.train or not w.measure)
    grouped = [w for w in plan.work if len(w.specs) > 1]
    batched = (
        f"; {len(grouped)} of them batched cells of up to {max(len(w.specs) for w in grouped)} seeds" if grouped else ""
    )
    m_missing = sum(not c for c in plan.task_cached.values())
    how = "one process" if plan.workers <= 1 else f"{plan.workers} workers, longest first"
    lines = [
        f"estimate: training {duration(plan.train_seconds)} of worker time ({n_missing} jobs in {n_tasks} "
        f"training tasks{batched}; batch_seeds={str(plan.batch_seeds).lower()}), measurements "
        f"{duration(plan.measure_seconds)} ({m_missing} missing); wall {duration(plan.wall_seconds)} on {how}"
    ]
    src = plan.table.source or "none"
    fb = ", ".join(f"{n} {k}" for k, n in sorted(plan.fallbacks.items()))
    lines.append(
        f"          cost table {src}"
        + (f" ({plan.table.device})" if plan.table.device else "")
        + (f"; priced by a fallback: {fb}" if fb else "")
        + "; the protocols' own time in the main process is not counted"
    )
    for e in plan.enumerated:
        if e.error:
            lines.append(
                f"          incomplete: {e.name}'s protocol stopped on the empty dry run ({e.error}); "
                "what it asks for after that is not counted"
            )
    return lines


def table_lines(plan: Plan) -> list[str]:
    """Counts per method and dataset: jobs and measurements, cached or missing, and the estimate."""
    rows: dict[tuple[str, str], list[float]] = {}
    for s in plan.specs:
        r = rows.setdefault((s.method, s.dataset), [0, 0, 0, 0, 0.0, 0.0])
        r[0 if plan.job_cached[s] else 1] += 1
        r[4] += plan.train_cost.get(s, 0.0)
    for t in plan.tasks:
        r = rows.setdefault((t.spec.method, t.spec.dataset), [0, 0, 0, 0, 0.0, 0.0])
        r[2 if plan.task_cached[t.key] else 3] += 1
        r[5] += plan.measure_cost.get(t.key, 0.0)
    head = ["method", "dataset", "jobs cached", "missing", "measurements cached", "missing", "train s", "measure s"]
    body = [
        [m, d, str(a), str(b), str(c), str(e), f"{tr:,.0f}", f"{me:,.0f}"]
        for (m, d), (a, b, c, e, tr, me) in sorted(rows.items())
    ]
    tot = [sum(r[i] for r in rows.values()) for i in range(6)]
    body.append(["total", "", *(str(int(v)) for v in tot[:4]), f"{tot[4]:,.0f}", f"{tot[5]:,.0f}"])
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]

    def fmt(r: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))

    return [fmt(head).rstrip(), *(fmt(r).rstrip() for r in body)]


def header_lines(plan: Plan, cfgs: dict[str, RunConfig]) -> list[str]:
    first = next(iter(cfgs.values()))
    out = [
        f"bench plan: {', '.join(cfgs)} (profile {first.profile}, seeds {first.resolved_seeds()}), "
        f"cache {first.cache_dir()}"
    ]
    for e in plan.enumerated:
        skipped = sorted({f"{s['method']} on {s['dataset']}" for s in e.skipped})
        out.append(
            f"  {e.name}: {len(e.specs)} jobs, {len(e.tasks)} measurements"
            + (f"; skipped (cannot run on the data): {', '.join(skipped)}" if skipped else "")
        )
    return out


# ----------------------------------------------------------------------------- bench run's lines
def announce(cfgs: dict[str, RunConfig]) -> Plan | None:
    """``bench run``'s first lines: the plan of the run about to start; None (one line why) when it
    cannot be made (the estimate never stops a run: the run reports real errors itself)."""
    from bench.arguments import bad_input_errors

    try:
        made = make_plan(cfgs)
    except Exception as e:  # noqa: BLE001
        if isinstance(e, bad_input_errors()):  # the run would stop on it too: say it once, now
            raise
        print(f"estimate: unavailable ({type(e).__name__}: {(str(e).splitlines() or [''])[0][:160]})", flush=True)
        return None
    print("\n".join(estimate_lines(made)), flush=True)
    return made


def versus(made: Plan | None, name: str, run_dir) -> None:
    """A finished run's estimated against actual worker-seconds (its manifest's timing)."""
    from bench import results

    if made is None:
        return
    t = results.read_run(run_dir)[2].get("timing", {})
    tr, me = made.per_prediction().get(name, (0.0, 0.0))
    pool = t.get("workers", 1) > 1  # a pooled job's recorded wall includes the measurement made after it
    print(
        f"estimate vs actual: training {tr:,.0f} s est / {t.get('train_seconds', 0.0):,.0f} s actual, "
        f"measurements {me:,.0f} s est / {t.get('measure_seconds', 0.0):,.0f} s actual (worker-seconds"
        + ("; the pool's recorded training includes the measurements made right after it)" if pool else ")")
    )


def wall_versus(made: Plan | None, wall: float) -> None:
    if made is not None:
        ratio = f" (actual/estimate {wall / made.wall_seconds:.2f})" if made.wall_seconds > 0 else ""
        print(f"wall: estimated {duration(made.wall_seconds)}, actual {duration(wall)}{ratio}")

"""Prediction 2, transfer, the protocol: "InfoMax features transfer better" (PROTOCOL.md §8 P2).

For every pair of :data:`predictions.transfer.pairs.PAIRS` selected by ``pairs=[...]``: every
method's encoder pretrained on the source's train inputs (``supervised`` on the source's labels),
frozen, is probed on the target with n labelled train examples per class (``budgets``
[1, 5, 10, 50, all], ``draws`` [20, 10, 5, 3, 1] stratified at random, seeded by (seed, pair,
budget, draw), never by method); the in-domain reference is the same method pretrained on the
target's train inputs, probed on the same subsets. All budgets and draws of one encoder on one
target are one batched probe (:func:`predictions.transfer.probing.budget_probe`); L2 chosen on
the full target val split, plus the fixed-L2 sensitivity fit. A pair whose files are absent
under ``data.root`` and a budget a class cannot fill are skipped with their reason. ``dsprites``:
ridge R^2 of ``factors`` at total budgets (only ``supervised``, trained on shape, transfers).

Tidy rows (condition columns ``pair``, ``source``, ``target``, ``reference`` = transfer |
in_domain, ``budget`` = "1" .. "all" or "1,5,10", ``l2_mode`` = val | fixed, ``factor``):
per (pair, reference, budget, l2_mode) ``acc`` and ``kappa`` (means over draws), ``kappa_sd``
(over draws) and ``probe_l2`` (geometric mean of the val-chosen L2s); ``subset_checksum`` per
(pair, reference, budget); ``gap`` = kappa transfer - kappa in-domain per (pair, budget, l2_mode);
per group (``pair`` = embedded | full) ``kappa_transfer_mean``, ``kappa_in_domain_mean`` and
``gap_mean`` over its pairs x budgets (budget "1,5,10": the primary and co-primary; "50", "all");
dSprites ``r2`` per (factor, budget) and ``r2_mean``; ``skipped`` (value 1, with a note);
``probe_seconds``. In-domain rows of a method trained on labels carry the note ``oracle``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.protocol import PREDICTIONS, EncoderSource, Prediction, PredictionConfig, row
from predictions.transfer import pairs as P
from predictions.transfer.probing import budget_probe, ridge_r2

ORACLE = "oracle: the in-domain encoder was trained on the target's labels"


@dataclass(frozen=True)
class TransferConfig(PredictionConfig):
    pairs: tuple[str, ...] = tuple(P.PAIRS)
    budgets: tuple[str, ...] = ("1", "5", "10", "50", "all")  # labelled target examples per class
    draws: tuple[int, ...] = (20, 10, 5, 3, 1)  # per budget
    fixed_l2: float = 1e-2  # the sensitivity row's L2
    factors: tuple[str, ...] = ("pos_x", "pos_y", "scale")  # dSprites regression targets
    factor_budgets: tuple[str, ...] = ("16", "64", "256", "all")  # total labelled examples
    factor_draws: tuple[int, ...] = (10, 5, 3, 1)

    def check(self) -> None:
        super().check()
        bad = [p for p in self.pairs if p not in P.PAIRS]
        if bad or not self.pairs:
            raise ValueError(f"pairs: unknown {bad} (choices: {', '.join(P.PAIRS)})")
        for name, budgets, draws in (("budgets", self.budgets, self.draws),
                                     ("factor_budgets", self.factor_budgets, self.factor_draws)):
            try:
                [P.budget_size(b) for b in budgets]
            except ValueError:
                raise ValueError(f"{name}: need integers >= 1 or 'all', got {list(budgets)}") from None
            if len(draws) != len(budgets) or any(d < 1 for d in draws):
                raise ValueError(f"{name}: need one number of draws >= 1 per budget, got {list(draws)}")
        missing = [b for b in P.PRIMARY_BUDGETS if b not in self.budgets]
        if missing:
            raise ValueError(f"budgets: the primary needs {', '.join(P.PRIMARY_BUDGETS)}; missing {missing}")
        if not self.fixed_l2 > 0:
            raise ValueError(f"fixed_l2: must be > 0, got {self.fixed_l2}")
        if not self.factors:
            raise ValueError("factors: need at least one dSprites factor")


@PREDICTIONS.register()
class Transfer(Prediction):
    """P2: do InfoMax features transfer better? Label-budget probes on new data and unseen classes."""

    name = "transfer"
    Config = TransferConfig
    needs = frozenset({"labels"})

    def run(self, src: EncoderSource) -> list[dict]:
        rows: list[dict] = []
        kappas: dict[tuple, float] = {}  # (pair, reference, method, seed, budget, l2_mode) -> kappa
        feasible: dict[str, list[str]] = {}  # pair -> budgets every class can fill
        ids: dict[tuple[str, int], dict[str, Any]] = {}  # (method, seed) -> its identity columns
        for pid in self.cfg.pairs:
            if P.PAIRS[pid].kind == "classes":
                rows += self._pair(src, pid, kappas, feasible, ids)
        rows += self._summaries(kappas, feasible, ids)
        if "dsprites" in self.cfg.pairs:
            rows += self._dsprites(src)
        return rows

    # ------------------------------------------------------------------------------ one pair
    def _pair(self, src: EncoderSource, pid: str, kappas: dict, feasible: dict, ids: dict) -> list[dict]:
        pair, c = P.PAIRS[pid], self.cfg
        cond = {"pair": pid, "source": pair.source, "target": pair.target}
        try:
            target = src.dataset(pair.target)
            src.dataset(pair.source)
        except (FileNotFoundError, ValueError) as e:  # absent under data.root; a subset the base lacks
            why = f"pair {pid} skipped: {str(e).splitlines()[0]}"
            return [_bare(m, c.width, s, "skipped", 1.0, dataset=pair.target, note=why, **cond)
                    for m in src.methods for s in src.seeds]
        rows, n_classes = [], target.n_classes
        feasible[pid] = []
        skipped = []
        for b in c.budgets:
            why = P.infeasible(target.train.y, n_classes, b)
            (skipped.append((b, why)) if why else feasible[pid].append(b))
        for reference, dataset in (("transfer", pair.source), ("in_domain", pair.target)):
            for measured in src.measure(self.measure_pair, pid, reference, tuple(feasible[pid]), tuple(skipped),
                                        dataset=dataset):
                rows += measured
                for r in measured:
                    key = (r["method"], r["seed"])
                    if r["metric"] == "kappa":
                        kappas[(pid, reference, r["method"], r["seed"], r["budget"], r["l2_mode"])] = r["value"]
                    if reference == "transfer":
                        ids.setdefault(key, {"width": r["width"]})
                    elif r.get("note") == ORACLE:
                        ids.setdefault(key, {"width": r["width"]})["oracle"] = True
        return rows

    def measure_pair(self, enc, src, pid: str, reference: str, feasible: tuple[str, ...],
                     skipped: tuple[tuple[str, str], ...]) -> list[dict]:
        """One encoder (pretrained on the pair's source, or on its target for ``in_domain``) probed
        on the target at every feasible budget and draw: the subsets depend on (seed, pair,
        budget, draw) only, never on the method."""
        t0 = time.perf_counter()
        pair, c = P.PAIRS[pid], self.cfg
        target = src.dataset(pair.target)
        n_classes, seed = target.n_classes, enc.spec.seed
        draws = dict(zip(c.budgets, c.draws, strict=True))
        plan = [(b, s) for b in feasible for s in P.draw_subsets(target.train.y, b, draws[b], seed, pid)]
        f = [enc.features(s.x) for s in (target.train, target.val, target.test)]
        res = budget_probe(f[0], target.train.y, f[1], target.val.y, f[2], target.test.y, n_classes,
                           [s for _, s in plan], fixed_l2=c.fixed_l2)
        oracle = reference == "in_domain" and getattr(enc.method, "uses_labels", False)
        extra = {"pair": pid, "source": pair.source, "target": pair.target, "reference": reference,
                 **({"note": ORACLE} if oracle else {})}
        budgets = np.array([b for b, _ in plan])
        rows = []
        for b in feasible:
            at = np.flatnonzero(budgets == b)
            rows.append(row(enc, "subset_checksum", P.checksum([plan[i][1] for i in at]), budget=b, **extra))
            for mode, acc in (("val", res.test_acc[at]), ("fixed", res.fixed_acc[at])):
                kap = P.kappa(acc, n_classes)
                rows.append(row(enc, "acc", float(acc.mean()), budget=b, l2_mode=mode, **extra))
                rows.append(row(enc, "kappa", float(kap.mean()), budget=b, l2_mode=mode, **extra))
                sd = float(kap.std()) if len(at) > 1 else math.nan
                rows.append(row(enc, "kappa_sd", sd, budget=b, l2_mode=mode,
                                **(extra if len(at) > 1 else {**extra, "note": "one draw"})))
            rows.append(row(enc, "probe_l2", float(res.l2[at].log().mean().exp()), budget=b, l2_mode="val", **extra))
        for b, why in skipped:
            rows.append(row(enc, "skipped", 1.0, budget=b, **{**extra, "note": why}))
        rows.append(row(enc, "probe_seconds", time.perf_counter() - t0, **extra))
        return rows

    # ------------------------------------------------------------------------------ summaries
    def _summaries(self, kappas: dict, feasible: dict, ids: dict) -> list[dict]:
        """Per-cell gaps, then per group the means over its pairs x budgets (NaN, with the missing
        cells named, where a method lacks one: every method is averaged over the same cells)."""
        rows = []
        for (pid, ref, m, s, b, mode), kt in kappas.items():
            ki = kappas.get((pid, "in_domain", m, s, b, mode))
            if ref == "transfer" and ki is not None:
                note = {"note": ORACLE} if ids.get((m, s), {}).get("oracle") else {}
                rows.append(_bare(m, ids[(m, s)]["width"], s, "gap", kt - ki, dataset=P.PAIRS[pid].target, pair=pid,
                                  source=P.PAIRS[pid].source, target=P.PAIRS[pid].target, budget=b, l2_mode=mode,
                                  **note))
        groups = {"embedded": [p for p in P.EMBEDDED if p in feasible],
                  "full": [p for p in P.FULL if p in feasible]}
        labels = [(",".join(P.PRIMARY_BUDGETS), P.PRIMARY_BUDGETS)]
        labels += [(b, (b,)) for b in self.cfg.budgets if b not in P.PRIMARY_BUDGETS]
        for group, pids in groups.items():
            for label, budgets in labels:
                cells = [(p, b) for p in pids for b in budgets if b in feasible[p]]
                if not cells:
                    continue
                for (m, s), ident in ids.items():
                    for mode in ("val", "fixed"):
                        rows += self._group_rows(kappas, cells, m, s, ident, mode, group=group, budget=label)
        return rows

    @staticmethod
    def _group_rows(kappas: dict, cells: list, m: str, s: int, ident: dict, mode: str, **cond) -> list[dict]:
        get = {ref: [kappas.get((p, ref, m, s, b, mode)) for p, b in cells] for ref in ("transfer", "in_domain")}
        out = []
        where = ", ".join(f"{p} n={b}" for p, b in cells)
        for metric, ref in (("kappa_transfer_mean", "transfer"), ("kappa_in_domain_mean", "in_domain")):
            vals = get[ref]
            lack = [f"{p} n={b}" for (p, b), v in zip(cells, vals, strict=True) if v is None]
            value = math.nan if lack else float(np.mean(vals))
            note = f"no {ref} value for {', '.join(lack)}" if lack else f"mean over {where}"
            if ref == "in_domain" and ident.get("oracle"):
                note += f"; {ORACLE}"
            out.append(_bare(m, ident["width"], s, metric, value, dataset=cond["group"], pair=cond["group"],
                             budget=cond["budget"], l2_mode=mode, note=note))
        gaps = [None if t is None or i is None else t - i for t, i in zip(get["transfer"], get["in_domain"], strict=True)]
        lack = [f"{p} n={b}" for (p, b), v in zip(cells, gaps, strict=True) if v is None]
        note = f"no transfer or in-domain value for {', '.join(lack)}" if lack else f"mean over {where}"
        if ident.get("oracle"):
            note += f"; {ORACLE}"
        out.append(_bare(m, ident["width"], s, "gap_mean", math.nan if lack else float(np.mean(gaps)),
                         dataset=cond["group"], pair=cond["group"], budget=cond["budget"], l2_mode=mode, note=note))
        return out

    # ------------------------------------------------------------------------------ dSprites
    def _dsprites(self, src: EncoderSource) -> list[dict]:
        c = self.cfg
        cond = {"pair": "dsprites", "source": "dsprites", "target": "dsprites"}
        try:
            ds = src.dataset("dsprites")
        except (FileNotFoundError, ValueError) as e:
            return [_bare(m, c.width, s, "skipped", 1.0, dataset="dsprites", note=str(e), **cond)
                    for m in src.methods for s in src.seeds]
        names = list(ds.factor_names or [])
        cols = [names.index(f) for f in c.factors if f in names]
        if len(cols) != len(c.factors):
            raise ValueError(f"factors: dsprites has {names}, not all of {list(c.factors)}")
        rows = []
        for measured in src.measure(self.measure_dsprites, tuple(cols), dataset="dsprites"):
            rows += measured
        return rows

    def measure_dsprites(self, enc, src, cols: tuple[int, ...]) -> list[dict]:
        """Ridge R^2 of the dSprites factors from one encoder's features, per total budget."""
        t0 = time.perf_counter()
        c = self.cfg
        cond = {"pair": "dsprites", "source": "dsprites", "target": "dsprites"}
        ds = src.dataset("dsprites")
        t = [s.factors[:, list(cols)] for s in (ds.train, ds.val, ds.test)]
        n_train = len(ds.train.x)
        rows = []
        f = [enc.features(s.x) for s in (ds.train, ds.val, ds.test)]
        means = []
        for b, draws in zip(c.factor_budgets, c.factor_draws, strict=True):
            subsets = P.random_subsets(n_train, b, draws, enc.spec.seed, "dsprites")
            r2 = ridge_r2(f[0], t[0], f[1], t[1], f[2], t[2], subsets).mean(0)  # (F,), mean over draws
            means.append(r2)
            for name, v in zip(c.factors, r2.tolist(), strict=True):
                rows.append(row(enc, "r2", v, factor=name, budget=b, **cond))
        rows.append(row(enc, "r2_mean", float(np.mean([m.mean() for m in means])), budget=",".join(c.factor_budgets),
                        **cond))
        rows.append(row(enc, "probe_seconds", time.perf_counter() - t0, **cond))
        return rows


def _bare(method: str, width: int, seed: int, metric: str, value: float, dataset: str, **conditions) -> dict:
    """A tidy row not tied to one encoder (a summary over pairs, a skipped pair)."""
    return {"dataset": dataset, "method": method, "width": width, "seed": seed, "metric": metric,
            "value": float(value), **conditions, "n_params_encoder": None, "n_params_train": None,
            "train_seconds": None}

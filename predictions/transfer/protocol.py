"""Prediction 2, transfer, the protocol: "InfoMax features transfer better" (docs/protocol.md, P2).

For every pair of :data:`predictions.transfer.pairs.PAIRS` selected by ``pairs=[...]``, at the
pair's width (K = 32 on ``digits_lo_hi``, else ``width`` [64]): every method's encoder pretrained
on the source's train inputs (label-trained methods on its labels), frozen, is probed on the
target with n labelled train examples per class (``budgets`` [1, 5, 10, 50, all], ``draws``
[20, 10, 5, 3, 1] stratified at random, seeded by (seed, pair, budget, draw), never by method).
References, probed on the same subsets: ``in_domain``, the same method pretrained on the target's
train inputs; ``matched``, the co-primary's step-matched source (:func:`pairs.matched_source`;
the primary's own source where train sizes differ < 10%, and never for label-trained methods,
whose co-primary is n/a by design). All budgets and draws of one encoder on one target are one
batched probe (:func:`predictions.transfer.probing.budget_probes`) over both scalings: ``scalar``
(main: centred, one scalar for all units) and ``unit`` (v1's per-unit standardisation, a
sensitivity row); L2 chosen on the full target val split, plus the fixed-L2 sensitivity fit (scalar). A pair
whose files are absent under ``data.root`` and a budget a class cannot fill are skipped with
their reason; a ``pairs=`` list lacking a primary pair computes no primary (``confirm`` refuses it).

Tidy rows (condition columns ``pair``, ``source``, ``target``, ``reference`` = transfer |
in_domain | matched, ``budget`` = "1" .. "all" or "1,5,10", ``l2_mode`` = val | fixed,
``scaling`` = scalar | unit): per (pair, reference, budget, l2_mode, scaling) ``acc`` and
``kappa`` (chance-corrected accuracy, means over draws), ``kappa_sd`` (over draws) and
``probe_l2`` (geometric mean of the val-chosen L2s); ``subset_checksum`` per (pair, reference,
budget); ``gap`` = kappa step-matched - kappa in-domain per (pair, budget, l2_mode, scaling); per
group (``pair`` = primary | stretch | full) ``kappa_transfer_mean``, ``kappa_in_domain_mean`` and
``gap_mean`` over its pairs x budgets (budget "1,5,10": the primary and co-primary; "50", "all");
``skipped`` (value 1, with a note); ``probe_seconds``. A row derived from several encoders is
``under_trained`` if any of them is, False if none is, None when one is unknown.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.protocol import PREDICTIONS, EncoderSource, Prediction, PredictionConfig, row
from bench.train.methods import METHODS
from predictions.transfer import pairs as P
from predictions.transfer.probing import budget_probe, budget_probes

ORACLE = "oracle: the in-domain encoder was trained on the target's labels"
PRIMARY_SUBSET = "primary not computed: pairs subset"
PROBES = (("val", "scalar"), ("fixed", "scalar"), ("val", "unit"))  # (l2_mode, scaling) of the rows


@dataclass(frozen=True)
class TransferConfig(PredictionConfig):
    pairs: tuple[str, ...] = tuple(P.PAIRS)
    budgets: tuple[str, ...] = ("1", "5", "10", "50", "all")  # labelled target examples per class
    draws: tuple[int, ...] = (20, 10, 5, 3, 1)  # per budget
    fixed_l2: float = 1e-2  # the sensitivity row's L2

    def check(self) -> None:
        super().check()
        bad = [p for p in self.pairs if p not in P.PAIRS]
        if bad or not self.pairs:
            raise ValueError(f"pairs: unknown {bad} (choices: {', '.join(P.PAIRS)})")
        try:
            [P.budget_size(b) for b in self.budgets]
        except ValueError:
            raise ValueError(f"budgets: need integers >= 1 or 'all', got {list(self.budgets)}") from None
        if len(self.draws) != len(self.budgets) or any(d < 1 for d in self.draws):
            raise ValueError(f"draws: need one number of draws >= 1 per budget, got {list(self.draws)}")
        missing = [b for b in P.PRIMARY_BUDGETS if b not in self.budgets]
        if missing:
            raise ValueError(f"budgets: the primary needs {', '.join(P.PRIMARY_BUDGETS)}; missing {missing}")
        if not self.fixed_l2 > 0:
            raise ValueError(f"fixed_l2: must be > 0, got {self.fixed_l2}")


def label_trained(method: str) -> bool:
    return bool(getattr(METHODS.get(method), "uses_labels", False))


def flag(values) -> bool | None:
    """``under_trained`` of a row derived from several encoders' flags."""
    values = list(values)
    if any(v is True for v in values):
        return True
    return False if values and all(v is False for v in values) else None


@PREDICTIONS.register()
class Transfer(Prediction):
    """P2: do InfoMax features transfer better? Label-budget probes on new data and unseen classes."""

    name = "transfer"
    Config = TransferConfig
    needs = frozenset({"labels"})
    fast = True  # both scalings as one batched probe (False: one budget_probe per scaling, the reference path)

    def check_profile(self, profile: str) -> None:
        lack = [p for p in P.PRIMARY if p not in self.cfg.pairs]
        if profile == "confirm" and lack:
            raise ValueError(f"pairs: confirm needs every primary pair ({', '.join(P.PRIMARY)}); missing {lack}")

    def run(self, src: EncoderSource) -> list[dict]:
        rows: list[dict] = []
        kappas: dict[tuple, tuple[float, Any]] = {}  # (pair, ref, method, seed, budget, l2, scaling) -> (kappa, flag)
        feasible: dict[str, list[str]] = {}  # pair -> budgets every class can fill
        widths: dict[tuple[str, int], int] = {}  # (method, seed) -> the width of its first transfer row
        for pid in self.cfg.pairs:
            rows += self._pair(src, pid, kappas, feasible, widths)
        rows += self._summaries(kappas, feasible, widths)
        lack = [p for p in P.PRIMARY if p not in self.cfg.pairs]
        if lack:
            note = f"{PRIMARY_SUBSET} (pairs lacks {', '.join(lack)})"
            rows += [
                _bare(m, self.cfg.width, s, "skipped", 1.0, dataset="primary", pair="primary", note=note)
                for m in src.methods
                for s in src.seeds
            ]
        return rows

    # ------------------------------------------------------------------------------ one pair
    def _pair(self, src: EncoderSource, pid: str, kappas: dict, feasible: dict, widths: dict) -> list[dict]:
        pair, c = P.PAIRS[pid], self.cfg
        cond = {"pair": pid, "source": pair.source, "target": pair.target}
        try:
            target, source = src.dataset(pair.target), src.dataset(pair.source)
        except (FileNotFoundError, ValueError) as e:  # absent under data.root; a subset the base lacks
            why = f"pair {pid} skipped: {str(e).splitlines()[0]}"
            return [
                _bare(m, c.width, s, "skipped", 1.0, dataset=pair.target, note=why, **cond)
                for m in src.methods
                for s in src.seeds
            ]
        rows, feasible[pid], skipped = [], [], []
        for b in c.budgets:
            why = P.infeasible(target.train.y, target.n_classes, b)
            (skipped.append((b, why)) if why else feasible[pid].append(b))
        matched = P.matched_source(len(source.train.x), len(target.train.x), pair)
        refs = [("transfer", pair.source, src.methods), ("in_domain", pair.target, src.methods)]
        if matched != pair.source:
            unlabelled = [m for m in src.methods if not label_trained(m)]
            try:
                src.dataset(matched)
                refs.append(("matched", matched, unlabelled))
            except ValueError as e:  # the target's train split is larger than the source's
                why = f"step-matched source of {pid} skipped: {str(e).splitlines()[0]}"
                rows += [
                    _bare(m, c.width, s, "skipped", 1.0, dataset=matched, reference="matched", note=why, **cond)
                    for m in unlabelled
                    for s in src.seeds
                ]
        width = pair.width or c.width
        for reference, dataset, methods in refs:
            if not methods:
                continue
            for measured in src.measure(
                self.measure_pair,
                pid,
                reference,
                tuple(feasible[pid]),
                tuple(skipped),
                dataset=dataset,
                methods=methods,
                widths=[width],
            ):
                rows += measured
                for r in measured:
                    if r["metric"] == "kappa":
                        key = (pid, reference, r["method"], r["seed"], r["budget"], r["l2_mode"], r["scaling"])
                        kappas[key] = (r["value"], r.get("under_trained"))
                    if reference == "transfer":
                        widths.setdefault((r["method"], r["seed"]), r["width"])
        if matched == pair.source:  # the primary's own source is step-matched: its transfer rows serve
            for (p, ref, m, *rest), v in list(kappas.items()):
                if p == pid and ref == "transfer" and not label_trained(m):
                    kappas[(p, "matched", m, *rest)] = v
        return rows

    def measure_pair(
        self, enc, src, pid: str, reference: str, feasible: tuple[str, ...], skipped: tuple[tuple[str, str], ...]
    ) -> list[dict]:
        """One encoder (pretrained on the pair's source, its step-matched source or its target)
        probed on the target at every feasible budget and draw, under every (L2 mode, scaling):
        the subsets depend on (seed, pair, budget, draw) only, never on the method."""
        t0 = time.perf_counter()
        pair, c = P.PAIRS[pid], self.cfg
        target = src.dataset(pair.target)
        n_classes, seed = target.n_classes, enc.spec.seed
        draws = dict(zip(c.budgets, c.draws, strict=True))
        plan = [(b, s) for b in feasible for s in P.draw_subsets(target.train.y, b, draws[b], seed, pid)]
        f = [enc.features(s.x) for s in (target.train, target.val, target.test)]
        args = (f[0], target.train.y, f[1], target.val.y, f[2], target.test.y, n_classes, [s for _, s in plan])
        if self.fast:
            res = budget_probes(*args, fixed_l2=c.fixed_l2, scalings=("scalar", "unit"))
        else:
            res = {sc: budget_probe(*args, fixed_l2=c.fixed_l2, scaling=sc) for sc in ("scalar", "unit")}
        oracle = reference == "in_domain" and getattr(enc.method, "uses_labels", False)
        extra = {
            "pair": pid,
            "source": pair.source,
            "target": pair.target,
            "reference": reference,
            **({"note": ORACLE} if oracle else {}),
        }
        budgets = np.array([b for b, _ in plan])
        rows = []
        for b in feasible:
            at = np.flatnonzero(budgets == b)
            rows.append(row(enc, "subset_checksum", P.checksum([plan[i][1] for i in at]), budget=b, **extra))
            for mode, sc in PROBES:
                r = res[sc]
                acc = (r.test_acc if mode == "val" else r.fixed_acc)[at]
                kap = P.kappa(acc, n_classes)
                cond = {"budget": b, "l2_mode": mode, "scaling": sc}
                rows.append(row(enc, "acc", float(acc.mean()), **cond, **extra))
                rows.append(row(enc, "kappa", float(kap.mean()), **cond, **extra))
                sd = float(kap.std()) if len(at) > 1 else math.nan
                rows.append(
                    row(enc, "kappa_sd", sd, **cond, **(extra if len(at) > 1 else {**extra, "note": "one draw"}))
                )
                if mode == "val":
                    rows.append(row(enc, "probe_l2", float(r.l2[at].log().mean().exp()), **cond, **extra))
        for b, why in skipped:
            rows.append(row(enc, "skipped", 1.0, budget=b, **{**extra, "note": why}))
        rows.append(row(enc, "probe_seconds", time.perf_counter() - t0, **extra))
        return rows

    # ------------------------------------------------------------------------------ summaries
    def _summaries(self, kappas: dict, feasible: dict, widths: dict) -> list[dict]:
        """Per-cell gaps (step-matched - in-domain), then per group the means over its pairs x
        budgets (NaN, with the missing cells named, where a method lacks one: every method is
        averaged over the same cells). No gap for label-trained methods (n/a by design)."""
        rows = []
        for (pid, ref, m, s, b, mode, sc), (km, fm) in kappas.items():
            ki = kappas.get((pid, "in_domain", m, s, b, mode, sc))
            if ref == "matched" and ki is not None:
                pair = P.PAIRS[pid]
                rows.append(
                    _bare(
                        m,
                        widths.get((m, s), self.cfg.width),
                        s,
                        "gap",
                        km - ki[0],
                        dataset=pair.target,
                        pair=pid,
                        source=pair.source,
                        target=pair.target,
                        budget=b,
                        l2_mode=mode,
                        scaling=sc,
                        under_trained=flag([fm, ki[1]]),
                    )
                )
        labels = [(",".join(P.PRIMARY_BUDGETS), P.PRIMARY_BUDGETS)]
        labels += [(b, (b,)) for b in self.cfg.budgets if b not in P.PRIMARY_BUDGETS]
        for group in P.GROUPS:
            pids = [p for p in self.cfg.pairs if P.PAIRS[p].group == group and p in feasible]
            if group == "primary" and any(p not in self.cfg.pairs for p in P.PRIMARY):
                continue  # a subset of the primary pairs is not the primary (a "skipped" row says so)
            for label, budgets in labels:
                cells = [(p, b) for p in pids for b in budgets if b in feasible[p]]
                if not cells:
                    continue
                for m, s in sorted(widths):
                    for mode, sc in PROBES:
                        rows += self._group_rows(kappas, cells, m, s, widths[(m, s)], mode, sc, group, label)
        return rows

    @staticmethod
    def _group_rows(
        kappas: dict, cells: list, m: str, s: int, width: int, mode: str, sc: str, group: str, budget: str
    ) -> list[dict]:
        get = {
            ref: [kappas.get((p, ref, m, s, b, mode, sc)) for p, b in cells]
            for ref in ("transfer", "in_domain", "matched")
        }
        cond = {"dataset": group, "pair": group, "budget": budget, "l2_mode": mode, "scaling": sc}
        where = ", ".join(f"{p} n={b}" for p, b in cells)
        out = []

        def mean_row(metric: str, vals: list, what: str, extra_note: str = "") -> dict:
            lack = [f"{p} n={b}" for (p, b), v in zip(cells, vals, strict=True) if v is None]
            value = math.nan if lack else float(np.mean([v[0] for v in vals]))
            note = (f"no {what} value for {', '.join(lack)}" if lack else f"mean over {where}") + extra_note
            return _bare(m, width, s, metric, value, note=note, under_trained=flag(v[1] for v in vals if v), **cond)

        out.append(mean_row("kappa_transfer_mean", get["transfer"], "transfer"))
        out.append(
            mean_row("kappa_in_domain_mean", get["in_domain"], "in-domain", f"; {ORACLE}" if label_trained(m) else "")
        )
        if not label_trained(m):  # the co-primary: n/a by design for label-trained methods
            gaps = [
                None if t is None or i is None else (t[0] - i[0], flag([t[1], i[1]]))
                for t, i in zip(get["matched"], get["in_domain"], strict=True)
            ]
            out.append(mean_row("gap_mean", gaps, "step-matched or in-domain"))
        return out


def _bare(
    method: str,
    width: int,
    seed: int,
    metric: str,
    value: float,
    dataset: str,
    under_trained: bool | None = None,
    **conditions,
) -> dict:
    """A tidy row not tied to one encoder (a summary over pairs, a skipped pair)."""
    return {
        "dataset": dataset,
        "method": method,
        "width": width,
        "seed": seed,
        "metric": metric,
        "value": float(value),
        **conditions,
        "n_params_encoder": None,
        "n_params_train": None,
        "train_seconds": None,
        "under_trained": under_trained,
    }

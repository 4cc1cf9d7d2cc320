"""Open question ``depth``, the view: per-layer estimands of the greedy stacks, their controls, the answer.

Everything is read from the tidy table (:mod:`questions.depth.estimands`): G_l (trained layer l minus an
untrained layer l on the same layer below, paired by seed), acc(l) - acc(l - 1) and dMI_l with 95%
t-intervals; the stacks compared with each other (infomax minus each other family: Bonferroni intervals
and Holm p, :func:`bench.evaluate.estimates.differences`) and with the references (end to end, label
oracle, one layer 2K wide); the identity control; the layer x layer CKA maps from the matrices table.
The answer reads layer 2 of the infomax stack on mnist5k. No verdicts: estimates and a reading.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bench.evaluate import estimates
from bench.protocol import SUBJECT, VIEWS, Table, View
from bench.report import plots
from questions.depth import estimands as E
from questions.depth.arms import IDENTITY, control_of, stack_arm

DATASETS = ("mnist5k", "mnist1d", "dsprites")
LAYER_METRICS = {
    "acc": "probe acc",
    "mi": "MI (nats)",
    "knn_r2": "kNN R^2",
    "gaussian_tc": "Gaussian TC",
    "energy_dep": "energy dep.",
    "cka_prev": "CKA(l, l-1)",
    "kappa": "kappa n=10",
    "aurc": "AURC",
    "pos_r2": "position R^2",
}
REFS = {
    "infomax_mlp3": "InfoMax end to end (3 layers)",
    "supervised_mlp3": "supervised (3 layers)",
    "infomax_wide": "InfoMax, one layer 2K wide",
}
IDENTITY_METRICS = ("acc", "mi", "kappa", "aurc")


def _datasets(df: pd.DataFrame) -> list[str]:
    present = set(df["dataset"].dropna()) if "dataset" in df.columns else set()
    return [d for d in DATASETS if d in present] + sorted(present - set(DATASETS))


def _measured(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["layer"].notna()] if "layer" in df.columns else df.iloc[0:0]


def _seeds(e: estimates.Estimate) -> dict:
    return dict(e.per_seed)


def _mean(m: pd.DataFrame, ds: str, arm: str, metric: str, layer: int) -> float:
    v = list(E.per_seed(m, ds, arm, metric, layer).values())
    return float(np.mean(v)) if v else np.nan


def _cell(e: estimates.Estimate) -> dict:
    return {"seeds": e.n, "mean": e.mean, "95% CI": f"[{e.ci_low:.4f}, {e.ci_high:.4f}]"}


@VIEWS.register()
class DepthView(View):
    """How does InfoMax interact with depth? Greedy stacks, their random and identity controls, references."""

    kind = "question"
    in_all = False
    order = 4.0
    name = "depth"
    title = "How does InfoMax interact with depth?"
    question = (
        "\u201cHow does InfoMax interact with depth? Layer 1 produces independent features of pixels. What does "
        "layer 2 produce? Independent features of independent features? Does this compose sensibly?\u201d"
    )
    statement = question
    protocol = (
        "Greedy stacks of 3 layers of width K (mnist5k K = 64; mnist1d K = 128 at N = 16,384; dsprites K = 64, "
        "label = shape): each layer is trained with its own method and budget on the frozen output of the layer "
        "below, standardised with its train statistics (an RBM layer reads the probabilities below, as in a DBN), "
        "for infomax, ae and rbm. Controls: an untrained random layer on each trained layer (the same stack up to "
        "l - 1, bit for bit) and an identity layer. References: the InfoMax loss on the top of a 3-layer MLP "
        "trained end to end, a 3-layer supervised MLP (label oracle), one InfoMax layer 2K wide. Per layer: linear "
        "probe accuracy, pairwise binned MI, kNN predictability, Gaussian TC, energy dependence corr(a_i^2, a_j^2), "
        "debiased CKA with the layer below, few-label kappa, AURC, and on dsprites the position R^2. Estimands "
        "(95% t-intervals over seeds, paired by seed): G_l = acc(trained l) - acc(random l), acc(l) - acc(l - 1), "
        "dMI_l = MI(l) - MI(l - 1). Layer 2 composes when G_2 > 0 and acc(2) >= acc(1) - 1 point; 'independent "
        "features of independent features' also needs dMI_2 <= 0. No verdicts: estimates and a reading."
    )
    main_figure = "layers"

    def answer(self, df: pd.DataFrame) -> str:
        return E.answer(df)

    # ------------------------------------------------------------------------------------------ tables
    def tables(self, df: pd.DataFrame) -> list[Table]:
        m = _measured(df)
        found = [self._estimands(m), self._readings(m), self._across(m), self._references(m), self._identity(m)]
        found += [self._layers(m), self._status(df)]
        return [t for t in found if t is not None]

    def _stacks(self, m: pd.DataFrame):
        for ds in _datasets(m):
            for fam in E.stacks(m, ds):
                e = E.stack_estimates(m, ds, fam)
                if e is not None:
                    yield e

    def _estimands(self, m: pd.DataFrame) -> Table | None:
        rows = []
        for e in self._stacks(m):
            named = [(f"G_{lay}", e.g[lay]) for lay in sorted(e.g)]
            named += [(f"acc({lay}) - acc({lay - 1})", e.dacc[lay]) for lay in sorted(e.dacc)]
            named += [(f"dMI_{lay}", e.dmi[lay]) for lay in sorted(e.dmi)]
            rows += [{"dataset": e.dataset, "stack": e.arm, "estimand": n, **_cell(v)} for n, v in named]
        if not rows:
            return None
        note = (
            "G_l: trained layer l minus an untrained random layer l on the same layer l - 1 (layer 1: random@K), "
            "test probe accuracy, paired by seed; dMI_l in nats (mean pairwise binned MI of the test code)."
        )
        return Table("Estimands per stack (95% t-intervals over seeds)", pd.DataFrame(rows), note=note)

    def _readings(self, m: pd.DataFrame) -> Table | None:
        rows = []
        for e in self._stacks(m):
            r = {"dataset": e.dataset, "stack": e.arm}
            for lay in range(2, e.depth + 1):
                word, indep = E.reading(e, lay)
                r[f"layer {lay}"] = word
                r[f"layer {lay} vs {lay - 1}: MI"] = indep
            rows.append(r)
        if not rows:
            return None
        note = "composes: G_l > 0 and acc(l) >= acc(l - 1) - 1 point (intervals); MI: dMI_l <= 0 reads independent."
        return Table(
            "Reading per stack and layer (exploratory: directions, no verdicts)", pd.DataFrame(rows), note=note
        )

    def _across(self, m: pd.DataFrame) -> Table | None:
        rows = []
        for ds in _datasets(m):
            ests = {f: E.stack_estimates(m, ds, f) for f in E.stacks(m, ds)}
            if SUBJECT not in ests or len(ests) < 2:
                continue
            sub = ests[SUBJECT]
            for label, pick in (("G", "g"), ("dMI", "dmi")):
                for lay in sorted(getattr(sub, pick)):
                    base = {
                        f: _seeds(getattr(e, pick)[lay])
                        for f, e in ests.items()
                        if f != SUBJECT and lay in getattr(e, pick)
                    }
                    for d in estimates.differences(_seeds(getattr(sub, pick)[lay]), base):
                        rows.append(
                            {
                                "dataset": ds,
                                "estimand": f"{label}_{lay}",
                                "infomax minus": d.baseline,
                                "seeds": d.n,
                                "mean": d.mean_diff,
                                "CI (Bonferroni)": f"[{d.ci_low:.4f}, {d.ci_high:.4f}]",
                                "p_holm": d.p_holm,
                            }
                        )
        if not rows:
            return None
        return Table("Across stacks: infomax minus each other stack, paired by seed", pd.DataFrame(rows))

    def _references(self, m: pd.DataFrame) -> Table | None:
        rows = []
        for ds in _datasets(m):
            e = E.stack_estimates(m, ds, SUBJECT)
            if e is None:
                continue
            top = E.per_seed(m, ds, e.arm, "acc", e.depth)
            refs = {}
            for fam, label in REFS.items():
                found = E.plain(m, ds, fam)
                if found is not None:
                    refs[label] = E.per_seed(m, ds, found[0], "acc", found[1])
            for d in estimates.differences(top, refs):
                rows.append(
                    {
                        "dataset": ds,
                        f"infomax stack layer {e.depth} minus": d.baseline,
                        "seeds": d.n,
                        "mean": d.mean_diff,
                        "CI (Bonferroni)": f"[{d.ci_low:.4f}, {d.ci_high:.4f}]",
                    }
                )
        if not rows:
            return None
        note = "Test probe accuracy of the stack's top layer minus each reference's top layer (the oracle: labels)."
        return Table("Depth against the references", pd.DataFrame(rows), note=note)

    def _identity(self, m: pd.DataFrame) -> Table | None:
        arm = stack_arm((SUBJECT, IDENTITY))
        rows = []
        for ds in _datasets(m):
            for metric in IDENTITY_METRICS:
                a, b = E.per_seed(m, ds, arm, metric, 1), E.per_seed(m, ds, arm, metric, 2)
                seeds = sorted(set(a) & set(b))
                if seeds:
                    gap = max(abs(b[s] - a[s]) for s in seeds)
                    rows.append({"dataset": ds, "metric": metric, "seeds": len(seeds), "max |layer 2 - layer 1|": gap})
        if not rows:
            return None
        note = "An identity layer 2 passes layer 1's code on unchanged: it must read what layer 1 reads (0 here)."
        return Table("Identity control (infomax/identity)", pd.DataFrame(rows), note=note)

    def _layers(self, m: pd.DataFrame) -> Table | None:
        sel = m[m["metric"].isin(list(LAYER_METRICS))]
        if sel.empty:
            return None
        mean = sel.groupby(["dataset", "arm", "layer", "metric"])["value"].mean().unstack("metric")
        mean = mean[[c for c in LAYER_METRICS if c in mean.columns]].rename(columns=LAYER_METRICS).reset_index()
        mean["layer"] = mean["layer"].astype(int)
        note = "Means over seeds; MI, kNN R^2, TC, energy dependence and CKA on the first 2,000 test inputs."
        return Table("Every layer of every arm (means over seeds)", mean, note=note)

    def _status(self, df: pd.DataFrame) -> Table | None:
        sel = df[df["metric"].isin(["job_failed", "job_skipped", "measure_failed"])]
        if sel.empty:
            return None
        cols = [c for c in ("dataset", "method", "arm", "metric", "note") if c in sel.columns]
        out = sel[cols].fillna("").groupby(cols).size().reset_index(name="jobs")
        return Table("Jobs that failed or were skipped", out)

    # ----------------------------------------------------------------------------------------- figures
    def figures(self, df: pd.DataFrame, matrices: pd.DataFrame):
        plots.theme()
        m = _measured(df)
        out = []
        if not m.empty and (m["metric"] == "acc").any():
            out.append(("layers", self._layers_figure(m)))
        if (
            matrices is not None
            and len(matrices)
            and matrices["matrix"].astype(str).str.startswith("cka_layers:").any()
        ):
            out.append(("cka_maps", self._cka_figure(m, matrices)))
        if (m["metric"] == "pos_r2").any():
            out.append(("dsprites_class_vs_nuisance", self._dsprites_figure(m)))
        return out

    def _layers_figure(self, m: pd.DataFrame):
        dss = [d for d in _datasets(m) if E.stacks(m, d)] or _datasets(m)
        fig, axes = plt.subplots(len(dss), 2, figsize=(10.5, 3.4 * len(dss)), squeeze=False)
        colors = dict(zip(["infomax", "ae", "rbm"], ["#c0392b", "#4C72B0", "#55A868"], strict=True))
        for row_axes, ds in zip(axes, dss, strict=True):
            for ax, metric, label in zip(
                row_axes, ("acc", "mi"), ("test probe accuracy", "pairwise MI (nats)"), strict=True
            ):
                for fam, (arm, depth, width) in E.stacks(m, ds).items():
                    c = colors.get(fam)
                    xs = np.arange(1, depth + 1)
                    ys = [_mean(m, ds, arm, metric, x) for x in xs]
                    ax.plot(xs, ys, marker="o", color=c, lw=2.0 if fam == SUBJECT else 1.2, label=f"{arm}")
                    ctrl = [_mean(m, ds, control_of(fam, x, width), metric, x) for x in xs]
                    ax.plot(xs + 0.06, ctrl, marker="o", mfc="w", ls="--", color=c, lw=1.0, label=f"random on {fam}")
                for fam, style in (("infomax_mlp3", ":"), ("supervised_mlp3", "-.")):
                    found = E.plain(m, ds, fam)
                    if found is not None:
                        xs = np.arange(1, found[1] + 1)
                        ys = [_mean(m, ds, found[0], metric, x) for x in xs]
                        ax.plot(xs, ys, ls=style, marker="s", color="0.35", lw=1.0, label=REFS[fam])
                found = E.plain(m, ds, "infomax_wide")
                if found is not None:
                    ax.plot(
                        [1],
                        [_mean(m, ds, found[0], metric, 1)],
                        marker="*",
                        ms=11,
                        ls="",
                        color="#8e44ad",
                        label=REFS["infomax_wide"],
                    )
                ax.set_xlabel("layer")
                ax.set_ylabel(label)
                ax.set_title(ds, loc="left", fontsize=9)
                ax.set_xticks(range(1, 4))
        axes[0, 1].legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.suptitle(
            "Probe accuracy and MI per layer (mean over seeds); dashed: an untrained layer on the same layer below"
        )
        fig.tight_layout()
        return fig

    def _cka_figure(self, m: pd.DataFrame, matrices: pd.DataFrame):
        mats = matrices[matrices["matrix"].astype(str).str.startswith("cka_layers:")]
        cells = []
        for ds in _datasets(m):
            for arm, _, _ in E.stacks(m, ds).values():
                sel = mats[(mats["dataset"] == ds) & (mats["matrix"] == f"cka_layers:{arm}")]
                if len(sel):
                    cells.append((ds, arm, sel.groupby(["i", "j"])["value"].mean().unstack("j").to_numpy()))
        if not cells:
            cells = [("", "no stack", np.full((1, 1), np.nan))]
        cols = min(3, len(cells))
        rows = -(-len(cells) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.0 * rows), squeeze=False)
        for ax in axes.flat[len(cells) :]:
            ax.axis("off")
        for ax, (ds, arm, mat) in zip(axes.flat, cells, strict=False):
            ax.imshow(mat, vmin=0, vmax=1, cmap="viridis")
            for (i, j), v in np.ndenumerate(mat):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6.5, color="w" if v < 0.6 else "k")
            ax.set_xticks(range(len(mat)), ["x"] + [str(i) for i in range(1, len(mat))])
            ax.set_yticks(range(len(mat)), ["x"] + [str(i) for i in range(1, len(mat))])
            ax.set_title(f"{ds}: {arm}", fontsize=7.5)
            ax.grid(False)
        fig.suptitle("Debiased CKA between layers (x = input; standardised units, mean over seeds)")
        fig.tight_layout()
        return fig

    def _dsprites_figure(self, m: pd.DataFrame):
        fig, ax = plt.subplots(figsize=(5.6, 4.2))
        d = m[m["dataset"] == "dsprites"]
        for fam, (arm, depth, _) in E.stacks(d, "dsprites").items():
            xs = [_mean(d, "dsprites", arm, "pos_r2", x) for x in range(1, depth + 1)]
            ys = [_mean(d, "dsprites", arm, "acc", x) for x in range(1, depth + 1)]
            ax.plot(xs, ys, marker="o", label=arm, lw=2.0 if fam == SUBJECT else 1.0)
            for i, (x, y) in enumerate(zip(xs, ys, strict=True), start=1):
                ax.annotate(str(i), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("position R^2 (nuisance; lower: discarded)")
        ax.set_ylabel("shape accuracy (class)")
        ax.legend(fontsize=7)
        ax.set_title("dsprites: class up, nuisance down? (numbers: layers)", fontsize=9)
        fig.tight_layout()
        return fig

"""Prediction 4, interpretability, the figures: from the tidy table and the matrices table only.

- ``metrics``: dot-and-whisker per method of the primaries and the main secondaries;
- ``importance``: DCI importance matrices (units x factors) of the figure methods (first seed);
- ``ica_corr``: test |corr| between pre-activations and sources on ica linear;
- ``atlas_<dataset>_<method>``: per unit its incoming weights as an image, its top-9 test inputs,
  its majority label and its purity, starred when the unit is unnameable at m. The test images are the
  run's stored thumbnails (``atlas_thumb``); a run without them gets a one-line note instead.
"""

from __future__ import annotations

import math
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bench.protocol import SUBJECT
from bench.report import plots

FACTORS = ("shape", "scale", "orientation", "pos_x", "pos_y")
PANELS = (
    (
        "mcc",
        {"setting": "ica_linear", "feature": "pre", "corr": "pearson"},
        "MCC, ica linear, pre-activations (primary)",
    ),
    ("dci_d", {"setting": "dsprites_wide"}, "DCI-D, dsprites K = width (primary)"),
    (
        "mcc",
        {"setting": "ica_linear", "feature": "act", "corr": "pearson"},
        "MCC, ica linear, activations (ceiling 0.816)",
    ),
    ("mig", {"setting": "dsprites_wide", "bins": 20}, "MIG (20 bins), dsprites K = width"),
    ("dci_d", {"setting": "dsprites_narrow"}, "DCI-D, dsprites K = 5"),
    ("r2_mean", {"setting": "dsprites_wide"}, "ridge R^2 (pos_x, pos_y, scale), dsprites K = width"),
    ("purity_excess", {"dataset": "mnist5k"}, "purity - permuted, mnist5k"),
    ("purity_excess", {"dataset": "digits"}, "purity - permuted, digits"),
    ("sparse_auroc", {"setting": "real", "k": 1, "dataset": "mnist5k"}, "1-sparse AUROC, mnist5k"),
)


def metrics_figure(df: pd.DataFrame):
    panels = [(plots.select(df, m, w), lab) for m, w, lab in PANELS]
    panels = [(s, lab) for s, lab in panels if len(s)]
    if not panels:
        return None
    n_methods = df["method"].nunique()
    cols = 2
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(10, rows * (0.28 * n_methods + 1.4)), squeeze=False)
    for ax, (sel, lab) in zip(axes.ravel(), panels, strict=False):
        plots.metric_points(sel, sel["metric"].iloc[0], lab, ax)
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    fig.suptitle("P4 metrics per method (mean, 95% CI over seeds, seeds as small dots; subject in red)")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))  # keep the title off the first panel
    return fig


def _matrix(mat: pd.DataFrame) -> np.ndarray:
    out = np.full((int(mat["i"].max()) + 1, int(mat["j"].max()) + 1), np.nan)
    out[mat["i"].to_numpy(), mat["j"].to_numpy()] = mat["value"].to_numpy()
    return out


def heatmaps(matrices: pd.DataFrame, prefix: str, title: str, xlabels):
    sel = matrices[matrices["matrix"].str.startswith(prefix)] if len(matrices) else matrices
    if not len(sel):
        return None
    keys = list(sel.groupby(["matrix", "method"]).groups)
    keys.sort(key=lambda k: (k[0], k[1] != SUBJECT, k[1]))
    fig, axes = plt.subplots(1, len(keys), figsize=(2.3 * len(keys) + 1, 6.5), squeeze=False)
    for ax, (name, method) in zip(axes[0], keys, strict=True):
        g = sel[(sel["matrix"] == name) & (sel["method"] == method)]
        m = _matrix(g)
        im = ax.imshow(m, aspect="auto", cmap="viridis", vmin=0)
        ax.set_title(
            f"{method}\n{name.removeprefix(prefix).strip('_')} s{int(g['seed'].iloc[0])}",
            fontsize=8,
            color=plots.SUBJECT_COLOR if method == SUBJECT else "black",
        )
        ax.set_xticks(
            range(m.shape[1]), list(xlabels)[: m.shape[1]] if xlabels else range(m.shape[1]), rotation=90, fontsize=6
        )
        ax.set_ylabel("unit", fontsize=7)
        ax.grid(False)
        fig.colorbar(im, ax=ax, fraction=0.05)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _thumbnails(get: dict[str, np.ndarray]) -> tuple[dict[int, np.ndarray], tuple[int, int]] | None:
    """The run's stored thumbnails (``atlas_thumb*``, written by the protocol): test row -> image at the
    stored images' full size (nearest-neighbour upsampling), and that size; None for a run without them."""
    if not {"atlas_thumb", "atlas_thumb_index", "atlas_thumb_shape"} <= set(get):
        return None
    th, tw, h, w = (int(v) for v in get["atlas_thumb_shape"][0])
    up = np.ones((h // th, w // tw))
    images = {
        int(i): np.kron(t.reshape(th, tw), up)
        for i, t in zip(get["atlas_thumb_index"][:, 0], get["atlas_thumb"], strict=True)
    }
    return images, (h, w)


def _tile(weight, images: np.ndarray, shape) -> np.ndarray:
    """One unit's tile: its weight image (scaled to [0, 1], 3x size) beside a 3x3 mosaic of its top-9."""
    h, w = shape
    mosaic = np.zeros((3 * h, 3 * w))
    for t, img in enumerate(images[:9]):
        mosaic[(t // 3) * h : (t // 3 + 1) * h, (t % 3) * w : (t % 3 + 1) * w] = img.reshape(h, w)
    lo, hi = mosaic.min(), mosaic.max()
    mosaic = (mosaic - lo) / (hi - lo + 1e-12)
    if weight is None:
        return mosaic
    wimg = weight.reshape(h, w)
    wimg = 0.5 + wimg / (2 * np.abs(wimg).max() + 1e-12)
    big = np.kron(wimg, np.ones((3, 3)))
    return np.concatenate([big, np.full((3 * h, 1), 1.0), mosaic], axis=1)


def atlas(matrices: pd.DataFrame, dataset: str, method: str, max_units: int = 64):
    sel = matrices[(matrices["dataset"] == dataset) & (matrices["method"] == method)]
    get = {n: _matrix(g) for n, g in sel.groupby("matrix") if n.startswith("atlas_")}
    if "atlas_top" not in get:
        return None
    stored = _thumbnails(get)
    if stored is None:
        return None  # a run made before thumbnails were stored: all_figures says so in one line
    thumbs, shape = stored
    top = get["atlas_top"].astype(int)
    unit = get["atlas_unit"]
    weight = get.get("atlas_weight")
    k = min(len(top), max_units)
    cols = 8
    rows = math.ceil(k / cols)
    # one image of k tiles and k text labels on one axes (64 axes per atlas made it the slowest
    # figure of every report: their creation and layout, not the pixels, cost the time)
    tiles = [_tile(None if weight is None else weight[i], [thumbs[int(t)] for t in top[i]], shape) for i in range(k)]
    th, tw = tiles[0].shape
    gap, head = max(2, tw // 16), max(4, th // 4)  # white space between tiles, room for each label
    canvas = np.ones((rows * (th + head), cols * tw + (cols - 1) * gap))
    fig, ax = plt.subplots(figsize=(8.27, 8.0 * canvas.shape[0] / canvas.shape[1] + 0.6))
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        y0, x0 = r * (th + head) + head, c * (tw + gap)
        canvas[y0 : y0 + th, x0 : x0 + tw] = tile
        label = (
            "dead"
            if bool(unit[i, 3])
            else f"u{i}: {int(unit[i, 0])} ({unit[i, 1]:.2f})"
            + (" -" if unit[i, 2] < 0 else "")
            + ("*" if unit.shape[1] > 4 and bool(unit[i, 4]) else "")
        )
        ax.text(x0 + tw / 2, y0 - 1, label, ha="center", va="bottom", fontsize=6)
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    seed = int(sel["seed"].iloc[0])
    what = (
        "weights (grey = 0) | top-9 test inputs" if weight is not None else "top-9 test inputs (no single-layer weight)"
    )
    fig.suptitle(
        f"Feature atlas: {method} on {dataset}, K = {len(top)}, seed {seed}. Per unit: {what}; "
        "title = majority label (purity of its top-m); '-' = negative tail; '*' = fewer than m test rows "
        "above its lowest score (unnameable at m)",
        fontsize=8,
    )
    fig.tight_layout()
    return fig


def all_figures(df: pd.DataFrame, matrices: pd.DataFrame) -> list:
    plots.theme()
    out = []
    fig = metrics_figure(df)
    if fig is not None:
        out.append(("metrics", fig))
    fig = heatmaps(
        matrices,
        "importance_",
        "DCI importance matrices on dsprites (units x factors; orientation reduced modulo symmetry)",
        FACTORS,
    )
    if fig is not None:
        out.append(("importance", fig))
    fig = heatmaps(matrices, "corr_ica_linear", "ica linear: test |corr| of pre-activations (units) with sources", None)
    if fig is not None:
        out.append(("ica_corr", fig))
    if len(matrices):
        at = matrices[matrices["matrix"] == "atlas_top"]
        missing = []
        for (dataset, method), _ in sorted(
            at.groupby(["dataset", "method"]), key=lambda kv: (kv[0][0], kv[0][1] != SUBJECT, kv[0][1])
        ):
            fig = atlas(matrices, dataset, method)
            if fig is not None:
                out.append((f"atlas_{dataset}_{method}", fig))
            else:
                missing.append(f"{method} on {dataset}")
        if missing:
            out.append(
                (
                    "atlas_missing",
                    note_figure(
                        f"Feature atlases not drawn ({', '.join(missing)}): this run stores no thumbnails of the top test "
                        "inputs (made before the protocol recorded them); rerun prediction=interpretability to draw them."
                    ),
                )
            )
    return out


def note_figure(text: str):
    """A one-line note as a strip of a page (what a report shows in place of a figure it cannot draw)."""
    fig = plt.figure(figsize=(8.27, 0.5))
    fig.text(0.02, 0.5, "\n".join(textwrap.wrap(text, 140)), fontsize=7.5, va="center", color="#b00000")
    return fig

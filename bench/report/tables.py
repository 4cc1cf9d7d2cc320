"""A report's verdict tables as text: the frame a reader sees (:func:`verdict_display`), the lines above
the first table (:func:`overall_lines`), plain text for the terminal, and the CSV and LaTeX exports
(:func:`verdicts_csv`, :func:`verdicts_tex`). No drawing here (:mod:`bench.report.build` draws)."""

from __future__ import annotations

from dataclasses import MISSING, fields

import numpy as np
import pandas as pd

from bench.evaluate import families, stats
from bench.protocol import EXPLORATORY, Table

P_LABELS = {"p_t": "p (t)", "p_wilcoxon": "p (Wilcoxon)", "p_perm": "p (perm)", "p_holm": "p (Holm)", "p_wy": "p (WY)"}


def exploratory(profile: str | None) -> bool:
    """Profiles without verdicts (quick, full; a run written before profiles had verdicts too)."""
    return profile is None or profile in EXPLORATORY


def overall_lines(tables: list[Table], profile: str | None) -> list[str]:
    """The lines above a view's first verdict table: the headline and the family counts (confirm),
    or the exploratory line (no verdicts)."""
    first = next((t for t in tables if t.verdict), None)
    if first is None:
        return []
    frames = [t.frame for t in tables if t.is_primary] or [first.frame]
    if exploratory(profile):
        return [families.exploratory_counts(frames, profile or "unknown")]
    word, why = first.headline or ("inconclusive", "")
    return [f"Headline: {word} ({why})", first.counts]


def overall(frame: pd.DataFrame) -> str:
    """The overall line of a verdict frame; fields the frame lacks take their defaults."""
    defaults = {f.name: f.default for f in fields(stats.Comparison) if f.default is not MISSING}
    comps = []
    for _, r in frame.iterrows():
        values = {f: r[f] if f in frame.columns else defaults[f] for f in stats.FIELDS}
        if pd.isna(values.get("n_missing")):
            values["n_missing"] = 0
        if not isinstance(values.get("reason"), str):
            values["reason"] = ""
        comps.append(stats.Comparison(**values))
    return stats.overall_line(comps)


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return "n/a"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.2e}"
        return f"{v:.4g}"
    return str(v)


def _verdict_cell(verdict, na) -> str:
    return f"n/a: {na}" if isinstance(na, str) and na else str(verdict)


def verdict_display(frame: pd.DataFrame, explore: bool = False) -> pd.DataFrame:
    """The columns a reader needs, CI as one cell; ``explore``: no p-value and no verdict column.

    A two-primaries table (``bench.evaluate.families.combine``: no ``mean_diff`` column) keeps its columns,
    without its p and verdict columns when ``explore``."""
    if "mean_diff" not in frame.columns:
        drop = [c for c in frame.columns if explore and ("p_" in c or "verdict" in c)]
        return frame.drop(columns=drop + ["one_primary"], errors="ignore")
    cols = list(frame.columns)
    at_b, at_n = cols.index("baseline"), cols.index("n") if "n" in cols else len(cols)
    lead = [c for c in cols[:at_b] if c not in stats.FIELDS]  # the group columns
    beside = [c for c in cols[at_b:at_n] if c not in stats.FIELDS]  # a view's columns next to the member
    tail = [c for c in cols[at_n:] if c not in stats.FIELDS]  # a view's columns after the statistics
    out = pd.DataFrame({c: frame[c] for c in lead})
    out["baseline"] = frame["baseline"]
    if "family" in frame.columns:
        out["family"] = frame["family"]
    for c in beside:
        out[c] = frame[c]
    out["n"] = frame["n"]
    out["mean diff"] = frame["mean_diff"]
    out["95% CI"] = [f"[{_fmt(a)}, {_fmt(b)}]" for a, b in zip(frame["ci_low"], frame["ci_high"], strict=True)]
    out["d_z"] = frame["effect_size"]
    if "direction" in frame.columns:
        out["direction"] = frame["direction"]
    if not explore:
        for c, label in P_LABELS.items():
            if c in frame.columns:
                out[label] = frame[c]
        na = frame["na"] if "na" in frame.columns else [""] * len(frame)
        out["verdict"] = [_verdict_cell(v, a) for v, a in zip(frame["verdict"], na, strict=True)]
    elif "na" in frame.columns and (frame["na"].fillna("") != "").any():
        out["n/a by design"] = frame["na"].fillna("")
    for c in tail:
        out[c] = frame[c]
    if "under_trained" in frame.columns and frame["under_trained"].fillna(0).sum():
        out["under-trained"] = frame["under_trained"]
    if "n_missing" in frame.columns and frame["n_missing"].fillna(0).sum():
        out["missing"] = frame["n_missing"]
    if "reason" in frame.columns:
        reason = frame["reason"].map(lambda v: v if isinstance(v, str) else "")
        if (reason != "").any():
            out["reason"] = reason
    return out


def format_table(frame: pd.DataFrame) -> str:
    """Plain-text rendering (terminal, README)."""
    return frame.map(_fmt).to_string(index=False) if len(frame) else "(empty)"


TEX_SPECIALS = str.maketrans(
    {
        "\\": r"\textbackslash{}",
        "&": r"\&",
        "%": r"\%",
        "$": r"\$",
        "#": r"\#",
        "_": r"\_",
        "{": r"\{",
        "}": r"\}",
        "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}",
    }
)


def tex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped, for text mode."""
    return str(text).translate(TEX_SPECIALS)


CSV_DROP = ("diffs", "ci_method")


def verdicts_csv(verdicts: list[Table], prediction: str = "", profile: str | None = "confirm") -> str:
    """The verdict tables as one CSV: ``table`` (title), ``role``, ``primary`` (a primary table), then
    the raw frame (``family``, ``p_perm``, ``p_wy``, ``direction`` included); a last ``headline``
    row holds the prediction's headline word and why (confirm) or "exploratory (profile ...)"; an
    exploratory export has no p-value and no verdict column."""
    explore = exploratory(profile)
    frames = []
    for t in verdicts:
        f = t.frame.drop(columns=[c for c in CSV_DROP if c in t.frame.columns])
        if explore:
            f = f.drop(
                columns=[c for c in f.columns if c.startswith("p_") or "p_holm" in c or "p_wy" in c or "verdict" in c]
            )
        f.insert(0, "primary", t.is_primary or t.role == "overall")
        f.insert(0, "role", t.role)
        f.insert(0, "table", t.title)
        frames.append(f)
    rows = [f for f in frames if len(f)] or frames[:1]
    first = next((t for t in verdicts), None)
    if first is not None:
        word, why = ("exploratory", f"profile {profile}: no verdicts") if explore else (first.headline or ("", ""))
        rows.append(
            pd.DataFrame(
                [
                    {
                        "table": "headline",
                        "role": "headline",
                        "primary": True,
                        "prediction": prediction,
                        "headline": word,
                        "reason": why,
                    }
                ]
            )
        )
    return pd.concat(rows, ignore_index=True).to_csv(index=False)


def _tex_cell(v) -> str:
    return "n/a" if v is None or v is pd.NA else tex_escape(_fmt(v))


def verdicts_tex(verdicts: list[Table], prediction: str, run_id: str, profile: str | None = "confirm") -> str:
    """The verdict tables as LaTeX: the headline as a comment line, then one ``table`` per verdict
    table, cells formatted as in the PDF (exploratory: no p-value or verdict column)."""
    explore = exploratory(profile)
    head = (
        f"exploratory (profile {profile}): no verdicts"
        if explore
        else "headline: " + " - ".join(verdicts[0].headline or ("", ""))
        if verdicts
        else ""
    )
    parts = [
        f"% infomax-bench verdict tables: prediction {prediction}, run {run_id}\n"
        f"% {head}\n% needs \\usepackage{{booktabs}}\n"
    ]
    for i, t in enumerate(verdicts, 1):
        shown = verdict_display(t.frame, explore)
        align = "".join(
            "r" if pd.api.types.is_numeric_dtype(shown[c]) and not pd.api.types.is_bool_dtype(shown[c]) else "l"
            for c in shown.columns
        )
        cells = shown.map(_tex_cell)
        cells.columns = [tex_escape(c) for c in shown.columns]
        tabular = cells.to_latex(index=False, escape=False, column_format=align)
        parts.append(
            "\\begin{table}[htbp]\n\\centering\n"
            f"\\caption{{{tex_escape(t.title)}}}\n\\label{{tab:{prediction}-{i}}}\n"
            f"{tabular}\\end{{table}}\n"
        )
    return "\n".join(parts)

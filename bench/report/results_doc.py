"""The numbers of ``docs/results.md``, generated from a published directory so none is typed by hand.

``python -m bench.report.results_doc results/published/confirm-DATE [docs/results.md]`` rewrites, in the
markdown file, every block between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->`` (NAME: a
prediction, ``run`` for the run's provenance, or ``headlines`` for a one-line-per-prediction table) with what :func:`block` derives from the published
``verdicts.csv`` and ``manifest.json``; the prose around the blocks is the author's. ``--check`` exits 1
when a block differs from what the tables give (``tests/test_published.py`` runs it).

Per prediction a block holds the headline, the rows that decide it (the PA members that make it
"contradicted", block "supported", or, for "supported", every PA member), effect sizes with their 95%
intervals and p-values, the members flagged under-trained, n/a cells, and the subject's ablations (AB, a
mechanism question, outside the headline).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pandas as pd

from bench.report.publish import run_seeds

BLOCK = re.compile(r"(<!-- results:(?P<name>[a-z_]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)


def _num(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "n/a"
    if isinstance(v, float) and 0 < abs(v) < 10 ** (-digits):
        return f"{v:.1e}"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _p(v) -> str:
    if v is None or pd.isna(v):
        return "n/a"
    return f"{v:.1e}" if v < 1e-3 else f"{v:.3f}"


def _read(path: Path) -> pd.DataFrame:
    """A verdicts.csv with every column the blocks read (an exploratory export has no p-value or verdict)."""
    v = pd.read_csv(path)
    for c in ("na", "reason", "verdict", "family"):
        v[c] = v[c].map(lambda x: x if isinstance(x, str) else "") if c in v.columns else ""
    for c in ("p_t", "p_perm", "p_holm", "p_wy", "under_trained", "effect_size", "mean_diff", "ci_low", "ci_high"):
        if c not in v.columns:
            v[c] = float("nan")
    v["under_trained"] = v["under_trained"].fillna(0)
    return v


def _rows_table(rows: pd.DataFrame) -> list[str]:
    """A markdown table of verdict rows: member, n, mean d with its 95% CI, d_z, p-values, verdict, flags."""
    out = [
        "| member | n | mean d [95% CI] | d_z | p_t | p_perm | p_holm | p_wy | verdict | under-trained seeds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for _, r in rows.iterrows():
        verdict = f"n/a: {r['na']}" if r["na"] else (r["verdict"] or "-")
        if int(r.get("n", 0) or 0) == 0 and r["reason"]:
            verdict += f" ({r['reason']})"
        ci = f"{_num(r['mean_diff'])} [{_num(r['ci_low'])}, {_num(r['ci_high'])}]"
        out.append(
            f"| {r['baseline']} | {int(r.get('n', 0) or 0)} | {ci} | {_num(r['effect_size'], 2)} | {_p(r.get('p_t'))} "
            f"| {_p(r.get('p_perm'))} | {_p(r.get('p_holm'))} | {_p(r.get('p_wy'))} | {verdict} "
            f"| {int(r.get('under_trained', 0) or 0)} |"
        )
    return out


def _deciding(prims: pd.DataFrame, word: str) -> pd.DataFrame:
    """The PA rows the headline rests on (:func:`bench.evaluate.families.headline`'s rule)."""
    pa = prims[prims["family"] == "PA"]
    word = word.split(" (")[0]
    if word == "contradicted":
        names = set(pa.loc[pa["verdict"] == "contradicted", "baseline"])
    elif word == "inconclusive":
        names = set(pa.loc[pa["verdict"] != "supported", "baseline"]) - set(pa.loc[pa["na"] != "", "baseline"])
    else:
        names = set(pa["baseline"])
    return pa[pa["baseline"].isin(names)]


def block(run: Path) -> str:
    """The generated markdown of one published prediction folder."""
    v = _read(run / "verdicts.csv")
    head = v[v["table"] == "headline"].iloc[0]
    word, why = str(head["headline"]), head["reason"]
    tables = v[v["table"] != "headline"]
    prims = tables[tables["primary"].astype(bool) & (tables["role"] != "overall")]
    lines = [f"**Headline: {word}** ({why}).", ""]
    for title, rows in prims.groupby("table", sort=False):
        pa = rows[rows["family"] == "PA"]
        counts = pa["verdict"].value_counts().to_dict()
        na = int((pa["na"] != "").sum())
        lines += [
            f"*{title}* - PA ({pa['baseline'].nunique()}): "
            + (
                ", ".join(f"{counts.get(w, 0)} {w}" for w in ("supported", "contradicted", "inconclusive"))
                if counts.keys() - {""}
                else "no verdicts (exploratory)"
            )
            + (f", {na} n/a by design" if na else ""),
            "",
        ]
        decide = _deciding(rows, word)
        if len(decide):
            lines += ["Deciding rows:", "", *_rows_table(decide), ""]
        flagged = pa[(pa["under_trained"] > 0) & (pa["under_trained"] >= 0.5 * pa["n"].clip(lower=1))]
        if len(flagged):
            lines += [
                "Flagged under-trained on at least half their seeds: "
                + ", ".join(
                    f"{b} ({int(u)}/{int(n)})" for b, u, n in flagged[["baseline", "under_trained", "n"]].values
                )
                + ".",
                "",
            ]
        ab = rows[rows["family"] == "AB"]
        if len(ab):
            lines += ["Mechanism (AB, the subject's ablations; outside the headline):", "", *_rows_table(ab), ""]
        rest = pa[~pa["baseline"].isin(decide["baseline"])]
        if len(rest):
            lines += [
                "<details><summary>the other PA rows</summary>",
                "",
                *_rows_table(rest),
                "",
                "</details>",
                "",
            ]
    return "\n".join(lines)


def run_block(pub: Path) -> str:
    """The run's provenance: commits, protocol hash, seeds, times, failed jobs, per prediction."""
    lines = [
        "| prediction | commit | protocol | seeds | jobs | read from the cache | failed | segment started | finished |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for d in sorted(p for p in pub.iterdir() if (p / "manifest.json").exists()):
        man = json.loads((d / "manifest.json").read_text())
        config = json.loads((d / "config.json").read_text())
        jobs = man.get("jobs", [])
        failed = [j for j in jobs if j.get("status") not in ("ok", "cached")]
        seeds = run_seeds(config)
        cached = sum(bool(j.get("cached")) for j in jobs)
        lines.append(
            f"| {d.name} | `{man['git_commit'][:10]}` | `{str(man.get('protocol_hash'))[:10]}` | "
            f"{min(seeds)}..{max(seeds)} | {len(jobs)} | {cached} | {len(failed)} | {man.get('started')} | "
            f"{man.get('finished')} |"
        )
    lines += [
        "",
        "A run resumed from its cache writes a new directory per prediction; the published one is the last, so its",
        "times are those of the last segment, and the jobs it read from the cache were trained in earlier ones.",
    ]
    failed = [
        f"- {d.name}: {j['method']} seed {j['seed']} ({j.get('dataset', '')}): {j.get('reason', '')}"
        for d in sorted(pub.iterdir())
        if (d / "manifest.json").exists()
        for j in json.loads((d / "manifest.json").read_text()).get("jobs", [])
        if j.get("status") not in ("ok", "cached")
    ]
    return "\n".join([*lines, "", *(failed or ["No job failed."]), ""])


ORDER = ("pruning", "transfer", "efficiency", "interpretability")


def headlines_block(pub: Path) -> str:
    """One row per published prediction: its headline and the PA members that decide it."""
    lines = ["| prediction | headline | decided by |", "| --- | --- | --- |"]
    dirs = [d for d in pub.iterdir() if (d / "verdicts.csv").exists()]
    for d in sorted(dirs, key=lambda d: (ORDER.index(d.name) if d.name in ORDER else len(ORDER), d.name)):
        v = _read(d / "verdicts.csv")
        head = v[v["table"] == "headline"].iloc[0]
        why = str(head["reason"])
        if len(names := why.split(" by ", 1)[-1].split(", ")) > 5:  # a long list lives in docs/results.md
            pa = v[(v["table"] != "headline") & (v["family"] == "PA")]["baseline"].nunique()
            why = f"{why.split(' by ', 1)[0]} by {len(names)} of {pa} PA members"
        lines.append(f"| {d.name} | **{head['headline']}** | {why} |")
    return "\n".join([*lines, ""])


def render(text: str, pub: Path) -> str:
    """``text`` with every results block regenerated from the published directory ``pub``."""

    def fill(m: re.Match) -> str:
        name = m["name"]
        if name == "run":
            body = run_block(pub)
        elif name == "headlines":
            body = headlines_block(pub)
        else:
            body = block(pub / name)
        return f"{m.group(1)}{body}\n{m.group(4)}"

    return BLOCK.sub(fill, text)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    args = [a for a in args if a != "--check"]
    if not 1 <= len(args) <= 2 or not Path(args[0]).is_dir():
        print("usage: python -m bench.report.results_doc PUBLISHED_DIR [docs/results.md] [--check]", file=sys.stderr)
        return 2
    pub, doc = Path(args[0]), Path(args[1] if len(args) > 1 else "docs/results.md")
    text = doc.read_text()
    if not BLOCK.search(text):
        print(f"{doc}: no <!-- results:NAME --> block", file=sys.stderr)
        return 2
    new = render(text, pub)
    if check:
        if new != text:
            print(f"{doc}: a results block differs from {pub}'s tables (regenerate it)")
            return 1
        print(f"{doc}: every results block is what {pub}'s tables give")
        return 0
    if new != text:
        from bench.results import atomic_write

        atomic_write(doc, new)
    print(f"{doc}: {len(BLOCK.findall(new))} results blocks from {pub}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

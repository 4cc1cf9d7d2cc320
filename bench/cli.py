"""Command line: ``bench run``, ``bench list``, ``bench report``.

Bad input prints one line naming the bad part and the valid choices, exits 2, and writes
nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

USAGE = """usage:
  bench run prediction=NAME [key=value ...]   run a prediction (e.g. bench run prediction=pruning)
  bench list [methods|datasets|predictions] [PATTERN] [format=plain|markdown]
  bench report [RUN_DIR ...] [out=results] [reports=reports]
keys: dataset= methods=[a,b] width= seeds=3|[0,4] epochs= batch_size= device=auto|cpu|cuda
      profile=quick|full out= reports= cache= data.root= data.download= data.split_seed=
      <method>.<field>= (e.g. infomax.lambda_tc=0.5)  <prediction>.<field>="""


class UsageError(Exception):
    pass


def _fail(msg: str) -> int:
    print(f"bench: error: {msg}", file=sys.stderr)
    return 2


def methods_markdown(pattern: str = "*") -> str:
    """The README's methods table: one row per method, sorted by name, ``|`` escaped in cells."""
    from bench.methods import METHODS

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| method | role | what | citation |", "| --- | --- | --- | --- |"]
    for n in METHODS.names(pattern):
        cls = METHODS.get(n)
        lines.append(f"| `{cell(n)}` | {cell(cls.role)} | {cell(cls.describe())} | {cell(cls.citation)} |")
    return "\n".join(lines) + "\n"


def cmd_list(args: list[str]) -> int:
    from bench.data import DATASETS
    from bench.methods import METHODS
    from bench.protocol import PREDICTIONS, VIEWS

    kv = dict(a.split("=", 1) for a in args if "=" in a)
    for k in kv:
        if k != "format":
            raise UsageError(f"unknown key '{k}' (keys: format)")
    fmt = kv.get("format", "plain")
    if fmt not in ("plain", "markdown"):
        raise UsageError(f"format: unknown '{fmt}' (choices: plain, markdown)")
    args = [a for a in args if "=" not in a]
    what = args[0] if args else "all"
    pattern = args[1] if len(args) > 1 else "*"
    if what not in ("all", "methods", "datasets", "predictions"):
        raise UsageError(f"unknown list '{what}' (choices: methods, datasets, predictions)")
    if len(args) > 2:
        raise UsageError(f"unexpected argument '{args[2]}'")
    if fmt == "markdown":
        if what != "methods":
            raise UsageError("format=markdown lists methods only (bench list methods format=markdown)")
        print(methods_markdown(pattern), end="")
        return 0
    if what in ("all", "methods"):
        print("methods:")
        for n in METHODS.names(pattern):
            cls = METHODS.get(n)
            print(f"  {n:16s} [{cls.role}] {cls.describe()}")
            print(f"  {'':16s} cite: {cls.citation}")
            print(f"  {'':16s} defaults: {cls.defaults()}")
    if what in ("all", "datasets"):
        print("datasets:")
        for n in DATASETS.names(pattern):
            doc = (DATASETS.get(n).__doc__ or "").strip().splitlines()
            print(f"  {n:16s} {doc[0] if doc else ''}")
    if what in ("all", "predictions"):
        print("predictions:")
        for n in PREDICTIONS.names(pattern):
            cls, primary = PREDICTIONS.get(n), VIEWS.get(n).verdicts[0]
            print(f"  {n:16s} {cls.describe()}  (primary: {primary.metric}, predicted: subject {primary.direction})")
            import dataclasses

            print(f"  {'':16s} defaults: {dataclasses.asdict(cls.Config())}")
    return 0


def cmd_run(args: list[str]) -> int:
    from bench import report, results
    from bench.config import parse_overrides
    from bench.protocol import PREDICTIONS, VIEWS
    from bench.runner import build_prediction, execute

    pred_tokens = [a for a in args if a.startswith("prediction=")]
    if not pred_tokens:
        raise UsageError(f"missing prediction=NAME (choices: {', '.join(PREDICTIONS.names())})")
    pname = pred_tokens[0].partition("=")[2]
    pcls = PREDICTIONS.get(pname)
    cfg = parse_overrides(args, pcls.Config, pname)
    build_prediction(cfg)  # validates the prediction's own options before anything runs
    run_dir = execute(cfg, ["bench", "run", *args])
    pdf = report.build_report(run_dir, cfg.reports)
    df, _, man = results.read_run(run_dir)
    for t in VIEWS.get(pname)().verdict_tables(df):
        if t.verdict:
            print(f"\n{t.title}\nOverall: {report.overall(t.frame)}")
            print(report.format_table(report.verdict_display(t.frame)))
    print(f"\nresults: {run_dir}\nreport:  {pdf}")
    if "timing" in man:
        from bench.runner import timing_line

        print(f"time:    {timing_line(man['timing'])}")
    return 0


def cmd_report(args: list[str]) -> int:
    from bench import report, results

    kv = dict(a.split("=", 1) for a in args if "=" in a)
    for k in kv:
        if k not in ("out", "reports"):
            raise UsageError(f"unknown key '{k}' (keys: out, reports)")
    out, reports_dir = Path(kv.get("out", "results")), kv.get("reports", "reports")
    runs = [Path(a) for a in args if "=" not in a]
    for r in runs:
        if not (r / "manifest.json").exists():
            raise UsageError(f"'{r}' is not a run directory (no manifest.json)")
    if not runs:
        if out.is_dir():
            runs = [p for d in sorted(out.iterdir()) if d.is_dir() and (p := results.latest_run(out, d.name))]
        if not runs:
            raise UsageError(f"no runs under '{out}' (run one with: bench run prediction=NAME)")
    for r in runs:
        print(f"{r} -> {report.build_report(r, reports_dir)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from bench.catalog import load_all
    from bench.config import ConfigError
    from bench.data import DataNotFoundError
    from bench.registry import UnknownNameError

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    load_all()
    cmd, rest = argv[0], argv[1:]
    commands = {"run": cmd_run, "list": cmd_list, "report": cmd_report}
    if cmd not in commands:
        return _fail(f"unknown command '{cmd}' (choices: {', '.join(commands)})")
    try:
        return commands[cmd](rest)
    except (UsageError, ConfigError, UnknownNameError, DataNotFoundError) as e:
        return _fail(str(e).strip("'\""))
    except KeyboardInterrupt:
        print("\nbench: interrupted; finished jobs are cached and a rerun resumes from them", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

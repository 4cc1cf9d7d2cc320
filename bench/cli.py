"""Command line: ``bench run``, ``bench plan``, ``bench list``, ``bench report``, ``bench perf``.

Bad input prints one line naming the bad part and the valid choices, exits 2, and writes
nothing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bench.arguments import UsageError, bad_input_errors, configs, own_tokens
from bench.kinds import kind_of

USAGE = """usage:
  bench run prediction=NAME [key=value ...]   run a prediction (e.g. bench run prediction=pruning)
  bench run prediction=all [key=value ...]    the four predictions, encoders shared, + reports/summary.pdf
  bench run question=NAME|all [key=value ...] the essay's open questions, + reports/questions.pdf
  bench list [methods|datasets|predictions] [PATTERN] [format=plain|markdown]
  bench report [RUN_DIR ...] [out=results] [reports=reports] [workers=auto|N]
  bench rerun RUN_DIR [key=value ...]         rerun a run's recorded command and compare the tables
  bench plan prediction=NAME|all [key=value ...]  what a run would train and measure, and its estimated time
                                              (question=NAME|all likewise)
  bench perf [device=auto|cpu|cuda] [e2e=true] [table=true]   trainer throughput, batched seeds, cost table
  bench publish [out=results] [dest=results/published/PROFILE-DATE] [all=true]   publish the latest runs
  bench verify DIR                            re-derive a published directory's verdicts from its tidy tables
keys: dataset= methods=[a,b] width= seeds=3|[0,4] epochs= batch_size= device=auto|cpu|cuda
      profile=quick|full|confirm out= reports= cache= threads= workers=auto|N
      executor=local|dask|slurm executor.address=tcp://HOST:PORT executor.partition= executor.gpus_per_job=
      executor.cpus_per_job= executor.time_min= executor.cluster=slurm|local executor.folder=
      data.root= data.download= data.split_seed=
      <method>.<field>= (e.g. infomax.lambda_tc=0.5)  <prediction>.<field>= (e.g. pruning.fractions=[0.1,0.5])"""


def _fail(msg: str) -> int:
    print(f"bench: error: {msg}", file=sys.stderr)
    return 2


def methods_markdown(pattern: str = "*") -> str:
    """The methods table of docs/methods.md: one row per method, sorted by name, ``|`` escaped in cells."""
    from bench.train.methods import METHODS

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| method | role | what | citation |", "| --- | --- | --- | --- |"]
    for n in METHODS.names(pattern):
        cls = METHODS.get(n)
        lines.append(f"| `{cell(n)}` | {cell(cls.role)} | {cell(cls.describe())} | {cell(cls.citation)} |")
    return "\n".join(lines) + "\n"


def cmd_list(args: list[str]) -> int:
    from bench.data import DATASETS
    from bench.protocol import PREDICTIONS, VIEWS
    from bench.syntax import key_values
    from bench.train.methods import METHODS

    kv, args = key_values(args, ("format",), positional=True)
    fmt = kv.get("format", "plain")
    if fmt not in ("plain", "markdown"):
        raise UsageError(f"format: unknown '{fmt}' (choices: plain, markdown)")
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
            cls, primary = PREDICTIONS.get(n), VIEWS.get(n)().primary
            print(f"  {n:16s} {cls.describe()}  (primary: {primary.metric}, predicted: subject {primary.direction})")
            import dataclasses

            print(f"  {'':16s} defaults: {dataclasses.asdict(cls.Config())}")
    return 0


def _print_verdicts(pname: str, run_dir: Path, pdf: Path, primary_only: bool = False) -> None:
    from bench import results
    from bench.protocol import VIEWS
    from bench.report import build as report

    df, config, _ = results.read_run(run_dir)
    profile = config.get("profile")
    explore = report.exploratory(profile)
    view = VIEWS.get(pname)()
    if view.kind == "question":  # estimates and an answer, no verdict tables
        view.profile = profile
        print(f"\n{view.question}\nanswer: {view.answer(df)}\n\nresults: {run_dir}\nreport:  {pdf}")
        return
    tables = view.verdict_tables(df, secondaries=not primary_only)
    print("\n" + "\n".join(report.overall_lines(tables, profile)))
    for t in tables:
        if t.verdict and not (primary_only and t.role == "secondary"):
            print(f"\n{t.title}")
            if not primary_only:
                print(report.format_table(report.verdict_display(t.frame, explore)))
    print(f"\nresults: {run_dir}\nreport:  {pdf}")


def _time_line(run_dir: Path) -> None:
    from bench import results
    from bench.engine.scheduler import timing_line

    _, _, man = results.read_run(run_dir)
    if "timing" in man:
        print(f"time:    {timing_line(man['timing'])}")


def cmd_run(args: list[str]) -> int:
    import time

    from bench.engine.plan import announce, versus, wall_versus
    from bench.engine.runner import execute, execute_all
    from bench.report import build as report

    cfgs = configs(args)
    made = announce(cfgs)
    t0 = time.perf_counter()
    first = next(iter(cfgs.values()))
    asks = kind_of(first.prediction) == "question"
    if len(cfgs) > 1:  # prediction=all, question=all
        run_dirs = execute_all(cfgs, ["bench", "run", *args])
        wall = time.perf_counter() - t0
        for name, run_dir in zip(cfgs, run_dirs, strict=True):
            print(f"\n=== {name} ===")
            _print_verdicts(name, run_dir, report.build_report(run_dir, cfgs[name].reports), primary_only=True)
            _time_line(run_dir)
            versus(made, name, run_dir)
        _questions(first.out, first.reports) if asks else _summary(first.out, first.reports)
        wall_versus(made, wall)
        return 0
    ((pname, cfg),) = cfgs.items()
    run_dir = execute(cfg, ["bench", "run", *args])
    wall = time.perf_counter() - t0
    _print_verdicts(pname, run_dir, report.build_report(run_dir, cfg.reports))
    if asks:
        _questions(cfg.out, cfg.reports)
    _time_line(run_dir)
    versus(made, pname, run_dir)
    wall_versus(made, wall)
    return 0


def cmd_plan(args: list[str]) -> int:
    """``bench plan prediction=NAME|all [key=value ...]``: the run's jobs, measurements and cost."""
    from bench.engine.plan import estimate_lines, header_lines, make_plan, table_lines

    cfgs = configs(args, "plan")
    if not cfgs:
        raise UsageError("missing prediction=NAME")
    t0 = time.perf_counter()
    plan = make_plan(cfgs)
    print("\n".join([*header_lines(plan, cfgs), *table_lines(plan), *estimate_lines(plan)]))
    print(f"(planned in {time.perf_counter() - t0:.1f} s, nothing trained)", file=sys.stderr)
    return 0


def cmd_perf(args: list[str]) -> int:
    from bench.engine.perf import cmd_perf as perf

    return perf(args)


def _summary(out, reports_dir) -> None:
    from bench.report.summary import build_summary

    _print_summary(build_summary(out, reports_dir))


def _questions(out, reports_dir) -> None:
    from bench.report.questions import build_questions

    made = build_questions(out, reports_dir)
    if made is not None:
        print(f"\nquestions: {made}")


def _print_summary(made) -> None:
    if made is not None:
        pdf, md = made
        print(f"\nsummary: {pdf}\n         {md}")


def cmd_rerun(args: list[str]) -> int:
    """Rerun a run directory's recorded command; compare its table with the original's."""
    from bench import results

    dirs = [a for a in args if "=" not in a]
    if len(dirs) != 1:
        raise UsageError("usage: bench rerun RUN_DIR [key=value ...]")
    run_dir = Path(dirs[0])
    if not (run_dir / "manifest.json").exists():
        raise UsageError(f"'{run_dir}' is not a run directory (no manifest.json)")
    df0, config, man = results.read_run(run_dir)
    argv = (man.get("rerun") or {}).get("argv") or man.get("command", "").split()
    if argv[:2] != ["bench", "run"]:
        raise UsageError(f"'{run_dir}' records no bench run command")
    tokens = argv[2:]
    pred = config.get("prediction")
    if any(t == "prediction=all" for t in tokens):  # rerun only this run's prediction
        tokens = [f"prediction={pred}", *own_tokens(tokens, pred)]
    extra = [a for a in args if "=" in a]
    keys = {a.partition("=")[0] for a in extra}
    tokens = [t for t in tokens if t.partition("=")[0] not in keys] + extra
    now = results.git_commit()
    if man.get("git_commit") not in (None, now):
        print(
            f"bench: note: the run was made at commit {man.get('git_commit')}, the code here is {now}", file=sys.stderr
        )
    libs = results.library_versions()
    changed = {k: (v, libs.get(k)) for k, v in man.get("libraries", {}).items() if libs.get(k) != v}
    if changed:
        print(f"bench: note: library versions differ from the run's: {changed}", file=sys.stderr)
    print("rerun: bench run " + " ".join(tokens), flush=True)
    code = cmd_run(tokens)
    if code:
        return code
    out = Path(config.get("out", "results"))
    for t in tokens:
        if t.startswith("out="):
            out = Path(t.partition("=")[2])
    new_dir = results.latest_run(out, pred)
    same, what = results.same_values(df0, results.read_run(new_dir)[0])
    print(f"\nrerun of {run_dir}: {new_dir}\n{'identical values' if same else 'DIFFERENT: ' + what}")
    return 0 if same else 1


def _report_task(kind: str, target: str, reports_dir: str):
    """One unit of ``bench report`` in a worker process: a run's report (its PDF's path) or the
    summary (``build_summary``'s result). A bad-input error comes back as ``("error", message)``, so
    the main process fails with the same one line as the serial path; anything else is raised."""
    try:
        if kind == "report":
            from bench.report import build as report

            return report.build_report(Path(target), reports_dir)
        from bench.report.summary import build_summary

        return build_summary(target, reports_dir)
    except Exception as e:
        if not isinstance(e, bad_input_errors()):  # the loaded modules' bad-input errors (bench.config: not loaded)
            raise
        return ("error", str(e).strip("'\""))


def _workers(value: str, tasks: int) -> int:
    if value == "auto":
        from bench.provenance import usable_cores  # the cores bench run's workers=auto counts (affinity-aware)

        return max(1, min(tasks, usable_cores()))
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise UsageError(f"workers must be auto or a positive integer, got '{value}'")
    return n


def cmd_report(args: list[str]) -> int:
    """Rebuild the reports of the given run directories (default: every prediction's latest run under
    ``out``), then the summary. With ``workers`` > 1 (default: one per CPU, at most one per task) each
    report and the summary are built in their own spawned process; the output is the same."""
    from bench import results
    from bench.syntax import key_values

    kv, positional = key_values(args, ("out", "reports", "workers"), positional=True)
    out, reports_dir = Path(kv.get("out", "results")), kv.get("reports", "reports")
    runs = [Path(a) for a in positional]
    for r in runs:
        if not (r / "manifest.json").exists():
            raise UsageError(f"'{r}' is not a run directory (no manifest.json)")
    if not runs:
        if out.is_dir():
            runs = [p for d in sorted(out.iterdir()) if d.is_dir() and (p := results.latest_run(out, d.name))]
        if not runs:
            raise UsageError(f"no runs under '{out}' (run one with: bench run prediction=NAME)")
    workers = _workers(kv.get("workers", "auto"), len(runs) + 1)
    if workers == 1:
        from bench.report import build as report

        for r in runs:
            print(f"{r} -> {report.build_report(r, reports_dir)}")
        _summary(out, reports_dir)
        _questions(out, reports_dir)
        return 0
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: a fresh interpreter per worker (no forked matplotlib/torch state); results in the serial order
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            # the largest tables first (a longest-first schedule: the biggest report does not start last)
            order = sorted(runs, key=lambda r: -sum(f.stat().st_size for f in r.glob("*.parquet")))
            futures = {r: pool.submit(_report_task, "report", str(r), str(reports_dir)) for r in order}
            summary = pool.submit(_report_task, "summary", str(out), str(reports_dir))
            reports = [futures[r] for r in runs]
            for r, f in zip(runs, reports, strict=True):
                print(f"{r} -> {_task_result(f)}", flush=True)
            _print_summary(_task_result(summary))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    _questions(out, reports_dir)
    return 0


def _task_result(future):
    got = future.result()
    if isinstance(got, tuple) and len(got) == 2 and got[0] == "error":
        raise UsageError(got[1])
    return got


def cmd_publish(args: list[str]) -> int:
    from bench.report.publish import command

    return command(args)


def cmd_verify(args: list[str]) -> int:
    from bench.report.verify import command

    return command(args)


def main(argv: list[str] | None = None) -> int:
    from bench.catalog import load_all

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd not in (
        "report",
        "verify",
        "publish",
    ):  # a report reads tidy tables through the views alone: no method, no baseline (timm, ...)
        load_all()
    commands = {
        "run": cmd_run,
        "list": cmd_list,
        "report": cmd_report,
        "rerun": cmd_rerun,
        "perf": cmd_perf,
        "plan": cmd_plan,
        "verify": cmd_verify,
        "publish": cmd_publish,
    }
    if cmd not in commands:
        return _fail(f"unknown command '{cmd}' (choices: {', '.join(commands)})")
    try:
        return commands[cmd](rest)
    except Exception as e:
        if not isinstance(e, bad_input_errors()):
            raise
        return _fail(str(e).strip("'\""))
    except KeyboardInterrupt:
        print("\nbench: interrupted; finished jobs are cached and a rerun resumes from them", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

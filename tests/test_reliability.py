"""Bookkeeping under stress: SIGKILL mid-sweep, two runs on one cache, stale locks, corrupt
cache entries and dataset files, divergence, repeated runs and ``bench rerun``."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bench import results
from bench.cli import main
from bench.config import RunConfig
from bench.data import load_dataset
from bench.engine.jobs import HOST, EntryLock, JobCache, JobSpec, sweep_orphans

# 5 methods x 2 seeds on digits; about a second a job, so a kill lands mid-sweep
SWEEP = [
    "prediction=probe",
    "dataset=digits",
    "methods=[infomax,ae,dae,vae,pca]",
    "seeds=[0,1]",
    "epochs=25",
    "workers=1",
]


def bench_cmd(out: Path, cache: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench",
        "run",
        *SWEEP,
        f"out={out}",
        f"cache={cache}",
        f"reports={out / 'reports'}",
        *extra,
    ]


def table(out: Path) -> tuple:
    return results.read_run(results.latest_run(out, "probe"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    base = tmp_path_factory.mktemp("ref")
    proc = subprocess.run(bench_cmd(base / "out", base / "cache"), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return table(base / "out")


def entries(cache: Path) -> list[Path]:
    return [d for d in cache.iterdir() if d.is_dir() and not d.name.startswith(".") and (d / "meta.json").exists()]


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".tmp-" in p.name or ".trash-" in p.name]


@pytest.mark.slow
def test_sigkill_mid_sweep_then_rerun_completes_with_the_same_table(uninterrupted, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    proc = subprocess.Popen(bench_cmd(out, cache), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and (not cache.exists() or len(entries(cache)) < 3):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(entries(cache))
    assert 3 <= done < 10, f"the kill should land mid-sweep ({done} of 10 jobs were finished)"
    assert results.latest_run(out, "probe") is None  # no half-written run is visible as a result
    rerun = subprocess.run(bench_cmd(out, cache), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    df, _, man = table(out)
    same, why = results.same_values(uninterrupted[0], df)
    assert same, why
    assert sum(j["cached"] for j in man["jobs"]) >= done  # finished jobs were cache hits
    assert not leftovers(tmp_path)  # no temporary directory a later run could mistake for a result
    assert not list((cache / ".locks").iterdir())  # the killed writer's lock is gone too


def children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_pool_workers_exit_when_the_main_process_is_killed(tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    cmd = [a if a != "workers=1" else "workers=2" for a in bench_cmd(out, cache)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and (not cache.exists() or len(entries(cache)) < 1):
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read()[-2000:]
    workers = children(proc.pid)
    assert len(workers) >= 2, "the pool should be running"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 20
    while time.time() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.2)
    alive = [
        w
        for w in workers
        if Path(f"/proc/{w}").exists()
        and "Z" not in (Path(f"/proc/{w}/stat").read_text().rsplit(")", 1)[1].split()[:1])
    ]
    assert not alive, f"orphaned pool processes still running: {alive}"


@pytest.mark.slow
def test_two_runs_at_once_on_one_cache_train_each_job_once(uninterrupted, tmp_path):
    cache = tmp_path / "cache"
    procs = [
        subprocess.Popen(
            bench_cmd(tmp_path / f"out{i}", cache), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for i in (1, 2)
    ]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errs
    mans = []
    for i in (1, 2):
        df, _, man = table(tmp_path / f"out{i}")
        same, why = results.same_values(uninterrupted[0], df)
        assert same, why
        mans.append(man)
    trained = [j["key"] for m in mans for j in m["jobs"] if not j["cached"]]
    keys = {j["key"] for j in mans[0]["jobs"]}
    assert sorted(trained) == sorted(keys)  # every job trained exactly once, by one of the two
    writers = {json.loads((d / "meta.json").read_text())["written_by"]["pid"] for d in entries(cache)}
    assert len(entries(cache)) == len(keys) and 1 <= len(writers) <= 2
    assert not leftovers(tmp_path)


HOLD = (
    "import sys, time; from pathlib import Path; from bench.engine.jobs import EntryLock; "
    "l = EntryLock(Path(sys.argv[1])); assert l.acquire(); print('locked', flush=True); time.sleep(120)"
)


def hold_lock(path: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


@pytest.mark.slow
def test_a_dead_writers_lock_is_taken_over(tmp_path):
    path = tmp_path / ".locks" / "job.lock"
    holder = hold_lock(path)
    try:
        mine = EntryLock(path)
        assert not mine.acquire()  # held by a live process
        assert mine.holder()["pid"] == holder.pid and mine.holder()["host"] == HOST
    finally:
        holder.kill()
        holder.wait()
    assert path.exists()  # SIGKILL left the file, but not the lock
    assert mine.acquire()
    mine.release()
    assert not path.exists()


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def small_spec(seed: int = 0, method: str = "infomax") -> JobSpec:
    cfg = RunConfig()
    return JobSpec.make(method, cfg.method_config(method), "digits", cfg.data, 8, seed, 2, 128)


@pytest.mark.slow
def test_a_waiting_run_takes_over_when_the_writer_dies(tmp_path, digits):
    cache = JobCache(tmp_path, torch.device("cpu"))
    spec = small_spec()
    holder = hold_lock(cache.lock(spec).path)
    waits: list[dict] = []
    threading.Timer(1.0, holder.kill).start()
    t0 = time.perf_counter()
    enc = cache.get(spec, digits, on_wait=waits.append)
    holder.wait()
    assert time.perf_counter() - t0 >= 1.0 and waits and waits[0]["pid"] == holder.pid
    assert enc.ok and not enc.cached and cache.trained == [spec.key]


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncate_state", "foreign", "other_version", "bad_json", "no_state"])
def test_an_unusable_cache_entry_is_reported_in_one_line_and_retrained(damage, tmp_path, digits):
    warnings: list[str] = []
    cache = JobCache(tmp_path, torch.device("cpu"), warn=warnings.append)
    spec, other = small_spec(0), small_spec(1)
    first = cache.get(spec, digits)
    d = cache.path(spec)
    if damage == "truncate_state":
        data = (d / "state.pt").read_bytes()
        (d / "state.pt").write_bytes(data[: len(data) // 2])
        needle = "checksum"
    elif damage == "foreign":
        cache.get(other, digits)
        for f in ("meta.json", "state.pt"):
            (d / f).write_bytes((cache.path(other) / f).read_bytes())
        needle = "another job"
    elif damage == "other_version":
        meta = json.loads((d / "meta.json").read_text())
        meta["spec"]["libraries"]["torch"] = "1.0.0"
        (d / "meta.json").write_text(json.dumps(meta))
        needle = "identity"
    elif damage == "bad_json":
        (d / "meta.json").write_text((d / "meta.json").read_text()[:40])
        needle = "JSON"
    else:
        (d / "state.pt").unlink()
        needle = "missing"
    again = cache.get(spec, digits)
    assert len(warnings) == 1 and needle in warnings[0] and "\n" not in warnings[0] and str(d) in warnings[0]
    assert not again.cached  # retrained, not trusted
    assert torch.equal(first.features(digits.val.x), again.features(digits.val.x))  # same job, same encoder
    assert cache.load(spec, digits) is not None and len(warnings) == 1  # the new entry is sound


def test_orphans_of_dead_writers_are_swept_and_live_ones_kept(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = tmp_path / f".infomax-0123.tmp-{HOST}-{dead.pid}-abcdef"
    live = tmp_path / f".infomax-4567.tmp-{HOST}-{os.getpid()}-abcdef"
    other_host = tmp_path / f".infomax-89ab.tmp-elsewhere-{dead.pid}-abcdef"
    for p in (orphan, live, other_host):
        p.mkdir()
        (p / "state.pt").write_bytes(b"half")
    JobCache(tmp_path, torch.device("cpu"))
    assert not orphan.exists() and live.exists() and other_host.exists()  # another host's: only when old
    assert sweep_orphans(tmp_path, max_age_s=-1) == [other_host]


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_corrupt_dataset_file_is_a_one_line_error_naming_it(damage, tmp_path, capsys):
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in {"train": 200, "t10k": 50}.items():
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", np.zeros((n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    bad = raw / "train-images-idx3-ubyte"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 3] if damage == "truncated" else b"<html>404 not found</html>" * 50)
    out = tmp_path / "out"
    code = main(
        [
            "run",
            "prediction=probe",
            "dataset=mnist",
            f"data.root={tmp_path / 'data'}",
            "methods=[pca]",
            "seeds=1",
            f"out={out}",
            f"reports={tmp_path / 'rep'}",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and str(bad) in err and "corrupt" in err
    assert not out.exists() and not (tmp_path / "rep").exists()  # nothing half-written


@pytest.mark.slow
def test_a_diverged_subject_is_failed_with_its_reason_and_the_sweep_goes_on(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "run",
            "prediction=probe",
            "dataset=digits",
            "methods=[infomax,pca,ae]",
            "seeds=3",
            "epochs=3",
            "infomax.lr=1e30",
            "workers=1",
            f"out={out}",
            f"reports={tmp_path / 'rep'}",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    df, _, man = table(out)
    failed = df[df["metric"] == "job_failed"]
    assert set(failed["method"]) == {"infomax"} and len(failed) == 3
    assert failed["note"].str.contains("non-finite").all()
    assert {j["status"] for j in man["jobs"] if j["method"] != "infomax"} == {"ok"}  # the sweep went on
    assert "no value in 2" in printed and "missing" in printed  # n = 0 rows, their missing seeds counted
    assert (tmp_path / "rep" / "probe.pdf").stat().st_size > 0  # the report says so too


def test_a_partly_diverged_subject_uses_the_seeds_that_finished():
    from bench.evaluate.verdicts import verdict_from_tidy

    rows = []
    for s in range(3):
        rows.append({"dataset": "d", "method": "pca", "seed": s, "metric": "probe_acc", "value": 0.5 + 0.01 * s})
        if s < 2:
            rows.append(
                {
                    "dataset": "d",
                    "method": "infomax",
                    "seed": s,
                    "metric": "job_failed",
                    "value": 1.0,
                    "note": "non-finite loss term(s) ['loss'] at epoch 1",
                }
            )
        else:
            rows.append({"dataset": "d", "method": "infomax", "seed": s, "metric": "probe_acc", "value": 0.9})
    frame = verdict_from_tidy(pd.DataFrame(rows), "probe_acc", "infomax", "higher", by=("dataset",))
    (r,) = frame.to_dict("records")
    assert r["n"] == 1 and r["verdict"] == "inconclusive" and r["n_missing"] == 2


@pytest.mark.slow
def test_repeated_run_is_identical_and_bench_rerun_reproduces_it(uninterrupted, tmp_path, capsys):
    df0, _, _ = uninterrupted
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert subprocess.run(bench_cmd(out, cache), capture_output=True, timeout=600).returncode == 0
    df1, _, _ = table(out)
    same, why = results.same_values(df0, df1)  # the same command twice, fresh caches: bit-identical
    assert same, why
    run_dir = results.latest_run(out, "probe")
    capsys.readouterr()
    assert (
        main(
            [
                "rerun",
                str(run_dir),
                f"out={tmp_path / 'again'}",
                f"cache={tmp_path / 'cache2'}",
                f"reports={tmp_path / 'rep2'}",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "identical values" in printed and "rerun: bench run prediction=probe" in printed
    assert results.same_values(df0, table(tmp_path / "again")[0])[0]
    # a table that no longer matches its command is reported, exit 1
    doctored = df1.copy()
    doctored.loc[doctored["metric"] == "probe_acc", "value"] += 0.01
    doctored.to_parquet(run_dir / "results.parquet", index=False)
    assert (
        main(
            [
                "rerun",
                str(run_dir),
                f"out={tmp_path / 'again2'}",
                f"cache={tmp_path / 'cache2'}",
                f"reports={tmp_path / 'rep2'}",
            ]
        )
        == 1
    )
    assert "DIFFERENT" in capsys.readouterr().out


def test_a_dying_worker_releases_the_locks_it_holds(tmp_path):
    """The parent-watch of a pool worker calls release_held() before it exits: an entry finished in the last
    moment before a kill must not leave its lock file for the next run (which would find the entry cached
    and never touch the lock)."""
    from bench import storage

    held = [storage.EntryLock(tmp_path / ".locks" / f"k{i}.lock") for i in range(3)]
    assert all(lock.acquire() for lock in held)
    assert len(list((tmp_path / ".locks").iterdir())) == 3
    held[0].release()
    storage.release_held()
    assert not list((tmp_path / ".locks").iterdir()) and all(lock.fd is None for lock in held)
    storage.release_held()  # nothing held: a no-op


def test_a_new_cache_sweeps_lock_files_nobody_holds(tmp_path):
    """A writer SIGKILLed between writing its entry and releasing its lock leaves the lock file (its flock
    dies with it): the next run finds the entry cached and would never touch it. Opening the cache sweeps
    free lock files and keeps held ones."""
    import torch

    from bench import storage
    from bench.engine.jobs import JobCache

    locks = tmp_path / "cache" / ".locks"
    locks.mkdir(parents=True)
    (locks / "dead.lock").write_text('{"pid": 1, "host": "gone"}')  # a killed writer's: no flock on it
    live = storage.EntryLock(locks / "live.lock")
    assert live.acquire()
    try:
        JobCache(tmp_path / "cache", torch.device("cpu"))
        assert sorted(p.name for p in locks.iterdir()) == ["live.lock"]
    finally:
        live.release()

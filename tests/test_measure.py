"""Measurements (a protocol's per-encoder work) are cached, keyed, checked and recorded on failure.

A rerun reads every measurement back (nothing is measured again, the table is identical); a
changed prediction option measures again; an unreadable measurement file is re-measured with one
warning; a measurement that raises becomes a ``measure_failed`` row and the run goes on.
"""

from __future__ import annotations

import pytest

from bench import results
from bench.cli import main
from predictions.probe.protocol import Probe

pytestmark = pytest.mark.slow  # every test here trains or runs a prediction

SWEEP = ["prediction=probe", "dataset=digits", "methods=[infomax,pca]", "seeds=[0,1]", "epochs=2", "workers=1"]


def run(out, *extra: str):
    assert main(["run", *SWEEP, f"out={out}", f"reports={out / 'reports'}", *extra]) == 0
    df, _, man = results.read_run(results.latest_run(out, "probe"))
    return df, man


def measures(out):
    return sorted((out / "cache" / "measures").glob("*.npz"))


def test_rerun_reads_measurements_and_an_option_change_measures_again(tmp_path, capsys):
    out = tmp_path / "o"
    df1, man1 = run(out)
    assert man1["timing"]["measure_seconds"] > 0 and len(measures(out)) == 4
    df2, man2 = run(out)
    same, why = results.same_values(df1, df2)
    assert same, why
    assert man2["timing"]["measure_seconds"] == 0  # every one read back
    assert "measurement cached" in capsys.readouterr().err
    df3, man3 = run(out, "probe.knn_k=5")  # another config: other keys, measured again
    assert man3["timing"]["measure_seconds"] > 0 and len(measures(out)) == 8
    knn = {
        k: d[d.metric == "knn_acc"].sort_values(["method", "seed"])["value"].tolist()
        for k, d in (("k20", df1), ("k5", df3))
    }
    assert knn["k20"] != knn["k5"]


def test_unreadable_measurement_is_measured_again(tmp_path, capsys):
    out = tmp_path / "o"
    df1, _ = run(out)
    victim = measures(out)[0]
    victim.write_bytes(victim.read_bytes()[:40])  # truncated
    capsys.readouterr()
    df2, man2 = run(out)
    err = capsys.readouterr().err
    assert err.count("is unusable") == 1 and victim.name in err
    assert 0 < man2["timing"]["measure_seconds"]
    assert results.same_values(df1, df2)[0]
    assert victim.stat().st_size > 40  # rewritten


def test_a_failing_measurement_is_a_row_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    original = Probe.measure_encoder

    def planted(self, enc, src):
        if enc.spec.method == "pca" and enc.spec.seed == 1:
            raise RuntimeError("planted failure")
        return original(self, enc, src)

    monkeypatch.setattr(Probe, "measure_encoder", planted)
    df, _ = run(tmp_path / "o")
    failed = df[df.metric == "measure_failed"]
    assert list(zip(failed.method, failed.seed, strict=True)) == [("pca", 1)]
    assert "RuntimeError: planted failure" in failed.note.iloc[0]
    ok = df[df.metric == "probe_acc"]
    assert sorted(zip(ok.method, ok.seed, strict=True)) == [("infomax", 0), ("infomax", 1), ("pca", 0)]
    assert "planted failure" in capsys.readouterr().err
    assert len(measures(tmp_path / "o")) == 3  # the failure is not cached: a rerun tries again

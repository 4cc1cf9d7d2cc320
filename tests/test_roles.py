"""Verdict roles are data: the allowed words live in ``bench.protocol.ROLES``, every consumer reads
``Table.role`` / ``Verdict.role`` (a title is for the reader only), and P2's co-primary is titled so."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from bench.protocol import PRIMARY_ROLES, ROLE_LABELS, ROLES, SUBJECT, VIEWS, Table, Verdict
from bench.report.build import overall_lines, verdicts_csv
from bench.results import tidy_frame
from predictions.transfer.view import PRIMARY

SEEDS = (100, 101, 102)


def test_roles_are_one_tuple_and_checked():
    assert set(PRIMARY_ROLES) < set(ROLES) and set(ROLE_LABELS) == set(ROLES)
    with pytest.raises(ValueError, match="role: unknown 'headline'"):
        Verdict("m", "higher", role="headline")
    with pytest.raises(ValueError, match="role: unknown"):
        Verdict("m", "higher", role="overall")  # made by the view, never declared
    with pytest.raises(ValueError, match="role: unknown 'Primary'"):
        Table("t", pd.DataFrame(), role="Primary")


def _transfer_rows() -> pd.DataFrame:
    rows = []
    for i, (m, c) in enumerate(((SUBJECT, 0.6), ("pca", 0.4), ("ae", 0.45), ("raw", 0.3))):
        for s in SEEDS:
            for metric, shift in (("kappa_transfer_mean", 0.0), ("gap_mean", -0.5)):
                rows.append(
                    {
                        "run_id": "r",
                        "prediction": "transfer",
                        "dataset": "mnist5k",
                        "method": m,
                        "width": 64,
                        "seed": s,
                        "metric": metric,
                        "value": c + shift + 0.01 * ((3 * s + i) % 5),
                        **PRIMARY,
                    }
                )
    return tidy_frame(rows)


def test_transfer_titles_its_co_primary_so():
    view = VIEWS.get("transfer")()
    view.profile = "confirm"
    tables = view.verdict_tables(_transfer_rows(), secondaries=False)
    assert [t.role for t in tables] == ["overall", "primary", "co-primary"]
    assert tables[1].title.startswith("Primary: ") and tables[2].title.startswith("Co-primary: ")
    assert [t.is_primary for t in tables] == [False, True, True]


def test_consumers_read_the_role_not_the_title():
    view = VIEWS.get("transfer")()
    view.profile = "confirm"
    tables = view.verdict_tables(_transfer_rows(), secondaries=False)
    renamed = [dataclasses.replace(t, title=f"table {i}") for i, t in enumerate(tables)]
    assert overall_lines(renamed, "confirm") == overall_lines(tables, "confirm")
    for profile in ("confirm", "quick"):
        a = pd.read_csv(pd.io.common.StringIO(verdicts_csv(tables, "transfer", profile)))
        b = pd.read_csv(pd.io.common.StringIO(verdicts_csv(renamed, "transfer", profile)))
        assert a["primary"].tolist() == b["primary"].tolist() and a["role"].tolist() == b["role"].tolist()

"""What a registered protocol and view answer (:data:`bench.protocol.KINDS`): one of the essay's predictions
(verdicts under ``confirm``; ``prediction=all``, the summary) or one of its open questions (estimates and a
one-sentence answer; ``question=all``, ``reports/questions.pdf``; they live in ``questions/<name>/``)."""

from __future__ import annotations

from bench.catalog import load_view
from bench.protocol import VIEWS, _ordered


def questions() -> tuple[str, ...]:
    """The open questions of ``question=all`` and ``reports/questions.pdf``, in order."""
    return _ordered(lambda v: v.kind == "question")


def kind_of(name: str) -> str:
    """One of :data:`bench.protocol.KINDS`: what the registered view ``name`` answers."""
    if name not in VIEWS:
        load_view(name)
    return VIEWS.get(name).kind

"""The essay's open questions, one package each (``questions/<name>/``: ``protocol.py`` and ``view.py``, the
prediction contract of :mod:`bench.protocol` with the view's ``kind = "question"``). They give estimates with
intervals and a one-sentence answer, not verdicts; ``bench run question=NAME`` or ``question=all``."""

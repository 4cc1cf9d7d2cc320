"""The cost table ``bench plan`` prices a run with.

* **training**, per (method, dataset): seconds per seed-epoch trained one seed at a time, with the
  training-set size it was measured on (``n_train``), so a cell that is not in the table is scaled
  from the same method on the same base dataset, then from the method's median per sample-epoch,
  then from the table's median;
* **batched seeds**, per method (or per (method, dataset)): the per-seed speed-up of training S
  seeds as one batched step (:mod:`bench.train.seedbatch`) at S = 3 and S = 10; linear in S from
  (1, 1.0) through both points, flat beyond S = 10;
* **measurements**, per (measurement, method, dataset), the measurement named as
  ``prediction.function`` (:attr:`bench.engine.measure.MeasureTask.name`): seconds per measurement, else
  the median of that measurement, else :data:`MEASURE_DEFAULT`.

A default table ships with the package (``bench/engine/costs_default.json``), made on the reference
machine (a 2-core CPU, ``workers=2``) from real cache entries by ``benchmarks/make_cost_table.py``.
``bench perf table=true`` measures a table on the current device and stores it in the cache
(``CACHE/perf/costs-DEVICE.json``); :func:`load_table` prefers that one for its device.
"""

from __future__ import annotations

import json
import platform
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

DEFAULT = Path(__file__).with_name("costs_default.json")
MEASURE_DEFAULT = 2.0  # seconds: a measurement nothing in the table resembles
SAMPLE_EPOCH_DEFAULT = 2e-5  # seconds per training sample-epoch when the table is empty
BATCH_POINTS = (3, 10)


def device_name(device: torch.device) -> str:
    """The device's model name (GPU name, or the CPU's from /proc/cpuinfo): a cost table is per device."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cell(*parts: Any) -> str:
    return "|".join(str(p) for p in parts)


def base_of(dataset: str) -> str:
    """``mnist5k[0-4]`` and ``mnist5k~digits28`` -> ``mnist5k``: the data a view is cut from."""
    return re.split(r"[\[~]", dataset, maxsplit=1)[0]


@dataclass
class CostTable:
    train: dict[str, dict[str, float]] = field(default_factory=dict)  # "method|dataset" -> epoch_seconds, n_train
    batch: dict[str, dict[str, float]] = field(
        default_factory=dict
    )  # "method" or "method|dataset" -> {"3": x, "10": y}
    measure: dict[str, float] = field(default_factory=dict)  # "prediction.fn|method|dataset" -> seconds
    device: str = ""
    note: str = ""
    source: str = ""  # the file it was read from (not stored)

    # ------------------------------------------------------------------ persistence
    def to_json(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "note": self.note,
            "train": self.train,
            "batch": self.batch,
            "measure": self.measure,
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1, sort_keys=True))
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, path: str | Path) -> CostTable:
        d = json.loads(Path(path).read_text())
        return cls(
            d.get("train", {}),
            d.get("batch", {}),
            d.get("measure", {}),
            d.get("device", ""),
            d.get("note", ""),
            str(path),
        )

    def merged(self, other: CostTable) -> CostTable:
        """This table with ``other``'s batched speed-ups and measurements where it has none. Its
        training cells stay its own: a cell it lacks is scaled from its own device's cells."""
        return CostTable(
            dict(self.train),
            {**other.batch, **self.batch},
            {**other.measure, **self.measure},
            self.device,
            self.note,
            self.source,
        )

    # ------------------------------------------------------------------ lookups
    def epoch_seconds(self, method: str, dataset: str, n_train: int | None = None) -> tuple[float, str]:
        """(seconds per seed-epoch, how it was found: ``table``, ``scaled``, ``method``, ``default``)."""
        hit = self.train.get(cell(method, dataset))
        if hit is not None:  # an epoch costs in proportion to the samples it passes (a pretrain_n subset: fewer)
            measured_n = hit.get("n_train")
            if n_train and measured_n and n_train != measured_n:
                return hit["epoch_seconds"] * n_train / measured_n, "table"
            return hit["epoch_seconds"], "table"
        per_sample = {k: v["epoch_seconds"] / max(v.get("n_train", 1), 1) for k, v in self.train.items()}
        n = n_train or 1
        same_base = [
            s
            for k, s in per_sample.items()
            if k.split("|")[0] == method and base_of(k.split("|", 1)[1]) == base_of(dataset)
        ]
        if same_base:
            return statistics.median(same_base) * n, "scaled"
        mine = [s for k, s in per_sample.items() if k.split("|")[0] == method]
        if mine:
            return statistics.median(mine) * n, "method"
        rate = statistics.median(per_sample.values()) if per_sample else SAMPLE_EPOCH_DEFAULT
        return rate * n, "default"

    def speedup(self, method: str, dataset: str, seeds: int) -> float:
        """Per-seed speed-up of ``seeds`` seeds trained as one batched step (1.0: no gain)."""
        if seeds <= 1:
            return 1.0
        pts = self.batch.get(cell(method, dataset)) or self.batch.get(method)
        if pts is None:
            return 1.0
        xs = [1.0, *(float(s) for s in BATCH_POINTS)]
        ys = [1.0, *(float(pts[str(s)]) for s in BATCH_POINTS)]
        s = min(float(seeds), xs[-1])
        for (x0, y0), (x1, y1) in zip(zip(xs, ys, strict=True), zip(xs[1:], ys[1:], strict=True), strict=False):
            if s <= x1:
                return y0 + (y1 - y0) * (s - x0) / (x1 - x0)
        return ys[-1]

    def measure_seconds(self, name: str, method: str, dataset: str) -> tuple[float, str]:
        """(seconds of one measurement, how it was found: ``table``, ``median``, ``default``)."""
        hit = self.measure.get(cell(name, method, dataset))
        if hit is not None:
            return hit, "table"
        same = [v for k, v in self.measure.items() if k.split("|")[0] == name]
        if same:
            return statistics.median(same), "median"
        return MEASURE_DEFAULT, "default"


def device_slug(device_type: str, name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", f"{device_type}-{name}").strip("-").lower()[:80]


def stored_path(cache_dir: str | Path, device_type: str, name: str) -> Path:
    return Path(cache_dir) / "perf" / f"costs-{device_slug(device_type, name)}.json"


def load_table(cache_dir: str | Path, device) -> CostTable:
    """The table ``bench perf table=true`` stored for this device (completed by the default table
    where it lacks a cell), else the default table of the reference machine."""

    default = CostTable.read(DEFAULT) if DEFAULT.exists() else CostTable(source="none")
    path = stored_path(cache_dir, device.type, device_name(device))
    if path.exists():
        try:
            return CostTable.read(path).merged(default)
        except (OSError, ValueError, KeyError):
            pass  # unreadable: the default table answers
    return default

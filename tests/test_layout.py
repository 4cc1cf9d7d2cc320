"""The layout shows the architecture: no import cycles among the project's modules, and imports go one way
down the flow (docs/architecture.md). Counted from the source with ``ast`` (imports inside functions count;
imports under ``if TYPE_CHECKING:`` are annotations only), so a lazy import cannot hide a cycle.

Count the cycles yourself with ``python -m tests.test_layout``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bench", "predictions", "questions", "baselines")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``path`` imports (``from a import b`` counts ``a.b`` when that is a module, else ``a``)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            node.body = []
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:  # `import a.b.c` of a non-module attribute: its module
                name = name.rpartition(".")[0]
            if name and name != me:
                out.add(name)
    return out


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {m: imports(p, modules) for m, p in modules.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    sys.setrecursionlimit(10_000)

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = cycles(graph())
    assert not found, f"{len(found)} import cycle(s): {found}"


# The flow, bottom to top: a module may import its own layer and the layers before it, never a later one.
LAYERS = (
    ("bench.registry", "bench.storage", "bench.provenance", "bench.syntax"),  # no project imports
    ("bench.data",),
    ("bench.evaluate",),  # probes, metrics, statistics, verdict families: no training, no engine
    ("bench.train",),  # methods contract, losses, the training loops
    ("bench.protocol", "bench.results", "bench.catalog", "bench.kinds"),  # the contracts, tidy tables, registries
    ("bench.config",),
    ("bench.arguments",),  # the command line's words to configs and predictions
    ("bench.report",),  # reads tidy tables: never the engine
    ("bench.engine",),  # runs jobs: never the report
    ("bench.cli", "bench.__main__", "bench.docgen"),
)
PLUGIN_MAY_NOT = {  # plugins are components of the flow, never drivers of it
    "baselines": (
        "predictions",
        "bench.protocol",
        "bench.results",
        "bench.config",
        "bench.report",
        "bench.engine",
        "bench.arguments",
        "bench.cli",
    ),
    "predictions": ("bench.config", "bench.engine", "bench.arguments", "bench.cli"),
    "questions": ("bench.config", "bench.engine", "bench.arguments", "bench.cli"),
}


def layer(module: str) -> int | None:
    if module == "bench":  # the package itself holds only the version
        return 0
    best = None
    for i, names in enumerate(LAYERS):
        for n in names:
            if (module == n or module.startswith(n + ".")) and (best is None or len(n) > best[1]):
                best = (i, len(n))
    return None if best is None else best[0]


def test_every_bench_module_has_a_layer():
    assert [m for m in project_modules() if m.startswith("bench") and layer(m) is None] == []


def test_imports_go_one_way_down_the_flow():
    bad = [
        f"{a} -> {b}"
        for a, bs in graph().items()
        if a.startswith("bench")
        for b in bs
        if b.startswith("bench") and layer(b) > layer(a)
    ]
    assert bad == []


def test_plugins_import_no_driver():
    bad = [
        f"{a} -> {b}"
        for a, bs in graph().items()
        for b in bs
        for pkg, banned in PLUGIN_MAY_NOT.items()
        if a.split(".")[0] == pkg and b.startswith(banned)
    ]
    assert bad == []


def test_loading_every_plugin_loads_no_driver():
    """What the plugins load at run time (not only what they name): registering every method and
    prediction imports neither the engine nor the configuration nor the command line."""
    code = (
        "import sys; from bench.catalog import load_all; load_all(); "
        "print(sorted(m for m in sys.modules if m.startswith(('bench.engine', 'bench.config', 'bench.arguments', "
        "'bench.cli'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


if __name__ == "__main__":
    g = graph()
    found = cycles(g)
    print(f"{len(g)} modules, {sum(map(len, g.values()))} import edges, {len(found)} import cycles")
    for c in found:
        print("  cycle:", " <-> ".join(c))

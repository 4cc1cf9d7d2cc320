"""benchmarks/gpu_check.sh stays runnable where no GPU is lent: its syntax, its commands, its snippets."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench import cli

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"
PROBE = "__no_such_command__"  # the script's own question for the command list


def _commands() -> list[str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert cli.main([PROBE]) == 2
    found = re.search(r"choices: (.*)\)$", err.getvalue().strip())
    assert found, err.getvalue()
    return found.group(1).split(", ")


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash on PATH")
def test_gpu_script_parses():
    out = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr


def test_every_bench_command_it_calls_exists_or_is_guarded():
    text = SCRIPT.read_text()
    real = _commands()
    called = set(re.findall(r"python3 -m bench (\w+)", text)) - {PROBE}
    assert {"perf", "run", "plan"} <= called
    for cmd in called:
        assert cmd in real or re.search(rf"if has_cmd {cmd}\b", text), f"bench {cmd}: not a subcommand, not guarded"
    # the guard reads the command list the way the CLI prints it
    assert f"python3 -m bench {PROBE} 2>&1 | sed -n 's/.*choices: \\(.*\\))$/\\1/p'" in text


def test_its_python_snippets_compile_and_guard_seedbatch():
    snippets = re.findall(r"<<'EOF'[^\n]*\n(.*?)\nEOF\n", SCRIPT.read_text(), flags=re.S)
    assert len(snippets) == 3  # the bit-identity check, the training slice, the CPU-reference comparison
    for src in snippets:
        compile(src, "gpu_check snippet", "exec")
    for src in snippets[:2]:
        assert "from bench.train import seedbatch\nexcept ImportError:" in src
    assert "torch.equal" in snippets[0] and "bit-identical" in snippets[0]


def test_it_writes_only_under_out_and_keeps_a_deadline():
    # the shell, not the python snippets (their heredoc lines stay: they redirect too)
    text = re.sub(r"(<<'EOF'[^\n]*)\n.*?\nEOF\n", "\\1\n", SCRIPT.read_text(), flags=re.S)
    text = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    targets = re.findall(r"(?:\btee(?: -a)?|[^2&]>>?)\s+\"?([^\s\"|;)]+)", text)
    assert targets
    assert all(t.startswith("$OUT") or t in ("/dev/null",) for t in targets), targets
    assert re.findall(r"\bout=\"?([^\s\"]+)", text) and all(
        t.startswith("$OUT") for t in re.findall(r"\bout=\"?([^\s\"]+)", text)
    )
    assert "BUDGET=${BUDGET:-480}" in text and 'timeout "$max"' in text
    assert ".wheels/mlxtend-" in text

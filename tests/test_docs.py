"""The documentation: links that resolve, no references to material outside the repository, and the
protocol page's git hash in every run manifest (docs/protocol.md, tidy results)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from bench import results

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# built from parts so that this file does not contain what it looks for
OLD_REFERENCES = (".." + "/shared", "shared" + "/PROTOCOL")

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+[\"'(][^)]*)?\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", re.M)
HTML = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']*)["']""", re.I)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def links(text: str) -> list[str]:
    """Every link target of a Markdown text (inline, reference definitions, HTML href/src), code excluded."""
    text = CODE_SPAN.sub("", FENCE.sub("", text))
    return [m.group(1) for pat in (INLINE, REFERENCE, HTML) for m in pat.finditer(text)]


def git(*args: str, cwd: Path) -> str:
    out = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def in_git_checkout() -> bool:
    try:
        git("rev-parse", "--git-dir", cwd=ROOT)
    except (OSError, subprocess.CalledProcessError):
        return False
    return True


def test_the_link_parser_finds_links_and_skips_code():
    text = (
        'see [the protocol](docs/protocol.md) and ![fig](reports/a.png "a")\n[ref]: bench/evaluate/stats.py\n'
        '<a href="tests/x.py">x</a> `[no](in/code.md)`\n```\n[no](fenced.md)\n```\n'
    )
    assert links(text) == ["docs/protocol.md", "reports/a.png", "bench/evaluate/stats.py", "tests/x.py"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves_to_a_file_in_the_repository_without_an_anchor(doc):
    bad = []
    for target in links(doc.read_text(encoding="utf-8")):
        if SCHEME.match(target) or target.startswith("//"):
            continue  # http(s), mailto: not checked here
        if "#" in target:
            bad.append(f"{target}: an anchor (headings get renamed; link the file)")
            continue
        path = (doc.parent / target).resolve()
        if not path.is_relative_to(ROOT):
            bad.append(f"{target}: outside the repository")
        elif not path.exists():
            bad.append(f"{target}: no such file")
    assert not bad, f"{doc.relative_to(ROOT)}: {bad}"


def test_the_docs_never_point_at_material_outside_the_repository():
    for doc in DOCS[1:]:
        text = doc.read_text(encoding="utf-8")
        assert not [r for r in OLD_REFERENCES if r in text], doc


def test_no_tracked_file_refers_to_the_old_shared_folder():
    if not in_git_checkout():
        pytest.skip("not a git checkout")
    hits = []
    for name in git("ls-files", "-z", cwd=ROOT).split("\0"):
        path = ROOT / name
        if not name or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8000]:
            continue  # binary
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        hits += [f"{name}: {r}" for r in OLD_REFERENCES if r in text]
    assert not hits, hits


# ---------------------------------------------------------------------------------- the manifest
@pytest.fixture
def repo(tmp_path):
    """A git repository with docs/protocol.md committed twice; returns (root, first commit, second commit)."""
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    git("init", "-q", cwd=root)
    doc = root / "docs" / "protocol.md"
    doc.write_text("# protocol v1\n")
    git("add", "docs/protocol.md", cwd=root)
    git("commit", "-q", "-m", "v1", cwd=root)
    first = git("rev-parse", "HEAD", cwd=root)
    doc.write_text("# protocol v2\n")
    git("commit", "-q", "-am", "v2", cwd=root)
    return root, first, git("rev-parse", "HEAD", cwd=root)


def test_protocol_hash_is_the_committed_blob_and_dirty_says_whether_the_copy_differs(repo):
    root, first, second = repo
    doc = root / "docs" / "protocol.md"
    blob = git("hash-object", "docs/protocol.md", cwd=root)
    assert results.protocol_version(root=root) == (blob, False)
    assert results.protocol_version(second + "+dirty", root=root) == (blob, False)  # git_commit's suffix
    old = results.protocol_version(first, root=root)  # the run's commit, not today's HEAD
    assert old == (git("rev-parse", f"{first}:docs/protocol.md", cwd=root), True) and old[0] != blob
    doc.write_text("# protocol v2, edited\n")
    assert results.protocol_version(root=root) == (blob, True)
    doc.unlink()
    assert results.protocol_version(root=root) == (blob, True)


def test_outside_a_git_checkout_the_protocol_hash_is_none(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "protocol.md").write_text("# protocol\n")
    assert results.protocol_version(root=tmp_path) == (None, None)
    assert results.protocol_version("unknown", root=tmp_path) == (None, None)


def test_the_manifest_records_this_checkouts_protocol_hash():
    if not in_git_checkout():
        pytest.skip("not a git checkout")
    man = results.manifest("cpu", results.now(), [], argv=["bench"])
    try:
        expected = git("rev-parse", "--verify", "--quiet", f"HEAD:{results.PROTOCOL_DOC}", cwd=ROOT)
    except subprocess.CalledProcessError:
        expected = None  # not committed yet
    assert man["protocol_hash"] == expected
    changed = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", results.PROTOCOL_DOC], cwd=ROOT).returncode
    if expected is None:
        assert man["protocol_dirty"] == (ROOT / results.PROTOCOL_DOC).is_file()
    else:
        assert man["protocol_dirty"] == bool(changed)

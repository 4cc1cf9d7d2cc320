"""Files several processes share: owner-named temporary files, atomic renames, entry locks.

Every writer (a cache entry, a run directory, a table, a report) writes under a temporary name
that carries its host and pid (``.NAME.tmp-HOST-PID-RAND``) and renames it into place, so a
reader never sees half a file and a killed writer's leftovers can be told apart from a live
writer's and swept (:func:`sweep_orphans`). :class:`EntryLock` gives one writer per cache entry.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

HOST = socket.gethostname()
POLL_SECONDS = 0.25  # how often a waiting process looks for the entry or the lock


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _tmp_name(final: Path) -> str:
    """``.KEY.tmp-HOST-PID-RAND``: the owner is in the name, so a dead writer's leftovers can be swept."""
    return f".{final.name}.tmp-{HOST}-{os.getpid()}-{os.urandom(3).hex()}"


def sweep_orphans(folder: Path, max_age_s: float = 24 * 3600) -> list[Path]:
    """Remove temporary directories/files left in ``folder`` by a killed writer: ours on this
    host whose process is dead, or another host's older than ``max_age_s``. Returns what went."""
    gone = []
    if not folder.is_dir():
        return gone
    for p in folder.iterdir():
        if not p.name.startswith(".") or (".tmp-" not in p.name and ".trash-" not in p.name):
            continue
        try:
            host, pid = p.name.rsplit(".tmp-" if ".tmp-" in p.name else ".trash-", 1)[1].rsplit("-", 2)[:2]
            pid_i = int(pid)
        except ValueError:
            continue
        try:
            old = time.time() - p.stat().st_mtime > max_age_s
        except FileNotFoundError:
            continue
        if (host == HOST and not pid_alive(pid_i)) or (host != HOST and old):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            gone.append(p)
    return gone


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write one file through a temporary sibling (its owner in the name: a killed writer's leftover
    is swept) renamed into place: a reader sees the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / _tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_dir_write(final: Path, files: dict[str, bytes]) -> None:
    """Write all files into a temporary sibling directory, then rename it into place (an existing
    entry, e.g. a corrupt one being replaced, is first renamed aside so the swap is atomic)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / _tmp_name(final)
    tmp.mkdir()
    try:
        for name, data in files.items():
            with open(tmp / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        if final.exists():
            trash = final.parent / _tmp_name(final).replace(".tmp-", ".trash-")
            os.replace(final, trash)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


_HELD: set[EntryLock] = set()  # the locks this process holds (release_held() drops them on the way out)
_RELEASING = threading.Lock()


def release_held() -> None:
    """Release every lock this process holds: a worker that exits because its run was killed calls it, so
    that an entry it finished just before leaves no lock file behind for a later run to find."""
    for lock in list(_HELD):
        lock.release()


class EntryLock:
    """One writer per cache entry: an exclusive ``flock`` on ``.locks/KEY.lock``.

    The kernel drops the lock when its holder dies (SIGKILL included), so a crashed writer never
    blocks the entry: that is the stale-lock recovery. The file records ``pid``, ``host`` and
    ``since`` for people and for the waiting message. ``flock`` is reliable on local disks and
    NFSv4; on a filesystem without working locks, give each cluster job its own cache entries
    (the keys already differ per job) or a node-local ``cache=``.
    """

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> bool:
        """Try once, without blocking; True when this process now holds the lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        try:  # the file we locked must still be the one at the path (a releaser may have unlinked it)
            same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": HOST, "since": time.time()}).encode())
        self.fd = fd
        _HELD.add(self)
        return True

    def holder(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        with _RELEASING:  # the main thread and a dying worker's watchdog may both release
            if self.fd is None:
                return
            try:
                self.path.unlink(missing_ok=True)
            finally:
                os.close(self.fd)  # closing drops the flock
                self.fd = None
                _HELD.discard(self)


def sweep_locks(folder: Path) -> list[Path]:
    """Remove the lock files nobody holds (a writer killed between writing its entry and releasing its
    lock leaves one: its ``flock`` died with it, its file did not). A held lock is kept; a writer that
    opens a file swept here sees that it is no longer the one at the path and tries again."""
    gone = []
    for p in sorted(folder.glob("*.lock")) if folder.is_dir() else []:
        lock = EntryLock(p)
        if lock.acquire():
            lock.release()
            gone.append(p)
    return gone

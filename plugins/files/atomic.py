"""Atomic file output shared by the file sinks: readers see the previous file or the complete new one, never half.

The sink writes into a hidden partial file beside the target (same folder, hence same filesystem, so the final
rename is atomic) and :meth:`AtomicFile.commit` renames it onto the target. A process killed before the commit
leaves the target untouched; only ``.<name>.<pid>.partial`` remains, which a later run does not reuse because
the pid is part of its name, and deletes once that process is gone.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import glob
import logging
import os
import shutil
from pathlib import Path
from typing import TextIO

log = logging.getLogger("crmsync.files")

#: Large writes amortise syscalls; the sinks already hand over whole batches.
_BUFFER = 1 << 20


class AtomicFile:
    """A text file that replaces ``target`` only when committed.

    Usage: ``handle = AtomicFile(path).open()``, write to ``handle``, then :meth:`commit` (or :meth:`discard`);
    :meth:`prepare` first does the part of the commit a full disk can refuse.
    """

    def __init__(self, target: Path, encoding: str = "utf-8") -> None:
        self.target = target
        self.encoding = encoding
        self.partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        self._file: TextIO | None = None
        #: Whether :meth:`prepare` closed the partial file, which now waits for :meth:`commit`.
        self._prepared = False

    def open(self) -> TextIO:
        """Create the partial file (and the target's folders) and return it for writing."""
        self.target.parent.mkdir(parents=True, exist_ok=True)
        _delete_orphans(self.target)
        # newline="" writes "\n" as is on every OS: JSONL and the csv module both expect to control line endings.
        self._file = open(self.partial, "w", encoding=self.encoding, newline="", buffering=_BUFFER)  # noqa: SIM115
        return self._file

    def prepare(self) -> None:
        """Flush to disk and close: all of :meth:`commit` that a full disk can refuse. On failure the partial
        file is deleted (the target stays as it was) and the error raised."""
        file = self._file
        if file is None:
            if not self._prepared:
                raise RuntimeError(f"{self.partial} is not open (open() was not called, or it was already committed)")
            return
        try:
            file.flush()
            # fsync before the rename: otherwise a power loss can leave the *new* name pointing at empty blocks.
            os.fsync(file.fileno())
            file.close()
        except OSError:  # a full disk: the target stays as it was, and no partial file is left behind
            self.discard()
            raise
        self._file, self._prepared = None, True
        check_renamable(self.target)

    def commit(self) -> None:
        """Rename the (prepared) partial file onto the target; afterwards the target holds everything written."""
        self.prepare()
        try:
            os.replace(self.partial, self.target)
        except OSError:
            self.discard()
            raise
        self._prepared = False
        _fsync_dir(self.target.parent)

    def set_aside(self) -> Path:
        """The run failed: leave the target as it was and keep what was written beside it, as
        the hidden ``.<name>.failed`` (replacing the one an earlier failed run left); returns that path."""
        kept = failed_path(self.target)
        self.target, target = kept, self.target
        try:
            self.commit()
        finally:
            self.target = target
        return kept

    def discard(self) -> None:
        """Close and delete the partial file, leaving the target as it was."""
        if self._file is not None:
            with contextlib.suppress(OSError):  # a full disk may refuse the buffered tail: it is dropped anyway
                self._file.close()
            self._file = None
        self._prepared = False
        with contextlib.suppress(FileNotFoundError):
            self.partial.unlink()


def check_renamable(target: Path) -> None:
    """Refuse, before any sink publishes, what would make the rename onto ``target`` fail: a folder where the
    file goes, or a folder no longer writable (the run made its files there, so something changed it since)."""
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "a folder is where the file would go; move it away", str(target))
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "the folder is no longer writable; cannot replace the file", str(target))


def _delete_orphans(target: Path) -> None:
    """Delete the partial files of ``target`` that killed processes left (their pid is gone). One whose pid
    is running is left alone: another run may be writing it (or the pid was reused, and it goes next time)."""
    for partial in target.parent.glob(f".{glob.escape(target.name)}.*.partial"):
        pid = partial.name[len(target.name) + 2 : -len(".partial")]
        if pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
            with contextlib.suppress(OSError):
                partial.unlink()


def _running(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would send that process a Ctrl-C there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, as another user's process
        return True
    return True


def failed_path(target: Path) -> Path:
    """Where a failed run keeps the records it wrote for ``target``: ``out/created.jsonl`` →
    ``out/.created.jsonl.failed``, hidden so that a reader taking every ``*.jsonl`` does not count it."""
    return target.with_name(f".{target.name}.failed")


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable. Directories cannot be opened for fsync on Windows; skipping is harmless there.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class JournaledFile:
    """Append-per-run output for jobs that keep state: each run writes a part file beside the target, reports
    how far it is durable after every batch (the engine commits that with the batch's deliveries), and merges
    the part into the target when the run ends — by writing ``target + part`` to a temporary file and renaming
    it, so the target still only ever changes whole.

    A *fresh* journal (the state has no checkpoint for the sink: first use, a reset or a new state file) starts
    the target over instead: its merge replaces the target with the part, so a file written under an earlier
    state does not receive every record a second time.

    After a crash — or a failed run, which leaves the target as it was — the next run calls :func:`merge` with
    the last committed checkpoint: the part is cut back to the committed length (dropping records whose delivery
    was never recorded, which the run redoes) and merged, unless the merge had already happened (the target
    then already has ``base + offset`` bytes).
    """

    def __init__(self, target: Path, encoding: str, run_id: int, fresh: bool = False) -> None:
        self.target = target
        self.encoding = encoding
        self.part = target.with_name(f".{target.name}.run{run_id}.part")
        self.fresh = fresh
        self._file: TextIO | None = None
        self.base = 0
        #: The last checkpoint handed out: what the state may have committed.
        self.committed: dict[str, object] | None = None
        #: What :meth:`prepare` readied to replace the target (see :func:`prepare_merge`).
        self._merged: Path | None = None

    def open(self) -> TextIO:
        """Start this run's part file and return it for writing."""
        self.target.parent.mkdir(parents=True, exist_ok=True)
        if self.fresh:  # parts an earlier state left (a failed run's, then a reset) belong to nothing any more
            for stale in self.target.parent.glob(f".{glob.escape(self.target.name)}.run*.part"):
                stale.unlink(missing_ok=True)
        self.base = self.target.stat().st_size if self.target.exists() and not self.fresh else 0
        encoding = continuing(self.encoding, self.target) if self.base else self.encoding
        self._file = open(self.part, "w", encoding=encoding, newline="", buffering=_BUFFER)  # noqa: SIM115
        return self._file

    def checkpoint(self) -> dict[str, object]:
        """Make the part durable and describe it: the token to commit with the batch."""
        file = self._file
        if file is None:
            raise RuntimeError(f"{self.part} is not open")
        file.flush()
        os.fsync(file.fileno())
        offset = os.fstat(file.fileno()).st_size
        self.committed = {"part": str(self.part), "offset": offset, "base": self.base, "merged": False}
        if self.fresh:
            self.committed["fresh"] = True
        return self.committed

    def prepare(self) -> None:
        """Make the part durable, close it and write its merge with the target: all of :meth:`commit` that a full
        disk can refuse. On failure the target stays as it was, and the part as :meth:`abandon` leaves it."""
        if self._file is None:
            return
        token = self.checkpoint()
        self._file.close()
        self._file = None
        check_renamable(self.target)
        self._merged = prepare_merge(token)

    def commit(self) -> dict[str, object]:
        """Merge the (prepared) part into the target; returns the final checkpoint (``merged``)."""
        self.prepare()
        assert self.committed is not None
        return publish_merge(self.committed, self._merged)

    def abandon(self) -> None:
        """The run failed: leave the target as it was. The part stays for the next run to merge up to its last
        committed checkpoint (bytes after it were never recorded as delivered); a part nothing was committed
        from is deleted."""
        if self._file is not None:
            with contextlib.suppress(OSError):  # a full disk may refuse the buffered tail: it is dropped anyway
                self._file.close()
            self._file = None
        if self._merged is not None and self._merged != self.part:
            self._merged.unlink(missing_ok=True)
        if self.committed is None:
            with contextlib.suppress(FileNotFoundError):
                self.part.unlink()


def continuing(encoding: str, target: Path) -> str:
    """The encoding that continues ``target``, written in ``encoding``, without a second byte-order mark: the
    part is appended to the file, and ``utf-8-sig``, ``utf-16`` and ``utf-32`` begin what they write with one."""
    name = codecs.lookup(encoding).name
    if name == "utf-8-sig":
        return "utf-8"
    if name in ("utf-16", "utf-32"):
        with target.open("rb") as file:
            head = file.read(4)
        little = codecs.BOM_UTF32_LE if name == "utf-32" else codecs.BOM_UTF16_LE
        return f"{name}-{'le' if head.startswith(little) else 'be'}"
    return encoding


def merge(token: dict[str, object]) -> dict[str, object]:
    """Append the committed length of a part file to its target, atomically and at most once."""
    return publish_merge(token, prepare_merge(token))


def _part_target(token: dict[str, object]) -> tuple[Path, Path]:
    part = Path(str(token["part"]))
    return part, part.with_name(part.name[1:].rsplit(".run", 1)[0])


def prepare_merge(token: dict[str, object]) -> Path | None:
    """The durable file that replaces a part's target to merge the part (written here when the target's
    content comes first, else the part itself), or None when the target already holds the merge."""
    part, target = _part_target(token)
    offset, base = int(token["offset"]), int(token["base"])  # type: ignore[call-overload]
    if not part.parent.exists():
        # Written on another machine (a CI runner that died; the state lives on, its folder does not): those
        # records were delivered into that machine's file, and there is nothing here to merge.
        log.warning("%s is gone (written on another machine?): not merging it", part)
        return None
    size = target.stat().st_size if target.exists() else 0
    if token.get("fresh"):
        # Replacing the target with the part is idempotent while the part exists; it is deleted only after. A
        # part holding exactly its committed bytes (the usual case) becomes the target by a rename: once it has,
        # the target's size says so, as below.
        if part.exists():
            return part if part.stat().st_size == offset else _write_merged(target, part, offset, keep_target=False)
        if size != offset:
            raise RuntimeError(
                f"{target} changed outside crmsync ({size} bytes; expected {offset}); "
                "reset the job's delivered state to start over"
            )
        return None
    if size == base and (offset or not target.exists()):
        return _write_merged(target, part, offset, keep_target=True)
    if size not in (base, base + offset):
        raise RuntimeError(
            f"{target} changed outside crmsync ({size} bytes; expected {base} or {base + offset}); "
            "reset the job's delivered state to start over"
        )
    return None


def publish_merge(token: dict[str, object], merged: Path | None) -> dict[str, object]:
    """Rename ``merged`` (from :func:`prepare_merge`) onto the part's target and delete the part; returns the
    checkpoint saying the merge is done."""
    part, target = _part_target(token)
    if merged is not None:
        os.replace(merged, target)
        _fsync_dir(target.parent)
    with contextlib.suppress(FileNotFoundError):
        part.unlink()
    return {**token, "merged": True}


def _write_merged(target: Path, part: Path, offset: int, keep_target: bool) -> Path:
    """A durable file beside ``target`` holding (its content if ``keep_target``, then) the first ``offset`` bytes
    of ``part``."""
    merged = target.with_name(f".{target.name}.merge")
    try:
        with open(merged, "wb") as out:
            if keep_target and target.exists():
                with open(target, "rb") as previous:
                    shutil.copyfileobj(previous, out, _BUFFER)
            with open(part, "rb") as new:
                remaining = offset
                while remaining:
                    chunk = new.read(min(_BUFFER, remaining))
                    if not chunk:
                        raise RuntimeError(f"{part} is shorter than its committed length {offset}")
                    out.write(chunk)
                    remaining -= len(chunk)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:  # a full disk: a half-written copy must not linger beside the target
        merged.unlink(missing_ok=True)
        raise
    return merged

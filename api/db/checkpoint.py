"""SQLite's write-ahead log, checkpointed when the writers pause rather than in a commit.

In WAL mode every committed byte is written twice: into the log at commit, and
into the database file by a checkpoint. SQLite's automatic checkpoint runs in
whichever connection commits past `wal_autocheckpoint` pages (1,000 by default),
so with megabytes of results per chunk nearly every chunk's store also copied a
chunk's worth of log into the growing database file and synced it: about half of
a 50,000-run chunk's store (30 of 60 ms of CPU, 2-core machine), paid while the
engine computed the next chunk on the same cores.

So connections checkpoint automatically only past AUTOCHECKPOINT_BYTES of log (a safety
net: a server whose checkpointer is not running), and a server's WalCheckpointer
copies the log once it has been quiet for a moment: after a sweep, between its
bursts of chunks, or while nobody writes. A passive checkpoint never blocks
readers or writers. The log then restarts from its beginning, overwriting pages
the operating system still caches; JOURNAL_SIZE_LIMIT bounds the file kept for that.

A log that is never quiet (a sweep of more than a million runs, or sweeps back to
back) would still reach AUTOCHECKPOINT_BYTES, and SQLite would then copy 256 MB in
the commit of the chunk that crossed it: that chunk's store took 0.3-0.95 s instead
of 40-60 ms, and the engine, which hands over its next chunk only once the last one
is stored, waited for it. So the checkpointer also copies the log while it is being
written once BUSY_BYTES of it are not yet in the database file (read from the log's
index, below), in its own thread at the engine's lowest priority: the copying then
overlaps the engine instead of stopping it. Measured on the 2-core machine,
embedded, zhang2022, 200 steps, three rounds alternating with the previous code:
a 10^6-run sweep submitted as the previous one finished 1.34-1.72 -> 1.21-1.42 s
(its slowest chunk 531-804 -> 252-396 ms), a 4 x 10^6-run sweep 3.23-3.78 ->
2.93-2.98 s, a first sweep of 10^6 runs unchanged (0.87-1.05 against 0.78-1.18 s:
its 182 MB stay below BUSY_BYTES and are copied after it).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
import threading
import time

log = logging.getLogger("betascope.db")

AUTOCHECKPOINT_BYTES = 256 << 20  # wal_autocheckpoint counts pages: this over the page size
JOURNAL_SIZE_LIMIT = 256 << 20  # bytes of log kept after a checkpoint
BUSY_BYTES = 192 << 20  # log not yet copied that is copied even while it is written


class WalCheckpointer:
    """A thread that checkpoints the database's log once nothing has been written to
    it for `quiet` seconds, or once `busy_bytes` of it are not yet in the database file
    (checked every `period` seconds)."""

    def __init__(self, path: str, *, period: float = 0.1, quiet: float = 1.0,
                 busy_bytes: int = BUSY_BYTES):
        self.path, self.period, self.quiet, self.busy_bytes = path, period, quiet, busy_bytes
        self._done_mtime = 0  # the log's mtime when it was last checkpointed whole
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="betascope-checkpoint",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def checkpoint_if_due(self) -> bool:
        """One check; True when it checkpointed the whole log."""
        try:
            st = os.stat(self.path + "-wal")
        except FileNotFoundError:
            return False
        if st.st_mtime_ns == self._done_mtime:
            return False
        if time.time() - st.st_mtime < self.quiet and \
                unbacked_bytes(self.path) < self.busy_bytes:
            return False
        conn = sqlite3.connect(self.path, timeout=5, isolation_level=None)
        try:
            busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            conn.close()
        if busy or copied < frames:  # a reader holds older pages: again next period
            return False
        self._done_mtime = st.st_mtime_ns
        log.debug("checkpointed %d log frames", frames)
        return True

    def _loop(self) -> None:
        from workers.threads import yield_to_engine

        yield_to_engine()  # a checkpoint while a sweep computes copies beside the engine
        while not self._stop.wait(self.period):
            try:
                self.checkpoint_if_due()
            except sqlite3.Error as exc:  # locked or busy for now: the next period tries
                log.warning("checkpoint failed: %r", exc)


def unbacked_bytes(path: str) -> int:
    """Bytes of the log not yet copied into the database file, read from the header of
    the log's index (the `-shm` file; https://www.sqlite.org/walformat.html): the page
    size (u16 at byte 14, 1 meaning 65,536), the frames in the log (mxFrame, u32 at 16)
    and those already copied (nBackfill, u32 at 96), in the machine's byte order. Each
    frame is a page and its 24-byte header. Reading it takes no lock; a header being
    rewritten meanwhile gives a wrong count for one check, which the next corrects."""
    try:
        with open(path + "-shm", "rb") as f:
            head = f.read(100)
    except OSError:
        return 0
    if len(head) < 100:
        return 0
    (page,) = struct.unpack_from("=H", head, 14)
    (frames,) = struct.unpack_from("=I", head, 16)
    (copied,) = struct.unpack_from("=I", head, 96)
    page = 65536 if page == 1 else page
    return max(0, frames - copied) * (page + 24)

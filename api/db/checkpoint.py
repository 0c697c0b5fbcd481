"""SQLite's write-ahead log, checkpointed when the writers pause rather than in a commit.

In WAL mode every committed byte is written twice: into the log at commit, and
into the database file by a checkpoint. SQLite's automatic checkpoint runs in
whichever connection commits past `wal_autocheckpoint` pages (1,000 by default),
so with megabytes of results per chunk nearly every chunk's store also copied a
chunk's worth of log into the growing database file and synced it: about half of
a 50,000-run chunk's store (30 of 60 ms of CPU, 2-core machine), paid while the
engine computed the next chunk on the same cores.

So connections checkpoint automatically only past AUTOCHECKPOINT_BYTES of log (a safety
net: a single sweep of millions of runs, or a server whose checkpointer is not
running), and a server's WalCheckpointer copies the log once it has been quiet
for a moment: after a sweep, between its bursts of chunks, or while nobody
writes. A passive checkpoint never blocks readers or writers. The log then
restarts from its beginning, overwriting pages the operating system still
caches; JOURNAL_SIZE_LIMIT bounds the file kept for that.

Everything here goes through SQLite: the log's size is only stat()ed. A process that
has the database open must not open and close its files (the `-wal`, the `-shm`
index) any other way: closing any descriptor of a file drops all of the process's
POSIX locks on it, SQLite's included. A checkpointer that read the log index's
header with open() did exactly that, and readers of a 10^7-run sweep then met
"database disk image is malformed" and "disk I/O error", and an engine process died.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time

log = logging.getLogger("betascope.db")

AUTOCHECKPOINT_BYTES = 256 << 20  # wal_autocheckpoint counts pages: this over the page size
JOURNAL_SIZE_LIMIT = 256 << 20  # bytes of log kept after a checkpoint


class WalCheckpointer:
    """A thread that checkpoints the database's log once nothing has been written to
    it for `quiet` seconds (checked every `period` seconds)."""

    def __init__(self, path: str, *, period: float = 0.5, quiet: float = 1.0):
        self.path, self.period, self.quiet = path, period, quiet
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

    def checkpoint_if_quiet(self) -> bool:
        """One check; True when it checkpointed the whole log."""
        try:
            st = os.stat(self.path + "-wal")
        except FileNotFoundError:
            return False
        if st.st_mtime_ns == self._done_mtime or time.time() - st.st_mtime < self.quiet:
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
        while not self._stop.wait(self.period):
            try:
                self.checkpoint_if_quiet()
            except sqlite3.Error as exc:  # locked or busy for now: the next period tries
                log.warning("checkpoint failed: %r", exc)

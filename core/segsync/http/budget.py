"""A per-account budget of simultaneous HTTP requests, shared by threads and processes.

Services limit concurrency per *account*, not per client: Mailchimp admits 10 simultaneous
connections per user and answers 429 beyond that, whichever process or connection opened them.
So every request to an account first takes one of the account's ``slots``: a file lock
(``flock``) on one of N slot files in a directory of its own. File locks are per open file, so
threads of one process and separate processes (two connections on one account, a second
``segsync`` started by cron) share the same N slots, and the OS frees the slots of a process
that dies.

The directory is named by a salted hash of the service's host and the account's key, never the
key itself (the salt is random per machine and stays beside the directories). It lives under
``SEGSYNC_HTTP_BUDGET_DIR`` (default: ``segsync-http-budget-<uid>`` in the temp directory).

A request given up after a timeout may still be running on the server, holding a connection
there: :meth:`Slot.abandon` keeps its slot taken for ``hold`` more seconds (until the server
has plausibly finished it), so the client does not open an eleventh connection in its place.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import random
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

POLL_SECONDS = 0.005  # first wait for a free slot; doubles up to MAX_POLL_SECONDS
MAX_POLL_SECONDS = 0.05


def budget_root() -> Path:
    configured = os.environ.get("SEGSYNC_HTTP_BUDGET_DIR")
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"segsync-http-budget-{os.getuid()}"


def _salt(root: Path) -> bytes:
    path = root / "salt"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    # Two processes may race to create it: the first link wins, both then read the winner.
    partial = root / f"salt.{os.getpid()}.{threading.get_ident()}"
    partial.write_bytes(secrets.token_bytes(32))
    try:
        os.link(partial, path)
    except FileExistsError:
        pass
    finally:
        partial.unlink(missing_ok=True)
    return path.read_bytes()


class Slot:
    """One taken slot; released when the request ends, or ``hold`` seconds after it was
    abandoned."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self._hold: float | None = None

    def abandon(self, hold: float) -> None:
        """The request was given up (a read timeout) but may still run on the server."""
        self._hold = hold

    def _end(self) -> None:
        if self._hold:
            timer = threading.Timer(self._hold, self._release)
            timer.daemon = True  # an exiting process frees its locks anyway
            timer.start()
        else:
            self._release()

    def _release(self) -> None:
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()


class HttpBudget:
    """``slots`` simultaneous requests for the account ``(host, key)``, across processes."""

    def __init__(self, host: str, key: str, slots: int, root: Path | None = None) -> None:
        if slots < 1:
            raise ValueError("an HTTP budget needs at least one slot")
        root = root or budget_root()
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        digest = hashlib.sha256(_salt(root) + host.encode() + b"\0" + key.encode()).hexdigest()[:32]
        self.directory = root / digest
        self.directory.mkdir(exist_ok=True, mode=0o700)
        self.slots = slots
        self._paths = [self.directory / f"slot-{i:02d}" for i in range(slots)]
        for path in self._paths:
            path.touch(exist_ok=True)

    @contextmanager
    def slot(self) -> Iterator[Slot]:
        """Wait for a free slot of the account and hold it for the duration of the block."""
        slot = self._take()
        try:
            yield slot
        finally:
            slot._end()

    def _take(self) -> Slot:
        wait = POLL_SECONDS
        while True:
            for path in random.sample(self._paths, len(self._paths)):
                handle = open(path, "rb")
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.close()
                    continue
                return Slot(handle)
            time.sleep(wait * random.uniform(0.5, 1.0))
            wait = min(wait * 2, MAX_POLL_SECONDS)

    def in_use(self) -> int:
        """Slots taken right now, by any process (for tests and diagnostics)."""
        taken = 0
        for path in self._paths:
            with open(path, "rb") as handle:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    taken += 1
                    continue
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return taken

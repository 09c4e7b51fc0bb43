"""The per-account HTTP budget: slots shared by threads and processes, named without the key."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from segsync.http import HttpBudget


def test_threads_never_hold_more_than_the_slots(tmp_path: Path) -> None:
    budget = HttpBudget("http://127.0.0.1:1/3.0", "key-1", 3, root=tmp_path)
    lock = threading.Lock()
    held = peak = 0
    inside = threading.Barrier(3)

    def request() -> None:
        nonlocal held, peak
        with budget.slot():
            with lock:
                held += 1
                peak = max(peak, held)
            try:
                inside.wait(timeout=0.2)  # let three meet inside when they can
            except threading.BrokenBarrierError:
                pass
            with lock:
                held -= 1

    threads = [threading.Thread(target=request) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 3
    assert budget.in_use() == 0


def test_another_process_on_the_same_account_shares_the_slots(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from segsync.http import HttpBudget
        budget = HttpBudget("http://127.0.0.1:1/3.0", "key-1", 2, root=Path({str(tmp_path)!r}))
        with budget.slot(), budget.slot():
            print("holding", flush=True)
            sys.stdin.read()
    """)
    other = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "holding"
        same = HttpBudget("http://127.0.0.1:1/3.0", "key-1", 2, root=tmp_path)
        other_account = HttpBudget("http://127.0.0.1:1/3.0", "key-2", 2, root=tmp_path)
        assert same.in_use() == 2
        assert other_account.in_use() == 0
    finally:
        other.stdin.close()
        other.wait(timeout=30)
    assert same.in_use() == 0  # the OS frees what the process held


def test_an_abandoned_request_keeps_its_slot_for_the_hold(tmp_path: Path) -> None:
    budget = HttpBudget("http://127.0.0.1:1/3.0", "key-1", 2, root=tmp_path)
    released = threading.Event()
    with budget.slot() as slot:
        slot.abandon(0.3)
    assert budget.in_use() == 1  # still counted: the server may be running it
    timer = threading.Thread(target=lambda: (_wait_free(budget), released.set()))
    timer.start()
    timer.join(timeout=30)
    assert released.is_set() and budget.in_use() == 0


def _wait_free(budget: HttpBudget) -> None:
    while budget.in_use():
        threading.Event().wait(0.02)


def test_the_directory_is_named_by_a_salted_hash_never_the_key(tmp_path: Path) -> None:
    key = "0123456789abcdef0123456789abcdef-us1"
    budget = HttpBudget("http://127.0.0.1:1/3.0", key, 1, root=tmp_path)
    names = [p.name for p in tmp_path.rglob("*")]
    assert all(key not in name and "0123456789abcdef" not in name for name in names)
    assert (tmp_path / "salt").stat().st_size == 32
    assert budget.directory.parent == tmp_path
    with pytest.raises(ValueError, match="at least one slot"):
        HttpBudget("h", key, 0, root=tmp_path)

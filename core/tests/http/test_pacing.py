"""RatePacer with requests sent side by side (a connector's imports, list calls, set-up creates)."""

from __future__ import annotations

import threading

from segsync.http import RateLimitHeaders, RatePacer

HEADERS = RateLimitHeaders("x-left", "x-reset", "seconds")


def test_every_request_that_finds_the_window_used_up_waits_for_its_reset() -> None:
    # Three requests sent at once into a used-up window: each waits until it resets (before,
    # the first waiter forgot the window and the other two went straight into a 429).
    now = [10.0]
    sleeps: list[float] = []
    pacer = RatePacer(HEADERS, clock=lambda: now[0], sleep=sleeps.append)
    pacer.after("/contacts", {"x-left": "0", "x-reset": "0.75"})
    callers = [threading.Thread(target=pacer.before, args=("/contacts",)) for _ in range(3)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert sleeps == [0.75, 0.75, 0.75]
    assert pacer.waits == 3
    now[0] += 0.75
    pacer.before("/contacts")  # the window has reset: no wait
    assert pacer.waits == 3


def test_answers_from_one_window_arriving_out_of_order_keep_the_fewest_requests_left() -> None:
    # Answers to requests sent side by side arrive in any order; the one counted earliest (3
    # left) must not hand back the requests the later ones (1 left) show as spent.
    now = [10.0]
    sleeps: list[float] = []
    pacer = RatePacer(HEADERS, clock=lambda: now[0], sleep=sleeps.append)
    for left in ("2", "1", "3"):
        pacer.after("/contacts", {"x-left": left, "x-reset": "0.5"})
    pacer.before("/contacts")  # the one request left
    assert sleeps == []
    pacer.before("/contacts")
    assert sleeps == [0.5]
    # A later window (reset further away than the same window's jitter) replaces it.
    now[0] += 0.5
    pacer.after("/contacts", {"x-left": "9", "x-reset": "1"})
    for _ in range(9):
        pacer.before("/contacts")
    assert sleeps == [0.5]

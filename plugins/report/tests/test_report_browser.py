"""The demo business's report in a real browser: headless Chromium (Debian's ``chromium``
package) driven by Playwright renders the page; its charts and tables hold as many marks and
rows as the figures have, no request leaves the page, and a screenshot is kept.

The browser is required, never skipped: when it is missing or cannot start the test fails
saying what to install (``make test`` installs Debian's chromium when run as root).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from segsync.testing import Project

from .conftest import segsync

CHROMIUM = Path(os.environ.get("SEGSYNC_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as exc:
        pytest.fail(f"the browser test needs Playwright ({exc}): pip install -e '.[test]' (make install does)")
    if not CHROMIUM.exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's package (apt-get update && apt-get install -y "
                    "chromium; `make test` does so as root) or point SEGSYNC_CHROMIUM at a Chromium binary")
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        except Error as exc:
            pytest.fail(f"Chromium at {CHROMIUM} did not start: {exc.message.splitlines()[0]}")
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("demo") / "shop"
    done = segsync(root.parent, "demo", "--dir", str(root), "--contacts", "600", "--seed", "3")
    assert done.returncode == 0, done.stderr
    return Project(root)


def open_page(browser: Any, html: str) -> tuple[Any, list[str]]:
    """A page showing ``html``, every request it tries recorded and refused."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    requests: list[str] = []

    def refuse(route: Any) -> None:
        requests.append(route.request.url)
        route.abort()

    page.route("**/*", refuse)
    page.on("request", lambda request: requests.append(request.url))
    page.set_content(html, wait_until="load")
    return page, requests


def test_the_guard_sees_a_request_a_page_makes(browser: Any) -> None:
    """The check below can fail: a page that loads an image is caught (and gets nothing)."""
    page, requests = open_page(browser, '<img src="http://127.0.0.1:9/pixel.png">')
    assert "http://127.0.0.1:9/pixel.png" in requests
    page.close()


def test_the_demo_report_renders_with_its_charts_and_tables(browser: Any, demo: Project, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    at = datetime.now(timezone.utc).replace(microsecond=0)  # the demo's data is as of now
    done = segsync(demo.root, "report", "--html", str(out), "--as-of", at.isoformat())
    assert done.returncode == 0, done.stderr
    with demo.insights(as_of=at) as view:
        segments = view.segments()
        groups = view.groups()
        history = {s.name: view.history(s.name, last=30) for s in segments}
        pairs = view.overlap()
        consent = view.consent_counts()
        scores = [d for d in view.score_distributions() if d.not_computed is None]
    n = len(segments)
    runs = sum(len(rows) for rows in history.values())
    assert n == 8 and runs == 16  # the demo: 8 segments, each evaluated by its 2 runs

    page, requests = open_page(browser, out.read_text(encoding="utf-8"))
    count = lambda selector: page.locator(selector).count()  # noqa: E731
    assert count("svg.chart") == 1 + len(groups) + n + 1 + 6 + len(scores) + 1
    assert count("#sizes rect.mark") == n
    assert count("#sizes-table tbody tr") == n
    assert count("svg[id^=group-] rect.mark") == sum(1 for g in groups for _, size in g.parts if size)
    assert count("#groups-table tbody tr") == sum(len(g.parts) for g in groups)
    assert count("svg[id^=history-] circle.mark") == runs
    assert count("svg[id^=history-] rect.mark.entries") == runs
    assert count("svg[id^=history-] rect.mark.exits") == runs
    assert count("#history-table tbody tr") == runs
    assert count("#overlap rect.mark") == n * n
    assert count("#overlap-table tbody tr") == len(pairs) == n * (n - 1) // 2
    assert count("svg[id^=kpi-] rect.mark") == 6 * n
    assert count("#performance-table tbody tr") == n
    assert count("#consent rect.mark") == len(consent)
    assert count("#consent-table tbody tr") == len({(c.system, c.basis) for c in consent})
    if scores:
        assert count("svg[id^=score-] rect.mark") == sum(len(d.bins) for d in scores)
    else:
        assert page.locator("#no-scores").inner_text().startswith("No predictive scores")
    # Rendered, not just present: the sizes chart has a visible size, the largest bar is the
    # largest segment's, and the heat map's diagonal holds each segment's size.
    box = page.locator("#sizes").bounding_box()
    assert box is not None and box["width"] > 600 and box["height"] > 100
    widths = page.locator("#sizes rect.mark").evaluate_all("rs => rs.map(r => r.getBBox().width)")
    largest = max(range(n), key=lambda i: segments[i].size)
    assert widths.index(max(widths)) == largest
    cells = page.locator("#overlap text.cell").all_text_contents()
    assert [cells[i * n + i] for i in range(n)] == [f"{s.size:,}" for s in segments]
    assert requests == []
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    page.close()

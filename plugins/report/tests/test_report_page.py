"""``segsync report --html`` on a small store: the exact figures in every table, the charts'
marks, nothing that loads from outside, no address, and clear errors for bad input."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from segsync.testing import Project

from .conftest import segsync


class Tables(HTMLParser):
    """Every table of a page by id: its rows as lists of cell texts (header row included)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = dict(attrs)["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def tables(text: str) -> dict[str, list[list[str]]]:
    parser = Tables()
    parser.feed(text)
    return parser.tables


def svg(text: str, chart_id: str) -> str:
    match = re.search(rf'<svg class="chart" id="{re.escape(chart_id)}".*?</svg>', text, re.S)
    assert match, f"no chart {chart_id}"
    return match.group(0)


def marks(text: str, chart_id: str, css: str = "mark") -> int:
    return len(re.findall(rf'<(?:rect|circle) class="{css}[" ]', svg(text, chart_id)))


def report(project: Project, *args: str) -> str:
    out = project.root / "report.html"
    done = segsync(project.root, "report", "--html", str(out), "--as-of", "2024-03-12T00:00:00Z", *args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Wrote {out} (")
    assert done.stdout.endswith("bytes): 4 segments, as of 2024-03-12 00:00 UTC\n")
    return out.read_text(encoding="utf-8")


def test_every_table_holds_the_exact_figures(small: Project) -> None:
    t = tables(report(small, "--window", "60d"))
    assert t["sizes-table"] == [
        ["segment", "group", "size", "rule", "description"],
        ["openers", "–", "0", "opens(30d) >= 1", "Opened <b>lately</b> & clicked"],
        ["gold", "–", "1", 'attr.tier == "gold"', ""],
        ["active", "engagement", "1", "opens(90d) >= 1", ""],
        ["quiet", "engagement", "2", "(catch-all)", ""],
    ]
    assert t["groups-table"][1:] == [["engagement", "active", "1", "33.3%"],
                                     ["engagement", "quiet (catch-all)", "2", "66.7%"]]
    assert t["history-table"][1:] == [
        ["openers", "1", "2024-02-10 00:00", "1", "+1", "-0"], ["openers", "2", "2024-03-12 00:00", "0", "+0", "-1"],
        ["gold", "1", "2024-02-10 00:00", "1", "+1", "-0"], ["gold", "2", "2024-03-12 00:00", "1", "+0", "-0"],
        ["active", "1", "2024-02-10 00:00", "1", "+1", "-0"], ["active", "2", "2024-03-12 00:00", "1", "+0", "-0"],
        ["quiet", "1", "2024-02-10 00:00", "2", "+2", "-0"], ["quiet", "2", "2024-03-12 00:00", "2", "+0", "-0"],
    ]
    assert t["overlap-table"][1:] == [
        ["openers", "gold", "0", "0.0%", "0.0%", ""],
        ["openers", "active", "0", "0.0%", "0.0%", ""],
        ["openers", "quiet", "0", "0.0%", "0.0%", ""],
        ["gold", "active", "1", "100.0%", "100.0%", "both sent to upload"],
        ["gold", "quiet", "0", "0.0%", "0.0%", ""],
        ["active", "quiet", "0", "0.0%", "0.0%", "exclusive (same group)"],
    ]
    # 60 days before Mar 12 reach back to Jan 12: ann's 4 sends, open, click and order (120);
    # bo's 2 sends and bounce; cy's opt-out (Feb 3) is an unsubscribe of a quiet member.
    assert t["performance-table"] == [
        ["segment", "members", "sends", "open rate", "click rate", "conversion rate", "unsubscribe rate",
         "bounce rate", "revenue per email"],
        ["openers", "0", "0", "0.0%", "0.0%", "0.0%", "0.0%", "0.0%", "0.00"],
        ["gold", "1", "4", "25.0%", "25.0%", "25.0%", "0.0%", "0.0%", "30.00"],
        ["active", "1", "4", "25.0%", "25.0%", "25.0%", "0.0%", "0.0%", "30.00"],
        ["quiet", "2", "2", "0.0%", "0.0%", "0.0%", "50.0%", "50.0%", "0.00"],
    ]
    assert t["consent-table"] == [
        ["system", "view", "subscribed", "pending", "none", "unsubscribed", "cleaned", "complained", "total"],
        ["shop", "reported", "2", "0", "0", "1", "0", "0", "3"],
        ["upload", "holds", "2", "0", "0", "0", "0", "0", "2"],
        ["policy default", "effective", "2", "0", "0", "1", "0", "0", "3"],
    ]
    assert "scores-table" not in t


def test_runs_limits_the_history_to_the_latest_runs(small: Project) -> None:
    text = report(small, "--runs", "1")
    assert [row[:2] for row in tables(text)["history-table"][1:]] == [
        ["openers", "2"], ["gold", "2"], ["active", "2"], ["quiet", "2"]]
    assert marks(text, "history-0", "mark size") == 1
    zero = segsync(small.root, "report", "--html", str(small.root / "r.html"), "--runs", "0")
    assert zero.returncode == 2 and "Invalid value for '--runs': 0 is not in the range x>=1" in zero.stderr


def test_charts_have_one_mark_per_figure(small: Project) -> None:
    text = report(small)
    assert marks(text, "sizes") == 4
    assert marks(text, "group-0") == 2
    assert marks(text, "overlap") == 16  # 4 x 4 cells
    assert svg(text, "overlap").count('fill="url(#hatch)"') == 2  # active/quiet, both ways
    for k in range(4):  # two runs per segment: a size point, an entries and an exits bar each
        assert (marks(text, f"history-{k}", "mark size"), marks(text, f"history-{k}", "mark entries"),
                marks(text, f"history-{k}", "mark exits")) == (2, 2, 2)
    for kpi in ("open_rate", "click_rate", "conversion_rate", "unsubscribe_rate", "bounce_rate",
                "revenue_per_email"):
        assert marks(text, f"kpi-{kpi}") == 4
    # One bar part per non-zero status: shop 2 (subscribed, unsubscribed), upload 1, effective 2.
    assert marks(text, "consent") == 5
    assert '<p class="note" id="no-scores">No predictive scores' in text
    # Each chart names itself for assistive technology.
    assert '<title id="sizes-title">Segment sizes</title>' in text


def test_the_page_loads_nothing_escapes_the_users_text_and_holds_no_address(small: Project) -> None:
    text = report(small)
    assert re.findall(r"\b(?:src|href)=\"(?!#)", text) == []  # only in-page links
    assert re.findall(r"https?://[^\"]*", text) == ["http://www.w3.org/2000/svg"] * text.count("<svg class=\"chart\"")
    assert "<script" not in text and "@import" not in text and "url(http" not in text
    assert "default-src 'none'" in text
    assert "Opened &lt;b&gt;lately&lt;/b&gt; &amp; clicked" in text and "<b>lately" not in text
    assert "@" not in text.replace("@media", "")


def test_the_same_figures_give_the_same_bytes(small: Project) -> None:
    first = report(small)
    assert report(small) == first


def test_bad_input_is_named_and_writes_nothing(small: Project, tmp_path: Path) -> None:
    out = small.root / "r.html"
    bad_window = segsync(small.root, "report", "--html", str(out), "--window", "3x")
    assert bad_window.returncode == 2
    assert "Invalid value for --window: '3x' is not a window such as 30d, 24h or 2w" in bad_window.stderr
    no_zone = segsync(small.root, "report", "--html", str(out), "--as-of", "2024-03-12T00:00:00")
    assert no_zone.returncode == 2
    assert "'2024-03-12T00:00:00' has no time zone; add Z or an offset" in no_zone.stderr
    unwritable = segsync(small.root, "report", "--html", str(tmp_path / "missing" / "r.html"))
    assert unwritable.returncode == 1
    assert f"Error: cannot write the report to {tmp_path / 'missing' / 'r.html'}: No such file or directory" in unwritable.stderr
    assert not out.exists()
    fresh = Project.sample(tmp_path / "fresh")
    never_synced = segsync(fresh.root, "report", "--html", str(out))
    assert never_synced.returncode == 2
    assert never_synced.stderr.startswith("error: no store at ")
    assert "run `segsync sync` (or `segsync demo`) first" in never_synced.stderr
    assert "Traceback" not in bad_window.stderr + no_zone.stderr + unwritable.stderr + never_synced.stderr
    assert not out.exists()


def test_predicted_scores_are_shown_as_histograms_and_a_model_not_computed_says_why(
        small: Project, tmp_path: Path) -> None:
    import shutil

    import duckdb

    copy = Project(Path(shutil.copytree(small.root, tmp_path / "scored")))
    # What a scoring plugin leaves in run 2 (the tables segsync.scores documents).
    with duckdb.connect(str(copy.root / "store.duckdb")) as con:
        con.execute("INSERT INTO score_runs (run_id, model, as_of, computed, detail) VALUES "
                    "(2, 'churn_risk', '2024-03-12 00:00:00+00', true, NULL), "
                    "(2, 'purchase_propensity_30d', '2024-03-12 00:00:00+00', false, 'too little history')")
        con.execute("INSERT INTO contact_scores VALUES (2, 'churn_risk', 'ann@example.com', 0.12), "
                    "(2, 'churn_risk', 'bo@example.com', 0.81), (2, 'churn_risk', 'cy@example.com', 0.85)")
    text = report(copy)
    assert marks(text, "score-0") == 10
    assert '<title id="score-0-title">Distribution of churn_risk (run 2)</title>' in text
    assert tables(text)["scores-table"][1:] == [
        ["churn_risk", "2", f"{i / 10:.1f}–{(i + 1) / 10:.1f}", {1: "1", 8: "2"}.get(i, "0")] for i in range(10)]
    assert ("purchase_propensity_30d: no scores in run 2 (as of 2024-03-12 00:00 UTC): too little history."
            in text)
    assert 'id="no-scores"' not in text
    assert "example.com" not in text

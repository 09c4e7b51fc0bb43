"""The HTML page: :class:`~segsync_report.figures.Figures` → charts and tables → one string.

The page loads nothing: styles are inline, charts are inline SVG, there is no script, and a
Content-Security-Policy (``default-src 'none'``) tells the browser to refuse any request the
page might still make. Every chart has a table of the same figures beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from segsync.insights import BASES, STATUS_ORDER, ScoreDistribution

from segsync_report import charts
from segsync_report.figures import Figures

# The per-segment figures of the performance section: key in Performance.to_dict(), label, format.
KPIS = (
    ("open_rate", "Open rate", "percent"),
    ("click_rate", "Click rate", "percent"),
    ("conversion_rate", "Conversion rate", "percent"),
    ("unsubscribe_rate", "Unsubscribe rate", "percent"),
    ("bounce_rate", "Bounce rate", "percent"),
    ("revenue_per_email", "Revenue per email", "money"),
)


def percent(value: float) -> str:
    return f"{value:.1%}"


def money(value: float) -> str:
    return f"{value:,.2f}"


FORMATS = {"percent": percent, "money": money}


@dataclass
class Table:
    """A table's caption, header and rows of display strings (numbers formatted)."""

    id: str
    caption: str
    head: list[str]
    rows: list[list[str]] = field(default_factory=list)
    numeric: set[int] = field(default_factory=set)  # right-aligned columns


def bin_label(dist: ScoreDistribution, i: int) -> str:
    low, high = dist.edges[i]
    if high - low == 1 and low == int(low):
        return f"{int(low)}"
    return f"{low:.1f}–{high:.1f}"


def build(figures: Figures) -> dict[str, Any]:
    """The template's context: each section's charts and tables."""
    sizes = {s.name: s.size for s in figures.segments}
    names = [s.name for s in figures.segments]
    ctx: dict[str, Any] = {"f": figures}

    ctx["sizes_chart"] = charts.bars("sizes", "Segment sizes", [(s.name, s.size) for s in figures.segments],
                                     lambda v: f"{int(v):,}")
    ctx["sizes_table"] = Table("sizes-table", "Segments and their sizes",
                               ["segment", "group", "size", "rule", "description"],
                               [[s.name, s.group or "–", f"{s.size:,}",
                                 " ".join(s.rule.split()) if s.rule else "(catch-all)", s.description]
                                for s in figures.segments], {2})

    ctx["group_charts"] = [
        charts.stacked(f"group-{k}", f"Split of group {g.name}",
                       [(f"{g.name} ({g.total:,})", list(g.parts))], [n for n, _ in g.parts])
        for k, g in enumerate(figures.groups)
    ]
    ctx["groups_table"] = Table("groups-table", "Exclusive groups: each contact is in at most one segment of a group",
                                ["group", "segment", "contacts", "share of group"],
                                [[g.name, n + (" (catch-all)" if n == g.catch_all else ""), f"{size:,}",
                                  percent(size / g.total if g.total else 0.0)]
                                 for g in figures.groups for n, size in g.parts], {2, 3})

    ctx["history_charts"] = [
        (name, charts.history(f"history-{k}", f"{name}: size, entries and exits per run",
                              [(f"#{r.run_id}", r.size, r.entries, r.exits) for r in figures.history[name]]))
        for k, name in enumerate(names) if figures.history[name]
    ]
    ctx["history_table"] = Table("history-table", "Size, entries and exits per run",
                                 ["segment", "run", "as of (UTC)", "size", "entries", "exits"],
                                 [[name, str(r.run_id), f"{r.as_of:%Y-%m-%d %H:%M}", f"{r.size:,}",
                                   f"+{r.entries:,}", f"-{r.exits:,}"]
                                  for name in names for r in figures.history[name]], {1, 3, 4, 5})

    def cell(i: int, j: int) -> tuple[float | None, str, str]:
        a, b = names[i], names[j]
        if i == j:
            return (1.0 if sizes[a] else 0.0), f"{sizes[a]:,}", f"{a}: {sizes[a]:,} members"
        o = figures.overlap_of(a, b)
        assert o is not None
        if o.exclusive:
            return None, "excl.", f"{a} and {b}: exclusive (same group)"
        share = o.share_of_a if o.a == a else o.share_of_b
        return share, f"{o.both:,}", f"{o.both:,} of {a}'s {sizes[a]:,} members ({share:.1%}) are also in {b}"

    ctx["overlap_chart"] = charts.heat_map("overlap", "Overlap between segments (row: share of its members also in the column)",
                                           names, cell) if names else None
    ctx["overlap_table"] = Table("overlap-table", "Overlap of every pair of segments",
                                 ["segment a", "segment b", "both", "% of a", "% of b", "note"],
                                 [[o.a, o.b, f"{o.both:,}", percent(o.share_of_a), percent(o.share_of_b),
                                   "exclusive (same group)" if o.exclusive
                                   else "both sent to " + ", ".join(o.shared_destinations) if o.flagged else ""]
                                  for o in figures.overlap], {2, 3, 4})

    perf = [p.to_dict() for p in figures.performance]
    ctx["kpi_charts"] = [
        charts.bars(f"kpi-{key}", f"{label} per segment, {figures.window} window", [(p["segment"], p[key]) for p in perf],
                    FORMATS[kind], charts.colour(k), width=440.0)
        for k, (key, label, kind) in enumerate(KPIS)
    ]
    ctx["kpi_titles"] = [label for _, label, _ in KPIS]
    ctx["performance_table"] = Table(
        "performance-table", f"Performance of each segment's members over the {figures.window} before the report",
        ["segment", "members", "sends", *(label.lower() for _, label, _ in KPIS)],
        [[p["segment"], f"{p['members']:,}", f"{p['sends']:,}", *(FORMATS[kind](p[key]) for key, _, kind in KPIS)]
         for p in perf], set(range(1, 3 + len(KPIS))))

    ctx["score_charts"] = [
        (d, charts.histogram(f"score-{k}", f"Distribution of {d.model} (run {d.run_id})",
                             [(bin_label(d, i), n) for i, n in enumerate(d.bins)]))
        for k, d in enumerate(figures.scores) if d.not_computed is None
    ]
    ctx["scores_missing"] = [d for d in figures.scores if d.not_computed is not None]
    ctx["scores_table"] = Table("scores-table", "Contacts per score interval",
                                ["model", "run", "interval", "contacts"],
                                [[d.model, str(d.run_id), bin_label(d, i), f"{n:,}"]
                                 for d in figures.scores for i, n in enumerate(d.bins)], {1, 3})

    systems: dict[tuple[str, str], dict[str, int]] = {}
    for c in figures.consent:
        systems.setdefault((c.system, c.basis), {})[c.status] = c.contacts
    statuses = list(STATUS_ORDER) + sorted({c.status for c in figures.consent} - set(STATUS_ORDER))
    rows = sorted(systems.items(), key=lambda kv: (BASES.index(kv[0][1]), kv[0][0]))
    ctx["consent_chart"] = charts.stacked(
        "consent", "Email consent status per system",
        [(f"{system}: {basis}", [(s, counts.get(s, 0)) for s in statuses])
         for (system, basis), counts in rows], statuses) if rows else None
    ctx["consent_table"] = Table("consent-table", "Contacts per email consent status and system",
                                 ["system", "view", *statuses, "total"],
                                 [[system, basis, *(f"{counts.get(s, 0):,}" for s in statuses),
                                   f"{sum(counts.values()):,}"] for (system, basis), counts in rows],
                                 set(range(2, 3 + len(statuses))))
    return ctx


def render(figures: Figures) -> str:
    """The whole page, one self-contained HTML document."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("segsync_report", "templates"),
        autoescape=True,  # names, rules and descriptions are the user's text
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html.j2").render(**build(figures))


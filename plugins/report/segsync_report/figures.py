"""What the report shows, read once from :mod:`segsync.insights`: aggregates only.

:func:`collect` is the only place that talks to the project; the page is rendered from the
:class:`Figures` it returns, so every number on the page is one of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from segsync.insights import (
    ConsentCount,
    GroupSplit,
    HistoryRow,
    Insights,
    Overlap,
    Performance,
    ScoreDistribution,
    SegmentSize,
)


@dataclass(frozen=True)
class Figures:
    """A project's figures at ``as_of``; ``window`` is the performance window's text (``30d``)."""

    project: str
    as_of: datetime
    window: str
    segments: list[SegmentSize]
    groups: list[GroupSplit]
    history: dict[str, list[HistoryRow]]  # segment → its last runs, oldest first
    overlap: list[Overlap]
    performance: list[Performance]
    consent: list[ConsentCount]
    scores: list[ScoreDistribution]  # empty: no plugin computed predictive scores

    def overlap_of(self, a: str, b: str) -> Overlap | None:
        """The pair ``a``, ``b`` in either order (None for a segment with itself)."""
        for o in self.overlap:
            if (o.a, o.b) in ((a, b), (b, a)):
                return o
        return None


def collect(view: Insights, window_text: str, window: timedelta, runs: int) -> Figures:
    """Everything the page shows; history limited to the last ``runs`` runs per segment."""
    segments = view.segments()
    return Figures(
        project=view.project_name,
        as_of=view.as_of,
        window=window_text,
        segments=segments,
        groups=view.groups(),
        history={s.name: view.history(s.name, last=runs) for s in segments},
        overlap=view.overlap(),
        performance=view.performance(window),
        consent=view.consent_counts(),
        scores=view.score_distributions(),
    )

"""Printing: the terminal console (rich, loaded when first used) and JSON output."""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console


@cache
def console() -> Console:
    from rich.console import Console

    return Console()


def echo_json(data: Any, *, redact: bool = False) -> None:
    """``data`` as indented JSON on stdout; ``redact``: known secrets removed and addresses
    masked (for data that may hold a system's own error texts)."""
    text = json.dumps(data, indent=2, default=str)
    if redact:
        from segsync.redaction import for_output

        text = for_output(text)
    click.echo(text)


# The run object: `runs --json` prints one per run, `sync --json` the one of the run it made,
# with the same keys, values and status words (sync: succeeded | with-rejections | partial |
# failed | dry-run; history adds running and crashed; a destination: ok | with-rejections |
# partial | failed | skipped), followed by that run's report (sources, planned changes, samples,
# its first record errors).
RUN_KEYS = ("id", "started_at", "finished_at", "status", "as_of", "options", "counts", "destinations")
DESTINATION_KEYS = ("destination", "status", "write_calls", "records_written", "records_rejected",
                    "records_retrying", "error")


def sync_json(report: dict[str, Any], stored: dict[str, Any] | None,
              options: dict[str, Any]) -> dict[str, Any]:
    """``sync --json``: the run object as history holds it (``stored``, from ``Store.runs``),
    then the rest of the run's ``report`` (``RunSummary.to_dict()``). Without a stored run (a
    dry run stores none) the run object is made from the report: no id, no times, no counts."""
    run = stored or {
        "id": report["run_id"], "started_at": None, "finished_at": None, "status": report["status"],
        "as_of": report["as_of"], "options": options, "counts": None, "destinations": [],
    }
    stored_destinations = {d["destination"]: d for d in run["destinations"]}
    destinations = []
    for d in report["destinations"]:
        common = stored_destinations.get(d["name"]) or {
            "destination": d["name"], **{k: d[k] for k in DESTINATION_KEYS[1:]}}
        destinations.append({**common, **{k: v for k, v in d.items() if k not in DESTINATION_KEYS}})
    rest = {k: v for k, v in report.items() if k not in RUN_KEYS}
    return {**{k: run[k] for k in RUN_KEYS}, **rest, "destinations": destinations}

"""``segsync predict report``: the backtest of each model on the project's store."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

import click

from segsync_predict.specs import MODELS


@click.group()
def predict() -> None:
    """Predictive segment functions (segsync-predict): churn_risk(), purchase_propensity(days),
    best_send_hour()."""


def _instant(text: str | None) -> datetime:
    if text is None:
        return datetime.now(timezone.utc)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO date or time (e.g. 2025-01-31 or "
                                 "2025-01-31T12:00:00Z)", param_hint="--as-of") from None
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


@predict.command()
@click.option("--model", "models", multiple=True, type=click.Choice(list(MODELS)),
              help="Only this model (repeatable; default: every one).")
@click.option("--as-of", "as_of", metavar="ISO", help="Backtest up to this instant (default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def report(models: tuple[str, ...], as_of: str | None, as_json: bool) -> None:
    """Backtest each model on the store's history: trained as a run would have been one horizon
    ago, scored then, compared with what happened since (AUC, calibration, lift in the top
    decile). Exit code 1 when a model cannot be backtested."""
    at = _instant(as_of)  # a usage error before the heavy imports

    from segsync.project import read_store

    from segsync_predict.backtest import backtest
    from segsync_predict.models import NotEnoughHistory, SettingError

    results, problems = [], {}
    with read_store() as con:
        for name in models or MODELS:
            try:
                results.append(backtest(con, MODELS[name], at))
            except NotEnoughHistory as e:
                problems[name] = str(e)
            except SettingError as e:
                raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json.dumps({"as_of": at.isoformat(), "models": [r.as_json() for r in results],
                               "not_backtested": problems}, indent=2))
    else:
        for result in results:
            click.echo(render(result))
        for name, reason in problems.items():
            click.echo(f"{name}: {reason}", err=True)
    if problems:
        sys.exit(1)


def render(r) -> str:  # noqa: ANN001 - a Backtest
    lines = [
        f"{r.model}: {r.meaning}",
        f"  trained on features at {r.train_cutoff:%Y-%m-%d %H:%M}, outcomes until "
        f"{r.test_cutoff:%Y-%m-%d %H:%M}: {r.train_contacts} contacts, {r.train_positives} with "
        f"the outcome ({r.train_seconds:.2f} s)",
        f"  tested on features at {r.test_cutoff:%Y-%m-%d %H:%M}, outcomes until "
        f"{r.test_until:%Y-%m-%d %H:%M}: {r.test_contacts} contacts, base rate {r.base_rate:.1%} "
        f"(scored in {r.score_seconds:.2f} s)",
        f"  AUC {r.auc:.3f}   lift in the top decile {r.lift_top_decile:.2f}x "
        f"({r.top_decile_rate:.1%} vs {r.base_rate:.1%})",
        "  calibration (tenths by predicted probability, highest first):",
        "    decile  contacts  predicted  observed",
    ]
    lines += [f"    {c.decile:>6}  {c.contacts:>8}  {c.predicted:>9.1%}  {c.observed:>8.1%}"
              for c in r.calibration]
    return "\n".join(lines) + "\n"

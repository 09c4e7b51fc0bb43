"""``segsync init`` and ``segsync demo``: a project folder with data that syncs without credentials.

The sample business is synthetic and deterministic (seeded): contacts with skewed activity over
two years (a few heavy openers and buyers, a long tail of quiet ones), orders, page views,
consent records with some opt-outs, bounces and complaints, and a few deliberately bad rows so
the record-error path shows up in the summary.
"""

from __future__ import annotations

import csv
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

CONFIG_TEMPLATE = """\
# segsync project file. Paths are relative to this file.
# Docs: docs/configuration.md (this file), docs/records.md (file formats), docs/hooks.md (plugins).

[store]
# The embedded store: one DuckDB file beside this config. No server to run.
path = "segsync.duckdb"

# A source: CSV/JSONL files exported from a shop, a CRM or a form tool.
[connections.shop]
type = "files"
contacts = "data/contacts.csv"
events = "data/events.jsonl"
consent = "data/consent.csv"
push = false                   # read-only: never write back into the export folder
# contacts_columns = {{ email = "E-mail" }}   # map your column names to canonical ones

# A destination: the audience an ESP would hold, written as CSV and JSONL for upload by hand.
[connections.newsletter]
type = "files"
output = "out/newsletter"

# Segments: rules over each contact's attributes and behaviour, computed in the store at every
# sync and pushed to destinations (docs/rules.md). `segsync segments list` shows them.
#
# A pack is a ready-made set of segments. This one puts every contact in exactly one email
# engagement tier (an exclusive group): inactive, engaged-high, engaged-moderate, engaged-low,
# or engaged-readers (opens but rarely clicks).
[packs.engagement]
# window = "90d"                 # open and click rates over this window
# high_open_rate = 0.5           # every parameter: docs/rules.md#packs
[packs.engagement.destinations.newsletter]
tag = true                       # each tier as a tag named after it

# More packs: lifecycle (buyer stage), value (RFM segments, high-value), triggers (abandoned
# cart, win-back, loyalty, first purchase, category interest). Uncomment to try one:
# [packs.lifecycle]
# [packs.triggers]
# categories = ["shoes", "outdoor"]

# Segments of your own. Outside a group they overlap freely: someone can be in all three.
[[segments]]
name = "vip"
description = "Big spenders who read us and visit the rewards page"
rule = 'spend(365d) > 500 and opens(30d) >= 5 and visited("/vip-rewards")'
[segments.destinations.newsletter]
tag = "VIP"

[[segments]]
name = "cart-recovery"
description = "Left a cart in the last day without ordering"
rule = "count(cart.added, 24h) > 0 and orders(24h) == 0"
[segments.destinations.newsletter]
tag = "cart-recovery"

[[segments]]
name = "likes-outdoor"
description = "Viewed or clicked outdoor products at least twice this month"
rule = 'category_events("outdoor", 30d) >= 2'
[segments.destinations.newsletter]
tag = "likes-outdoor"

# Triggers: act when someone enters (or leaves) a segment, exactly once: an ESP event or tag
# that starts an automation, a signed webhook, or a JSON Lines file (docs/triggers.md).
# [[triggers]]
# name = "cart-reminder"
# segment = "cart-recovery"
# on = "enter"
# action = "file"                 # or: event / tag (with connection = ...), webhook (url = ...)
# path = "out/cart-entries.jsonl"

# Secrets never go in this file. A connector's secret setting FIELD of connection NAME is read
# from the environment or from .env beside this file as SEGSYNC_<NAME>_<FIELD>, for example:
# [connections.mailchimp]
# type = "mailchimp"
# audience_id = "abc123"          # and SEGSYNC_MAILCHIMP_API_KEY=... in .env
"""

FIRST_NAMES = [
    "Ann", "Ben", "Chloé", "Dev", "Eva", "Femi", "Gus", "Hana", "Ivan", "Jae", "Kira", "Luis",
    "Mia", "Noor", "Olu", "Pia", "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera", "Wen", "Yusuf",
]
LAST_NAMES = [
    "Adams", "Berg", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Haddad", "Ito", "Jones",
    "Kowalski", "Lopez", "Müller", "Nakamura", "Okafor", "Patel", "Rossi", "Schmidt", "Tanaka",
]
DOMAINS = ["example.com", "example.org", "mail.example.net", "example.co.uk", "bücher.example"]
COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell", ""]
DEPARTMENTS = ["Marketing", "Sales", "HR", "People", "Engineering", "Finance", "Operations"]
INDUSTRIES = ["Retail", "Software", "Healthcare", "Education", "Manufacturing"]
COUNTRIES = [("DE", "Europe/Berlin"), ("FR", "Europe/Paris"), ("GB", "Europe/London"),
             ("US", "America/New_York"), ("CA", "America/Toronto"), ("JP", "Asia/Tokyo")]
CATEGORIES = ["shoes", "bags", "outdoor", "kitchen", "books"]
PAGES = ["/", "/pricing", "/compare", "/blog/spring-guide", "/vip-rewards", "/trial"]
SHOP_PAGES = ["/pricing", "/compare", "/trial", "/vip-rewards", "/products", "/"]


def write_project(directory: Path, *, contacts: int, seed: int = 7, now: datetime | None = None) -> dict[str, int]:
    """Write ``segsync.toml`` and ``data/`` into ``directory``; return row counts per file."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "segsync.toml"
    if config.exists():
        raise FileExistsError(f"{config} already exists; not overwriting it")
    config.write_text(CONFIG_TEMPLATE.format(), encoding="utf-8")
    (directory / ".gitignore").write_text("segsync.duckdb*\nout/\n.env\n", encoding="utf-8")
    return write_sample_data(directory / "data", contacts=contacts, seed=seed, now=now)


def write_sample_data(
    data: Path, *, contacts: int, seed: int = 7, now: datetime | None = None
) -> dict[str, int]:
    rng = random.Random(seed)
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    start = now - timedelta(days=730)
    data.mkdir(parents=True, exist_ok=True)
    people = []
    for i in range(contacts):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        country, tz = rng.choice(COUNTRIES)
        created = start + timedelta(seconds=rng.randrange(int((now - start).total_seconds())))
        email = f"{first}.{last}.{i}@{rng.choice(DOMAINS)}"
        # Mixed case and stray spaces, as real exports have them; the store normalizes.
        if i % 17 == 0:
            email = f" {email.upper()} "
        people.append(
            {
                "email": email,
                "first_name": first,
                "last_name": last,
                "company": rng.choice(COMPANIES),
                "department": rng.choice(DEPARTMENTS),
                "industry": rng.choice(INDUSTRIES),
                "company_size": str(rng.choice([5, 12, 40, 150, 900, 5000])),
                "country": country,
                "timezone": tz,
                "created_at": created.isoformat(),
                "loyalty_tier": rng.choice(["", "", "silver", "gold"]),
                "_created": created,
                # Pareto-like engagement: most people rarely act, a few act a lot.
                "_activity": rng.paretovariate(1.6) - 1,
            }
        )
    contact_rows = [{k: v for k, v in p.items() if not k.startswith("_")} for p in people]
    contact_rows.append({"email": "not-an-address", "first_name": "Broken"})
    contact_rows.append({"email": "someone@example.com", "company_size": "lots"})
    columns = [c for c in contact_rows[0]]
    with (data / "contacts.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(contact_rows)

    events = 0
    consent_rows = []
    # Site visits draw from their own generator, so the emails and consent above stay exactly
    # what they were before visits were added.
    browse = random.Random(seed + 1)
    with (data / "events.jsonl").open("w", encoding="utf-8") as handle:
        for i, person in enumerate(people):
            email = person["email"].strip().lower()
            joined = person["_created"]
            consent_rows.append(
                {"email": email, "channel": "email", "purpose": "marketing", "status": "opted_in",
                 "timestamp": joined.isoformat(), "method": rng.choice(["form", "double_opt_in", "import"]),
                 "evidence": f"signup form v{rng.randint(1, 3)}"}
            )
            sends = max(1, int((now - joined).days / 14))
            engagement = min(0.95, 0.05 + person["_activity"] / 4)
            for send in range(sends):
                sent_at = joined + timedelta(days=14 * send, hours=rng.randint(8, 18))
                if sent_at >= now:
                    break
                campaign = f"cmp-{sent_at:%Y%m%d}"
                handle.write(_event(email, "email.sent", sent_at, f"send-{i}-{send}", {"campaign_id": campaign}))
                events += 1
                if rng.random() < engagement:
                    handle.write(_event(email, "email.opened", sent_at + timedelta(hours=2), f"open-{i}-{send}", {"campaign_id": campaign}))
                    events += 1
                    # Fans open an email again and again (rates can pass 100%).
                    for again in range(int(engagement * 4) if engagement > 0.6 else 0):
                        handle.write(_event(email, "email.opened", sent_at + timedelta(hours=5 + again), f"reopen-{i}-{send}-{again}", {"campaign_id": campaign}))
                        events += 1
                    if rng.random() < engagement / 2:
                        page = rng.choice(PAGES)
                        handle.write(_event(email, "email.clicked", sent_at + timedelta(hours=3), f"click-{i}-{send}", {"campaign_id": campaign, "url": page}))
                        handle.write(_event(email, "page.viewed", sent_at + timedelta(hours=3, minutes=1), f"view-{i}-{send}", {}, url=page, category=rng.choice(CATEGORIES)))
                        events += 2
                        if rng.random() < engagement / 3:
                            value = round(rng.lognormvariate(4.2, 0.8), 2)
                            handle.write(_event(email, "cart.added", sent_at + timedelta(hours=3, minutes=5), f"cart-{i}-{send}", {"product_id": f"p{rng.randint(1, 400)}"}, value=value, currency="EUR"))
                            events += 1
                            if rng.random() < 0.6:
                                handle.write(_event(email, "order.completed", sent_at + timedelta(hours=3, minutes=20), f"order-{i}-{send}", {"order_id": f"o-{i}-{send}"}, value=value, currency="EUR"))
                                events += 1
            for line in _site_visits(browse, email, i, joined, now, engagement):
                handle.write(line)
                events += 1
            fate = rng.random()
            later = joined + timedelta(days=rng.randint(1, max(1, (now - joined).days)))
            if fate < 0.06:
                consent_rows.append({"email": email, "channel": "email", "purpose": "marketing", "status": "opted_out",
                                     "timestamp": later.isoformat(), "method": "email_link", "evidence": "unsubscribe link"})
            elif fate < 0.08:
                consent_rows.append({"email": email, "channel": "email", "purpose": "marketing", "status": "bounced",
                                     "timestamp": later.isoformat(), "method": "bounce", "evidence": "550 mailbox unavailable"})
            elif fate < 0.085:
                consent_rows.append({"email": email, "channel": "email", "purpose": "marketing", "status": "complained",
                                     "timestamp": later.isoformat(), "method": "complaint", "evidence": "feedback loop"})
        handle.write('{"email": "ann@example.com", "type": "email.opened", "timestamp": "yesterday", "id": "bad-1"}\n')
    with (data / "consent.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(consent_rows[0]))
        writer.writeheader()
        writer.writerows(consent_rows)
    return {"contacts": len(contact_rows), "events": events + 1, "consent": len(consent_rows)}


def _site_visits(
    rng: random.Random, email: str, i: int, joined: datetime, now: datetime, engagement: float
) -> list[str]:
    """Recent visits beyond email clicks: pages, products, carts (some left today), trials."""
    lines = []
    recent = max(joined, now - timedelta(days=60))
    span = int((now - recent).total_seconds())
    if span <= 0 or rng.random() > 0.15 + engagement:
        return lines
    favourite = rng.choice(CATEGORIES)
    for n in range(rng.randint(1, 3 + int(engagement * 6))):
        at = recent + timedelta(seconds=rng.randrange(span))
        if rng.random() < 0.5:
            lines.append(_event(email, "page.viewed", at, f"visit-{i}-{n}", {}, url=rng.choice(SHOP_PAGES)))
        else:
            category = favourite if rng.random() < 0.7 else rng.choice(CATEGORIES)
            lines.append(_event(email, "product.viewed", at, f"product-{i}-{n}", {"product_id": f"p{rng.randint(1, 400)}"},
                                url=f"/products/{category}", category=category))
    if rng.random() < 0.04 + engagement / 10:
        at = now - timedelta(hours=rng.randint(1, 20))
        lines.append(_event(email, "cart.added", at, f"left-cart-{i}", {"product_id": f"p{rng.randint(1, 400)}"},
                            value=round(rng.lognormvariate(4.2, 0.8), 2), currency="EUR"))
    if rng.random() < 0.03:
        at = recent + timedelta(seconds=rng.randrange(span))
        lines.append(_event(email, "trial.started", at, f"trial-{i}", {}))
    # The most engaged also buy on the site, often enough to cross high-value thresholds.
    if engagement > 0.5:
        year = max(joined, now - timedelta(days=365))
        for n in range(rng.randint(0, 6)):
            at = year + timedelta(seconds=rng.randrange(max(1, int((now - year).total_seconds()))))
            lines.append(_event(email, "order.completed", at, f"site-order-{i}-{n}", {"order_id": f"s-{i}-{n}"},
                                value=round(rng.lognormvariate(4.7, 0.5), 2), currency="EUR"))
    return lines


def _event(email: str, type_: str, at: datetime, event_id: str, properties: dict, **top: object) -> str:
    record = {"email": email, "type": type_, "timestamp": at.isoformat(), "id": event_id, "properties": properties}
    record.update(top)
    return json.dumps(record, ensure_ascii=False) + "\n"

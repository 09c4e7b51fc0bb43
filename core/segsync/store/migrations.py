"""Versioned schema of the embedded store.

Each migration is applied once, in order, inside one transaction, when a store is opened for
writing; ``schema_migrations`` records which ones ran. Never edit a released migration: append a
new one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "contacts, identities, events, consent ledger, cursors, runs, errors, acks, snapshots",
        (
            # One row per person; the key is the normalized email address.
            """
            CREATE TABLE contacts (
                contact_key     VARCHAR PRIMARY KEY,
                first_name      VARCHAR,
                last_name       VARCHAR,
                company         VARCHAR,
                job_title       VARCHAR,
                department      VARCHAR,
                industry        VARCHAR,
                company_size    INTEGER,
                country         VARCHAR,
                timezone        VARCHAR,
                lifecycle_stage VARCHAR,
                created_at      TIMESTAMPTZ,
                custom          JSON NOT NULL DEFAULT '{}',
                first_seen_at   TIMESTAMPTZ NOT NULL,
                updated_at      TIMESTAMPTZ NOT NULL,
                updated_by      VARCHAR NOT NULL
            )
            """,
            """
            CREATE TABLE identities (
                connection  VARCHAR NOT NULL,
                external_id VARCHAR NOT NULL,
                contact_key VARCHAR NOT NULL,
                -- What that system holds about the person (its status, tags, lists): recorded,
                -- never merged into the contact's attributes, so it cannot echo back out.
                properties  JSON NOT NULL DEFAULT '{}',
                seen_at     TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (connection, external_id)
            )
            """,
            # Append-only. (source, source_event_id) is unique: ingestion (the only writer)
            # drops duplicates before appending (a hash join against only what a part can
            # collide with, segsync.store.ingest), 3.6x faster than a PRIMARY KEY's index on
            # bulk loads (bench/RESULTS-ingest.md).
            """
            CREATE TABLE events (
                contact_key     VARCHAR NOT NULL,
                type            VARCHAR NOT NULL,
                occurred_at     TIMESTAMPTZ NOT NULL,
                source          VARCHAR NOT NULL,
                source_event_id VARCHAR NOT NULL,
                value           DOUBLE,
                currency        VARCHAR,
                url             VARCHAR,
                category        VARCHAR,
                properties      JSON NOT NULL DEFAULT '{}',
                run_id          BIGINT
            )
            """,
            "CREATE SEQUENCE consent_ledger_id",
            # Append-only: rows are never updated; effective consent is derived from them.
            """
            CREATE TABLE consent_ledger (
                id          BIGINT PRIMARY KEY DEFAULT nextval('consent_ledger_id'),
                contact_key VARCHAR NOT NULL,
                channel     VARCHAR NOT NULL,
                purpose     VARCHAR NOT NULL,
                status      VARCHAR NOT NULL,
                recorded_at TIMESTAMPTZ NOT NULL,
                source      VARCHAR NOT NULL,
                method      VARCHAR NOT NULL,
                evidence    VARCHAR,
                ingested_at TIMESTAMPTZ NOT NULL,
                run_id      BIGINT
            )
            """,
            """
            CREATE TABLE cursors (
                connection VARCHAR NOT NULL,
                stream     VARCHAR NOT NULL,
                cursor     JSON NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL,
                run_id     BIGINT,
                PRIMARY KEY (connection, stream)
            )
            """,
            "CREATE SEQUENCE run_id",
            """
            CREATE TABLE runs (
                id          BIGINT PRIMARY KEY DEFAULT nextval('run_id'),
                started_at  TIMESTAMPTZ NOT NULL,
                finished_at TIMESTAMPTZ,
                status      VARCHAR NOT NULL,
                as_of       TIMESTAMPTZ NOT NULL,
                options     JSON NOT NULL DEFAULT '{}',
                counts      JSON NOT NULL DEFAULT '{}'
            )
            """,
            """
            CREATE TABLE run_destinations (
                run_id           BIGINT NOT NULL,
                destination      VARCHAR NOT NULL,
                status           VARCHAR NOT NULL,
                write_calls      BIGINT NOT NULL DEFAULT 0,
                records_written  BIGINT NOT NULL DEFAULT 0,
                records_rejected BIGINT NOT NULL DEFAULT 0,
                records_retrying BIGINT NOT NULL DEFAULT 0,
                error            VARCHAR,
                PRIMARY KEY (run_id, destination)
            )
            """,
            """
            CREATE TABLE record_errors (
                run_id     BIGINT,
                connection VARCHAR NOT NULL,
                phase      VARCHAR NOT NULL,
                record     VARCHAR NOT NULL,
                field      VARCHAR,
                reason     VARCHAR NOT NULL,
                retryable  BOOLEAN NOT NULL DEFAULT false,
                occurred_at TIMESTAMPTZ NOT NULL
            )
            """,
            # What each destination has acknowledged, per contact: the diff is taken against it.
            """
            CREATE TABLE acknowledged (
                destination VARCHAR NOT NULL,
                contact_key VARCHAR NOT NULL,
                state_hash  VARCHAR NOT NULL,
                status      VARCHAR NOT NULL,
                run_id      BIGINT,
                acked_at    TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (destination, contact_key)
            )
            """,
            # A destination's refusal of a desired state: not planned again until that state
            # changes (a rejection is final for that data; retryables are simply not acked).
            """
            CREATE TABLE rejected (
                destination VARCHAR NOT NULL,
                contact_key VARCHAR NOT NULL,
                state_hash  VARCHAR NOT NULL,
                reason      VARCHAR NOT NULL,
                run_id      BIGINT,
                rejected_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (destination, contact_key)
            )
            """,
            """
            CREATE TABLE acknowledged_memberships (
                destination VARCHAR NOT NULL,
                contact_key VARCHAR NOT NULL,
                segment     VARCHAR NOT NULL,
                run_id      BIGINT,
                acked_at    TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (destination, contact_key, segment)
            )
            """,
            """
            CREATE TABLE segment_snapshots (
                run_id      BIGINT NOT NULL,
                segment     VARCHAR NOT NULL,
                contact_key VARCHAR NOT NULL,
                as_of       TIMESTAMPTZ NOT NULL
            )
            """,
        ),
    ),
    Migration(
        2,
        "consent: suppression list, subscription-status audit, erasure requests",
        (
            # A per-store random salt for address hashes: an erased person is kept only as
            # sha256(salt || address), so a later import is recognised without storing the
            # address, and the hashes are useless against another installation's.
            "CREATE TABLE consent_salt (salt VARCHAR NOT NULL)",
            "INSERT INTO consent_salt "
            "SELECT replace(gen_random_uuid()::VARCHAR || gen_random_uuid()::VARCHAR, '-', '')",
            "CREATE SEQUENCE suppression_id",
            # Global and sticky: an entry stays until `segsync suppress remove` (which keeps the
            # row, with who removed it and when). contact_key is NULL for erased people.
            """
            CREATE TABLE suppressions (
                id           BIGINT PRIMARY KEY DEFAULT nextval('suppression_id'),
                contact_key  VARCHAR,
                address_hash VARCHAR NOT NULL,
                channel      VARCHAR NOT NULL,
                reason       VARCHAR NOT NULL,
                source       VARCHAR NOT NULL,
                note         VARCHAR,
                created_at   TIMESTAMPTZ NOT NULL,
                removed_at   TIMESTAMPTZ,
                removed_by   VARCHAR,
                removal_note VARCHAR
            )
            """,
            "CREATE SEQUENCE status_change_id",
            # Every push that changes (or tried to change) a subscription status: what the
            # destination held before, what it was told, and the ledger record (or suppression)
            # that caused it. outcome: acknowledged | rejected | blocked (by the consent gate).
            """
            CREATE TABLE status_changes (
                id             BIGINT PRIMARY KEY DEFAULT nextval('status_change_id'),
                run_id         BIGINT,
                destination    VARCHAR NOT NULL,
                contact_key    VARCHAR NOT NULL,
                channel        VARCHAR NOT NULL,
                purpose        VARCHAR NOT NULL,
                action         VARCHAR,
                before_status  VARCHAR,
                after_status   VARCHAR NOT NULL,
                ledger_id      BIGINT,
                suppression_id BIGINT,
                policy         VARCHAR,
                outcome        VARCHAR NOT NULL,
                reason         VARCHAR,
                changed_at     TIMESTAMPTZ NOT NULL
            )
            """,
            # What destinations acknowledged before this audit existed, so echo detection
            # (docs/consent.md) knows what segsync told them.
            """
            INSERT INTO status_changes (run_id, destination, contact_key, channel, purpose, action,
                                        before_status, after_status, outcome, reason, changed_at)
            SELECT run_id, destination, contact_key, 'email', 'marketing', NULL, NULL, status,
                   'acknowledged', 'recorded before the consent audit existed', acked_at
            FROM acknowledged
            """,
            "CREATE SEQUENCE erasure_id",
            # address is kept only until every system confirmed the deletion (it is what a
            # retry sends); then it is cleared and only the hash remains.
            """
            CREATE TABLE erasures (
                id           BIGINT PRIMARY KEY DEFAULT nextval('erasure_id'),
                address_hash VARCHAR NOT NULL,
                address      VARCHAR,
                requested_at TIMESTAMPTZ NOT NULL,
                completed_at TIMESTAMPTZ
            )
            """,
            """
            CREATE TABLE erasure_targets (
                erasure_id      BIGINT NOT NULL,
                connection      VARCHAR NOT NULL,
                method          VARCHAR NOT NULL,
                external_id     VARCHAR,
                previous_status VARCHAR,
                status          VARCHAR NOT NULL,
                action          VARCHAR,
                attempts        INTEGER NOT NULL DEFAULT 0,
                last_error      VARCHAR,
                updated_at      TIMESTAMPTZ NOT NULL,
                done_at         TIMESTAMPTZ,
                PRIMARY KEY (erasure_id, connection)
            )
            """,
        ),
    ),
    Migration(
        3,
        "remembered rejections: who refused, and the destination fingerprint they hold under",
        (
            # 'destination' (the system refused the state) or 'gate' (the consent gate did).
            # Only a destination's refusals can be lifted by a change on its side.
            "ALTER TABLE rejected ADD COLUMN refused_by VARCHAR DEFAULT 'destination'",
            "UPDATE rejected SET refused_by = 'gate' WHERE starts_with(reason, 'consent gate: ')",
            # The fingerprint of a destination (settings, segment mapping, the schema it
            # reports) its remembered refusals were made under: when it differs, they are
            # planned again (segsync.sync.rejections.renew_rejections).
            """
            CREATE TABLE rejection_fingerprints (
                destination VARCHAR PRIMARY KEY,
                fingerprint VARCHAR NOT NULL,
                updated_at  TIMESTAMPTZ NOT NULL
            )
            """,
        ),
    ),
    Migration(
        4,
        "typed event columns: events.campaign_key, and an integer contact_id on contacts and events",
        (
            # An integer per person: evaluation groups events by it (2x faster than hashing the
            # address, bench/RESULTS-segments.md). The address stays the key everywhere else.
            "CREATE SEQUENCE contact_id",
            "ALTER TABLE contacts ADD COLUMN contact_id BIGINT DEFAULT nextval('contact_id')",
            # properties.campaign_id, or the event itself when it names none: what open_rate
            # and click_rate count once, read per open and click on every evaluation.
            "ALTER TABLE events ADD COLUMN campaign_key VARCHAR",
            "ALTER TABLE events ADD COLUMN contact_id BIGINT",
            "UPDATE events SET "
            "campaign_key = coalesce(properties ->> '$.campaign_id', source || source_event_id)",
            # Ingestion writes both. contact_id stays NULL only for an event without a contact
            # row, which evaluation never read.
            "UPDATE events SET contact_id = c.contact_id FROM contacts c "
            "WHERE c.contact_key = events.contact_key",
        ),
    ),
    Migration(
        5,
        "contacts.contact_id and events.campaign_key NOT NULL",
        (
            # A writer that forgets campaign_key fails rather than skewing rates. (A migration
            # of its own: DuckDB refuses a constraint in the transaction that filled the column.)
            "ALTER TABLE contacts ALTER COLUMN contact_id SET NOT NULL",
            "ALTER TABLE events ALTER COLUMN campaign_key SET NOT NULL",
        ),
    ),
    Migration(
        6,
        "incremental segment evaluation: the last evaluation's instant, fingerprint and marks",
        (
            # One row: what the next evaluation compares with to recompute only the contacts
            # whose inputs changed (segsync.segments.incremental). The per-contact features it
            # keeps are in segment_features, which the engine (re)creates: its columns follow
            # the rules. Dropping both is always safe: the next evaluation is then a full one.
            """
            CREATE TABLE segment_evaluation (
                fingerprint      VARCHAR NOT NULL,
                as_of            TIMESTAMPTZ NOT NULL,
                events_rows      BIGINT NOT NULL,
                events_rowid     BIGINT NOT NULL,
                ledger_id        BIGINT NOT NULL,
                suppression_id   BIGINT NOT NULL,
                status_change_id BIGINT NOT NULL,
                erasure_id       BIGINT NOT NULL,
                clock            TIMESTAMPTZ NOT NULL,
                evaluated_at     TIMESTAMPTZ NOT NULL
            )
            """,
        ),
    ),
    Migration(
        7,
        "per-contact scores of each run (segsync.scores): score_runs and contact_scores",
        (
            # One row per model per run: could it be computed, why not, the plugin's figures.
            """
            CREATE TABLE score_runs (
                run_id   BIGINT NOT NULL,
                model    VARCHAR NOT NULL,
                as_of    TIMESTAMPTZ NOT NULL,
                computed BOOLEAN NOT NULL,
                detail   VARCHAR,
                metrics  JSON NOT NULL DEFAULT '{}',
                PRIMARY KEY (run_id, model)
            )
            """,
            # Kept for every run like segment_snapshots; rules read the latest run's at their
            # as_of. Erasure deletes a person's rows like every table with contact_key.
            """
            CREATE TABLE contact_scores (
                run_id      BIGINT NOT NULL,
                model       VARCHAR NOT NULL,
                contact_key VARCHAR NOT NULL,
                score       DOUBLE NOT NULL
            )
            """,
        ),
    ),
    Migration(
        8,
        "external engines: the embedded mirror of the engine's current memberships",
        (
            # With [store] engine = "postgres" | "spark" the memberships are evaluated and
            # snapshotted in the engine; only their changes come back and are applied here, so
            # each destination is diffed against its acknowledgements locally (docs/scale.md).
            """
            CREATE TABLE engine_memberships (
                segment     VARCHAR NOT NULL,
                contact_key VARCHAR NOT NULL,
                PRIMARY KEY (segment, contact_key)
            )
            """,
        ),
    ),
    Migration(
        9,
        "segment-entry triggers: the membership they last saw, and the outbox of deliveries",
        (
            # What the triggers last saw of each segment: a run's entries and exits are the
            # current membership against it (segsync.triggers.changes). A segment is listed in
            # trigger_segments from its first evaluation on: that evaluation is its baseline,
            # so switching triggers on (or adding a segment) does not make everyone "enter".
            """
            CREATE TABLE trigger_baseline (
                segment     VARCHAR NOT NULL,
                contact_key VARCHAR NOT NULL
            )
            """,
            """
            CREATE TABLE trigger_segments (
                segment       VARCHAR NOT NULL,
                baselined_at  TIMESTAMPTZ NOT NULL,
                run_id        BIGINT
            )
            """,
            "CREATE SEQUENCE trigger_delivery_id",
            # One row per trigger and entry (or exit), written in the transaction that moves the
            # baseline; delivered after it commits. status: pending | sending (handed to the
            # action, outcome not recorded yet: in doubt after a crash) | delivered | rejected
            # (refused for good) | blocked (consent) | failed (retried next time).
            # idempotency_key is sent with every attempt, so a receiver drops a repeat.
            """
            CREATE TABLE trigger_outbox (
                id              BIGINT PRIMARY KEY DEFAULT nextval('trigger_delivery_id'),
                trigger         VARCHAR NOT NULL,
                segment         VARCHAR NOT NULL,
                contact_key     VARCHAR NOT NULL,
                change          VARCHAR NOT NULL,
                occurred_at     TIMESTAMPTZ NOT NULL,
                origin          VARCHAR NOT NULL,
                run_id          BIGINT,
                idempotency_key VARCHAR NOT NULL,
                status          VARCHAR NOT NULL,
                attempts        INTEGER NOT NULL DEFAULT 0,
                last_error      VARCHAR,
                enqueued_at     TIMESTAMPTZ NOT NULL,
                updated_at      TIMESTAMPTZ NOT NULL,
                delivered_at    TIMESTAMPTZ,
                delivered_run   BIGINT
            )
            """,
        ),
    ),
    Migration(
        10,
        "planning state: each destination's desired state as last planned, and what it was planned from",
        (
            # Per destination, every contact's desired status and state hash as the last diff
            # planned them, and the marks of that plan: the next diff recomputes only the
            # contacts whose inputs changed since (segsync.sync.planning). Dropping the rows of
            # a destination (or both tables) is always safe: its next diff is then a full one.
            """
            CREATE TABLE planned_states (
                destination VARCHAR NOT NULL,
                contact_key VARCHAR NOT NULL,
                status      VARCHAR NOT NULL,
                state_hash  VARCHAR NOT NULL
            )
            """,
            """
            CREATE TABLE planning_marks (
                destination      VARCHAR PRIMARY KEY,
                fingerprint      VARCHAR NOT NULL,
                as_of            TIMESTAMPTZ NOT NULL,
                members_run      BIGINT NOT NULL,
                ledger_id        BIGINT NOT NULL,
                suppression_id   BIGINT NOT NULL,
                status_change_id BIGINT NOT NULL,
                erasure_id       BIGINT NOT NULL,
                clock            TIMESTAMPTZ NOT NULL,
                planned_at       TIMESTAMPTZ NOT NULL
            )
            """,
        ),
    ),
    Migration(
        11,
        "external engines: the embedded mirror of effective consent, and what each mirror was brought to",
        (
            # Effective consent derived in the engine, per consent policy (policy_key: a
            # fingerprint of the policy and the rule); each run brings only the rows that changed
            # (segsync.engines.mirror, docs/scale.md).
            """
            CREATE TABLE engine_consent (
                policy_key     VARCHAR NOT NULL,
                contact_key    VARCHAR NOT NULL,
                status         VARCHAR NOT NULL,
                ledger_id      BIGINT,
                method         VARCHAR,
                suppression_id BIGINT,
                policy         VARCHAR,
                PRIMARY KEY (policy_key, contact_key)
            )
            """,
            # what ("consent:KEY", "contacts") → the run whose state the mirror holds and its
            # size; the engine records the same run beside its copy, or the mirror is rebuilt.
            """
            CREATE TABLE engine_seen (
                what   VARCHAR PRIMARY KEY,
                run_id BIGINT NOT NULL,
                rows   BIGINT NOT NULL
            )
            """,
        ),
    ),
)

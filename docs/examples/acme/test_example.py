"""What the example connector does against the emulator the template ships (beyond the kit)."""

from __future__ import annotations

from segsync import ContactChange, Outcome, Stream

from segsync_acme.connector import AcmeConnector
from segsync_acme.emulator import AcmeEmulator


def upsert(email: str, status: str = "subscribed", tags: tuple[str, ...] = (), **attributes) -> ContactChange:
    return ContactChange(email, "upsert", status, attributes, tags=tags)


def test_written_contacts_are_read_back(connector: AcmeConnector, emulator: AcmeEmulator) -> None:
    result = connector.write([upsert("ann@example.com", first_name="Ann"), upsert("bo@example.com")])
    assert result.outcomes == [Outcome.ok("ann@example.com", external_id="c1"),
                               Outcome.ok("bo@example.com", external_id="c2")]
    assert result.calls == 1
    [batch] = connector.read(Stream.CONTACTS, None)
    assert batch.rows == [{"email": "ann@example.com", "external_id": "c1", "first_name": "Ann"},
                          {"email": "bo@example.com", "external_id": "c2"}]
    assert (batch.cursor, batch.record_ids) == ({"after": 2}, ["c1", "c2"])


def test_an_opt_out_becomes_acmes_own_unsubscribed(connector: AcmeConnector, emulator: AcmeEmulator) -> None:
    connector.write([upsert("ann@example.com")])
    connector.write([ContactChange("ann@example.com", "upsert", "unsubscribed", previous_status="subscribed")])
    assert emulator.contacts["ann@example.com"]["status"] == "unsubscribed"


def test_segments_become_the_contacts_tags(connector: AcmeConnector, emulator: AcmeEmulator) -> None:
    connector.write([upsert("ann@example.com", tags=("vip", "cart-recovery"))])
    assert emulator.contacts["ann@example.com"]["tags"] == {"vip", "cart-recovery"}
    # `tags` is every segment the contact is in now: a segment left is gone from Acme too.
    connector.write([ContactChange("ann@example.com", "upsert", "subscribed", tags=("vip",),
                                   tags_remove=("cart-recovery",))])
    assert emulator.contacts["ann@example.com"]["tags"] == {"vip"}


def test_a_refused_contact_is_rejected_naming_the_field(connector: AcmeConnector) -> None:
    result = connector.write([upsert("ann@example.com"), upsert("not-an-address"),
                              upsert("bo@example.com", status="bogus")])
    assert result.outcomes == [
        Outcome.ok("ann@example.com", external_id="c1"),
        Outcome.rejected("not-an-address", "not an address", field="email"),
        Outcome.rejected("bo@example.com", "unknown value 'bogus'", field="status"),
    ]


def test_reading_pages_through_everything_and_resumes_after_the_cursor(connector: AcmeConnector) -> None:
    for start in range(0, 250, 100):
        connector.write([upsert(f"c{n}@example.com") for n in range(start, min(start + 100, 250))])
    batches = list(connector.read(Stream.CONTACTS, None))
    assert [len(b.rows) for b in batches] == [100, 100, 50]
    assert [b.cursor for b in batches] == [{"after": 100}, {"after": 200}, {"after": 250}]
    assert list(connector.read(Stream.CONTACTS, batches[-1].cursor)) == []
    connector.write([upsert("c7@example.com", first_name="Seven")])
    [again] = connector.read(Stream.CONTACTS, batches[-1].cursor)
    assert again.rows == [{"email": "c7@example.com", "external_id": "c8", "first_name": "Seven"}]

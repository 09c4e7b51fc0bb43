"""The distribution registers its connector through the ``segsync`` entry-point group."""

from __future__ import annotations

from segsync import Capability
from segsync.testing import registered_connectors

from segsync_mailchimp import MailchimpConnector, MailchimpSettings


def test_entry_point_registers_the_connector():
    assert registered_connectors("mailchimp") == {"mailchimp": MailchimpConnector}
    assert MailchimpConnector.type_name == "mailchimp"
    assert MailchimpConnector.Settings is MailchimpSettings
    assert MailchimpConnector.capabilities == frozenset(Capability)

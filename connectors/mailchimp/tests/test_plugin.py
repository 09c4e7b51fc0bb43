"""The distribution registers its connector through the ``segsync`` entry-point group."""

from __future__ import annotations

from importlib.metadata import entry_points

import pluggy

from segsync import hookspecs
from segsync.connector import Capability

from segsync_mailchimp import MailchimpConnector, MailchimpSettings


def test_entry_point_registers_the_connector():
    (ep,) = [ep for ep in entry_points(group="segsync") if ep.name == "mailchimp"]
    pm = pluggy.PluginManager("segsync")
    pm.add_hookspecs(hookspecs)
    pm.register(ep.load())
    registered = []
    pm.hook.segsync_register_connectors(register=registered.append)
    assert registered == [MailchimpConnector]
    assert MailchimpConnector.type_name == "mailchimp"
    assert MailchimpConnector.Settings is MailchimpSettings
    assert MailchimpConnector.capabilities == frozenset(Capability)

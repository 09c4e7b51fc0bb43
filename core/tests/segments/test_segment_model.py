"""Declarations: pydantic validation and cross-checks with clear messages."""

from __future__ import annotations

import tomllib

import pytest
from pydantic import ValidationError

from segsync.segments import GroupDef, SegmentDef, SegmentsConfig

TOML = '''
[groups.lifecycle]
description = "Where each contact is"
catch_all = "other"

[[segments]]
name = "vip"
description = "Engaged big spenders"
group = "lifecycle"
priority = 1
rule = """
opens(30d) >= 5          # engaged
and spend(365d) > 500    # and spending
"""
[segments.destinations.mailchimp]
tag = "VIP"
[segments.destinations.brevo]
attribute = "LIFECYCLE"
value = "vip"

[[segments]]
name = "other"
group = "lifecycle"

[[segments]]
name = "hr"
rule = 'attr.department in ("HR", "People")'
[segments.destinations.hubspot]
list = "HR people"
'''


def test_config_from_toml():
    cfg = SegmentsConfig.model_validate(tomllib.loads(TOML))
    vip, other, hr = cfg.segments
    assert vip.destinations["mailchimp"].tag == "VIP"
    assert vip.destinations["brevo"].value == "vip"
    assert vip.tree is not None and other.tree is None
    assert cfg.groups["lifecycle"].catch_all == "other"
    assert hr.destinations["hubspot"].list == "HR people"


def _error(data) -> str:
    with pytest.raises(ValidationError) as info:
        SegmentsConfig.model_validate(data)
    return str(info.value)


def test_rule_syntax_error_is_a_validation_error_with_caret():
    msg = _error({"segments": [{"name": "bad", "rule": "opens(30d >= 5"}]})
    assert "segment 'bad': line 1, column 15: expected ',' or ')'" in msg
    assert "opens(30d >= 5\n" in msg


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"segments": [{"name": "a", "rule": "true"}, {"name": "a", "rule": "true"}]},
         "segment 'a' is declared twice"),
        ({"segments": [{"name": "a", "rule": "true", "group": "lifecyle", "priority": 1}],
          "groups": {"lifecycle": {}}},
         "names group 'lifecyle', which is not declared under [groups]; did you mean 'lifecycle'?"),
        ({"segments": [{"name": "a"}]}, "only a group's catch-all segment may omit it"),
        ({"segments": [{"name": "a", "rule": "true", "priority": 2}]},
         "priority only applies within a group"),
        ({"segments": [{"name": "a", "rule": "true", "group": "g"}], "groups": {"g": {}}},
         "needs a priority"),
        ({"segments": [{"name": "a", "rule": "true", "group": "g", "priority": 1},
                       {"name": "b", "rule": "true", "group": "g", "priority": 1}],
          "groups": {"g": {}}}, "share priority 1"),
        ({"segments": [{"name": "a", "rule": "true", "group": "g", "priority": 1}],
          "groups": {"g": {"catch_all": "rest"}}}, "catch_all 'rest' is not a declared segment"),
        ({"segments": [{"name": "a", "rule": "true", "group": "g", "priority": 1},
                       {"name": "rest", "rule": "true", "group": "g", "priority": 2}],
          "groups": {"g": {"catch_all": "rest"}}}, "remove its rule"),
        ({"segments": [{"name": "rest", "rule": "true"}], "groups": {"g": {"catch_all": "rest"}}},
         "must declare group = 'g'"),
        ({"segments": [{"name": "a b", "rule": "true"}]}, "String should match pattern"),
        ({"segments": [{"name": "a", "rule": "true", "colour": "red"}]}, "Extra inputs"),
        ({"segments": [{"name": "a", "rule": "true", "destinations": {"mc": {}}}]},
         "set at least one of tag, list or attribute"),
        ({"segments": [{"name": "a", "rule": "true", "destinations": {"mc": {"tag": "x", "value": 1}}}]},
         "value only applies together with attribute"),
    ],
)
def test_validation_errors(data, fragment):
    assert fragment in _error(data)


def test_models_are_usable_directly():
    s = SegmentDef(name="x", rule="opens() > 0")
    assert s.group is None and s.destinations == {}
    assert GroupDef().catch_all is None

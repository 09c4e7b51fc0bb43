"""The fault knobs the reliability tests stand on: random faults, resets, kept request bodies."""

from __future__ import annotations

import pytest
import requests

from segsync.testing.faults import RandomFaults
from segsync_brevo.emulator import BrevoEmulator
from segsync_mailchimp.emulator import MailchimpEmulator

MC_KEY = "0123456789abcdef0123456789abcdef-us1"


def test_random_faults_take_the_kinds_in_turn_and_count_them() -> None:
    faults = RandomFaults(1.0, seed=4)
    drawn = [faults.draw() for _ in range(8)]
    assert [d[0] for d in drawn] == ["429", "5xx", "timeout", "reset"] * 2
    assert [d[1] for d in drawn if d[0] == "429"] == [429, 429]
    assert all(d[1] in (500, 502, 503) for d in drawn if d[0] == "5xx")
    assert all(d[1] == 0 for d in drawn if d[0] in ("timeout", "reset"))
    assert dict(faults.injected) == {"429": 2, "5xx": 2, "timeout": 2, "reset": 2}
    assert faults.requests == 8


def test_random_faults_fail_about_their_share_and_repeat_with_the_seed() -> None:
    def sequence(seed: int) -> list:
        faults = RandomFaults(0.3, seed=seed)
        return [faults.draw() for _ in range(1000)]

    first = sequence(7)
    assert first == sequence(7)
    assert 250 <= sum(d is not None for d in first) <= 350
    none = RandomFaults(0.0)
    assert [none.draw() for _ in range(50)] == [None] * 50 and not none.injected


def test_random_faults_refuse_unknown_kinds_and_rates() -> None:
    with pytest.raises(ValueError, match=r"fault kinds must be among .*got \['slow'\]"):
        RandomFaults(0.3, kinds=["429", "slow"])
    with pytest.raises(ValueError, match="fault rate must be between 0 and 1, got 1.5"):
        RandomFaults(1.5)


def test_mailchimp_emulator_resets_connections_and_keeps_bodies() -> None:
    with MailchimpEmulator(api_key=MC_KEY, keep_bodies=True) as emulator:
        emulator.state.create_audience("aud0001")
        emulator.inject("reset", method="POST")
        with pytest.raises(requests.ConnectionError):
            requests.post(f"{emulator.url}/lists/aud0001", json={"members": []}, auth=("x", MC_KEY), timeout=5)
        answered = requests.post(f"{emulator.url}/lists/aud0001", json={"members": []}, auth=("x", MC_KEY), timeout=5)
        assert answered.status_code == 200
        assert [(r.fault, r.status, r.body) for r in emulator.calls()] == [
            ("reset", 0, '{"members": []}'), (None, 200, '{"members": []}')]


def test_brevo_emulator_random_faults_reset_and_keep_bodies() -> None:
    emulator = BrevoEmulator(api_key="k", keep_bodies=True, rate_limits=None,
                             random_faults=RandomFaults(1.0, kinds=["reset", "429"], retry_after=0.5))
    with emulator:
        url = f"{emulator.url}/contacts/folders"
        with pytest.raises(requests.ConnectionError):
            requests.post(url, json={"name": "a"}, headers={"api-key": "k"}, timeout=5)
        throttled = requests.post(url, json={"name": "b"}, headers={"api-key": "k"}, timeout=5)
        assert throttled.status_code == 429
        assert throttled.headers["x-sib-ratelimit-reset"] == "0.500"
        assert [(e.fault, e.status, e.body) for e in emulator.requests()] == [
            ("reset", 0, '{"name": "a"}'), ("status", 429, '{"name": "b"}')]
        # Neither fault applied the request.
        assert not {"a", "b"} & set(emulator.state.folders.values())

"""What the Mailchimp emulator gains from the kit: cheap projections, its own process, random 429s."""

from __future__ import annotations

import requests

from segsync.testing.emulator import EmulatorProcess, RandomFaults
from segsync_mailchimp.emulator import MailchimpEmulator

from .conftest import API_KEY, LIST_ID


def subscribe(url: str, emails: list[str], query: str = "") -> requests.Response:
    members = [{"email_address": e, "status": "subscribed"} for e in emails]
    return requests.post(f"{url}/lists/{LIST_ID}{query}", json={"members": members, "update_existing": True},
                         auth=("a", API_KEY), timeout=10)


def test_a_projection_without_member_lists_answers_the_counts_only(emulator) -> None:
    answer = subscribe(emulator.url, ["a@example.com", "b@example.com"], "?fields=total_created,errors")
    assert answer.json() == {"total_created": 2, "errors": []}
    again = subscribe(emulator.url, ["a@example.com", "c@example.com"],
                      "?fields=new_members.email_address,total_updated")
    assert again.json() == {"new_members": [{"email_address": "c@example.com"}], "total_updated": 1}
    excluded = subscribe(emulator.url, ["d@example.com"], "?exclude_fields=new_members,updated_members,_links")
    assert excluded.json() == {"errors": [], "total_created": 1, "total_updated": 0, "error_count": 0}
    assert sorted(m.email_address for m in emulator.state.audiences[LIST_ID].members.values()) == [
        "a@example.com", "b@example.com", "c@example.com", "d@example.com"]


def test_random_429s_are_too_many_requests_problems_with_retry_after() -> None:
    faults = RandomFaults(1.0, kinds=("429",), retry_after=0.5)
    with MailchimpEmulator(api_key=API_KEY, random_faults=faults) as emulator:
        answer = requests.get(f"{emulator.url}/ping", auth=("a", API_KEY), timeout=5)
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "0.5"
    assert answer.json()["title"] == "Too Many Requests"


def test_the_emulator_runs_in_its_own_process_and_is_seeded_through_control_paths() -> None:
    with EmulatorProcess("segsync_mailchimp.emulator:MailchimpEmulator", api_key=API_KEY, latency=0.01) as emulator:
        assert emulator.seed({"audiences": [LIST_ID], "members": [{"list_id": LIST_ID, "email": "a@example.com"}]}) == {
            "audiences": 1, "members": 1}
        assert subscribe(emulator.url, ["b@example.com"], "?fields=total_created").json() == {"total_created": 1}
        members = requests.get(f"{emulator.url}/lists/{LIST_ID}/members", params={"fields": "total_items"},
                               auth=("a", API_KEY), timeout=5).json()
        assert members == {"total_items": 2}
        assert [(e["method"], e["path"], e["status"]) for e in emulator.log() if e["api"]] == [
            ("POST", f"/lists/{LIST_ID}", 200), ("GET", f"/lists/{LIST_ID}/members", 200)]

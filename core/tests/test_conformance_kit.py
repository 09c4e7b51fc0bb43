"""The conformance kit on connectors that each get one thing wrong: each fails exactly the
checks that concern its mistake, with a message saying what it did and what was expected; the
connector that gets everything right passes them all."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

KIT_RUN = '''
import pytest
from pydantic import SecretStr

import conformance_fakes as fakes
from segsync.connector import ContactChange
from segsync.testing.conformance import ConnectorConformance


class KitRun(ConnectorConformance):
    connector_class = fakes.FakeCrm

    @pytest.fixture
    def fake(self):
        fakes.SERVICES["crm"] = fakes.FakeService()
        yield fakes.SERVICES["crm"]
        del fakes.SERVICES["crm"]

    @pytest.fixture
    def connector(self, fake, tmp_path):
        settings = fakes.FakeSettings(service="crm", api_key=SecretStr("sk-live-3f9a8c7d2e"))
        return self.connector_class("crm", settings, tmp_path)

    @pytest.fixture
    def service(self, fake):
        return fakes.FakeServiceAdapter(fake)

    @pytest.fixture
    def sample_changes(self):
        return [ContactChange("ann@example.com", "upsert", "subscribed", {"first_name": "Ann"}),
                ContactChange("bo@example.com", "upsert", "unsubscribed", {})]


class TestFakeCrm(KitRun):
    pass


class TestSkipsAPage(KitRun):
    connector_class = fakes.SkipsAPage


class TestAppliesBatchesTwice(KitRun):
    connector_class = fakes.AppliesBatchesTwice


class TestIgnoresRetryAfter(KitRun):
    connector_class = fakes.IgnoresRetryAfter


class TestLogsItsKey(KitRun):
    connector_class = fakes.LogsItsKey


class TestAnswersForTheWrongKey(KitRun):
    connector_class = fakes.AnswersForTheWrongKey


class TestOptsOutWithATag(KitRun):
    connector_class = fakes.OptsOutWithATag


class TestSubscribesEveryone(KitRun):
    connector_class = fakes.SubscribesEveryone


class TestNeverRetries(KitRun):
    connector_class = fakes.NeverRetries


class TestRetriesPastItsLimit(KitRun):
    connector_class = fakes.RetriesPastItsLimit


class TestAcceptsEverything(KitRun):
    connector_class = fakes.AcceptsEverything
'''


def run_kit(pytester: pytest.Pytester, test_class: str) -> tuple[dict[str, str], int, int]:
    """Run the kit on one connector: {failed test: its message}, passed and skipped counts."""
    fakes = (Path(__file__).parent / "conformance_fakes.py").read_text(encoding="utf-8")
    pytester.makepyfile(conformance_fakes=fakes, test_kit=KIT_RUN)
    pytester.syspathinsert()
    recorder = pytester.inline_run(f"test_kit.py::{test_class}", "-p", "no:cacheprovider")
    passed, skipped, failed = recorder.listoutcomes()
    messages = {report.nodeid.split("::")[-1]: str(report.longrepr) for report in failed}
    return messages, len(passed), len(skipped)


def test_the_reference_connector_passes_every_check(pytester: pytest.Pytester) -> None:
    failed, passed, skipped = run_kit(pytester, "TestFakeCrm")
    assert failed == {}
    # Only the write-batch report test is skipped: the reference reports no write batches.
    assert (passed, skipped) == (22, 1)


def test_a_connector_that_skips_a_page_fails_the_read_checks(pytester: pytest.Pytester) -> None:
    failed, _, _ = run_kit(pytester, "TestSkipsAPage")
    assert sorted(failed) == [
        "test_incremental_read_pages_through_everything_once",
        "test_incremental_read_resumes_from_each_cursor_without_gaps_or_duplicates",
    ]
    assert ("paging: a full read of contacts yielded 2 batches and missed 5 of the 13 contacts the service "
            "holds") in failed["test_incremental_read_pages_through_everything_once"]
    assert "expected every contact once" in failed["test_incremental_read_pages_through_everything_once"]
    assert "resume: resuming from the cursor of batch 1 of 2 ({'after': 5}) never yielded 3 contacts" in (
        failed["test_incremental_read_resumes_from_each_cursor_without_gaps_or_duplicates"])


def test_a_connector_that_applies_a_batch_twice_fails_the_checks_that_count_copies(
    pytester: pytest.Pytester,
) -> None:
    failed, _, _ = run_kit(pytester, "TestAppliesBatchesTwice")
    assert sorted(failed) == [
        "test_create_lands_a_subscribed_contact_with_its_attributes",
        "test_replaying_a_batch_changes_nothing",
        "test_update_changes_the_attributes_of_the_same_contact",
    ]
    assert ("create: the service holds status subscribed, tags [], attributes {'first_name': 'Ada'}, 2 copies; "
            "expected one contact, status subscribed, with {'first_name': 'Ada'}") in (
        failed["test_create_lands_a_subscribed_contact_with_its_attributes"])
    assert ("replay: after one write the service holds conformance.replay0@example.com: status subscribed, "
            "tags ['conformance-replay'], attributes {'first_name': 'Ada'}, 2 copies;") in (
        failed["test_replaying_a_batch_changes_nothing"])
    assert "expected one copy each" in failed["test_replaying_a_batch_changes_nothing"]


def test_a_connector_that_ignores_the_retry_hint_fails_that_check_only(pytester: pytest.Pytester) -> None:
    failed, _, _ = run_kit(pytester, "TestIgnoresRetryAfter")
    assert sorted(failed) == ["test_retry_hint_of_a_429_is_honoured"]
    message = failed["test_retry_hint_of_a_429_is_honoured"]
    assert "retry hint: the connector retried 0.0" in message
    assert "s after a 429 that asked it to wait 0.3 s; expected it to wait at least as long as the service asked" in message


def test_a_connector_that_logs_its_key_fails_the_secrets_check(pytester: pytest.Pytester) -> None:
    failed, _, _ = run_kit(pytester, "TestLogsItsKey")
    assert sorted(failed) == ["test_secrets_never_reach_logs_output_outcomes_or_cursors"]
    message = failed["test_secrets_never_reach_logs_output_outcomes_or_cursors"]
    assert "secret values leaked (expected them masked everywhere): api_key in the log: …" in message
    assert "GET /contacts with key <the secret>" in message
    # The failure names the leak without repeating it.
    assert "sk-live-3f9a8c7d2e" not in message.split("AssertionError: ")[-1]


def test_a_connector_that_answers_for_the_wrong_key_fails_the_outcome_check(pytester: pytest.Pytester) -> None:
    failed, _, _ = run_kit(pytester, "TestAnswersForTheWrongKey")
    assert sorted(failed) == [
        "test_a_batch_with_refused_records_reports_each",
        "test_replaying_a_batch_changes_nothing",
        "test_write_answers_exactly_once_per_change",
    ]
    assert ("write answered for keys not in the batch: ['ann@example.com'], and not for: ['bo@example.com']; "
            "expected exactly one outcome per change") in failed["test_write_answers_exactly_once_per_change"]



def test_a_connector_that_opts_out_with_a_tag_fails_the_opt_out_check(pytester: pytest.Pytester) -> None:
    failed, _, _ = run_kit(pytester, "TestOptsOutWithATag")
    assert sorted(failed) == ["test_unsubscribe_lands_as_the_services_own_opt_out"]
    assert ("unsubscribe: the service holds status subscribed, tags ['unsubscribed'], attributes "
            "{'first_name': 'Ada'}; expected status opted_out (the service's own opt-out, which no campaign "
            "can override)") in failed["test_unsubscribe_lands_as_the_services_own_opt_out"]


def test_a_connector_that_subscribes_without_consent_fails_the_consent_check(pytester: pytest.Pytester) -> None:
    failed, _, _ = run_kit(pytester, "TestSubscribesEveryone")
    assert sorted(failed) == ["test_no_consent_never_becomes_subscribed"]
    message = failed["test_no_consent_never_becomes_subscribed"]
    assert ("no consent: status 'none' (previous None) was answered ok and the service holds status subscribed, "
            "tags [], attributes {'first_name': 'Ada'}; expected no contact or not_subscribed or opted_out; "
            "status 'pending' (previous None) was answered ok") in message
    assert "status 'none' (previous 'unsubscribed') was answered ok and the service holds status subscribed" in message


def test_a_connector_that_never_retries_fails_the_retry_checks(pytester: pytest.Pytester) -> None:
    failed, _, _ = run_kit(pytester, "TestNeverRetries")
    assert sorted(failed) == ["test_429_and_5xx_are_retried_within_the_declared_attempts",
                              "test_retry_hint_of_a_429_is_honoured"]
    assert ("retries: with 2 failures ([429, 503]) before success and 3 attempts declared, the connector answered "
            "retryable (HTTP 429) after requests answered [429]; expected it to retry until the write landed (ok)"
            ) in failed["test_429_and_5xx_are_retried_within_the_declared_attempts"]


def test_a_connector_that_retries_past_its_limit_fails_the_attempts_check(pytester: pytest.Pytester) -> None:
    failed, _, _ = run_kit(pytester, "TestRetriesPastItsLimit")
    assert sorted(failed) == ["test_429_and_5xx_are_retried_within_the_declared_attempts"]
    assert ("retries: with every one of its 3 declared attempts answered 503, the connector answered ok after "
            "requests answered [503, 503, 503, 200, 200]; expected retryable with a reason after exactly 3 attempts"
            ) in failed["test_429_and_5xx_are_retried_within_the_declared_attempts"]


def test_a_connector_that_answers_ok_for_a_refused_record_fails_the_refusal_check(pytester: pytest.Pytester) -> None:
    failed, _, _ = run_kit(pytester, "TestAcceptsEverything")
    assert sorted(failed) == ["test_a_batch_with_refused_records_reports_each"]
    assert ("refusals: expected each refused record rejected with a reason, got "
            "conformance.refused@example.com: ok") in failed["test_a_batch_with_refused_records_reports_each"]

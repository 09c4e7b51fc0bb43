"""Carries out a :class:`~segsync_brevo.planner.Plan` and maps Brevo's answers to outcomes."""

from __future__ import annotations

import csv
import io
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from segsync import ContactChange, OutcomeReport, WriteResult, mask_email

from segsync_brevo.account import AccountDirectory
from segsync_brevo.api import BrevoApi, BrevoApiError, RetryableApiError
from segsync_brevo.limits import LIST_MEMBERS_PER_CALL
from segsync_brevo.mapping import no_consent_refusal, valid_email
from segsync_brevo.outcomes import Outcomes
from segsync_brevo.planner import ImportJob, Plan, Planner
from segsync_brevo.settings import BrevoSettings
from segsync_brevo.side_by_side import side_by_side

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


def _missing_positions(message: str, entries: list[dict]) -> set[int] | None:
    """Positions in ``entries`` a ``document_not_found`` answer names ("No contact found for
    indexes 3,4", or addresses); None when it names none, or a position the batch has not."""
    named: set[int] = set()
    by_email = {str(entry.get("email", "")).lower(): i for i, entry in enumerate(entries)}
    for token in re.findall(r"[^\s,;:()\[\]\"']+", message):
        if token.isdigit():
            named.add(int(token))
        elif token.lower() in by_email:
            named.add(by_email[token.lower()])
    if not named or max(named) >= len(entries):
        return None
    return named


def _fail(outcomes: Outcomes, indices: list[int], exc: BrevoApiError, what: str) -> None:
    reason = f"{what}: {exc}"
    if isinstance(exc, RetryableApiError):
        outcomes.retry(indices, reason)
    else:
        outcomes.reject(indices, reason)


class Writer:
    def __init__(
        self,
        api: BrevoApi,
        settings: BrevoSettings,
        directory: AccountDirectory,
        *,
        poll_seconds: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.api = api
        self.settings = settings
        self.planner = Planner(settings, directory)
        self.directory = directory
        self.poll_seconds = poll_seconds
        self.sleep = sleep
        # A test that records the waits instead of sleeping gets a clock that its waits move.
        self.clock = clock or (time.monotonic if sleep is time.sleep else _VirtualClock(self))

    def write(self, changes: Sequence[ContactChange], report: OutcomeReport | None = None) -> WriteResult:
        calls_before = self.api.calls
        outcomes = Outcomes(changes, report)
        create, lookup = self._lists_named(changes)
        try:
            if any(change.attributes for change in changes):
                self.directory.attributes()  # read before planning (usually known already: check)
            # The lists are read and created (side by side) while the changes are planned.
            needed: Future[set[str] | None] = Future()
            with ThreadPoolExecutor(1, thread_name_prefix="brevo-setup") as setup:
                lists = setup.submit(self._set_up, create, lookup, needed)
                try:
                    plan = self.planner.plan(changes, outcomes, lists_ready=lists.result,
                                             lists_needed=needed.set_result)
                finally:
                    if not needed.done():  # planning failed: the set-up must not wait for it
                        needed.set_result(None)
        except BrevoApiError as exc:  # lists/attributes could not be resolved at all
            _fail(outcomes, list(range(len(changes))), exc, "preparing the Brevo write failed")
            outcomes.settle_idle()
            return WriteResult(outcomes.result(), self.api.calls - calls_before)
        _expect_calls(plan, outcomes)
        outcomes.settle_idle()
        self._deletes(plan, outcomes)
        # Blocklist flips go before imports: an opt-out reaches Brevo before any other write.
        self._batch(plan, outcomes)
        self._imports(plan, outcomes)
        self._members(plan, outcomes, add=True)
        self._members(plan, outcomes, add=False)
        return WriteResult(outcomes.result(), self.api.calls - calls_before)

    def _set_up(self, create: list[str], lookup: list[str], needed: Future[set[str] | None]) -> None:
        """The lists a write needs, beside its planning. The account's lists, and the folder
        should one of ``create`` be missing, are read (the folder created) while the changes
        are read; a missing list is created only once the planner has read every change, and
        only if a change it did not refuse (an invalid address, a missing attribute) needs it
        (``needed``: the names of those lists; None, all of ``create``)."""
        if self.directory.missing(create):
            self.directory.folder_id()
        names = needed.result()
        self.directory.prepare([name for name in create if names is None or name in names], lookup)

    def _lists_named(self, changes: Sequence[ContactChange]) -> tuple[list[str], list[str]]:
        """The lists a write may need, for :meth:`AccountDirectory.prepare`: those to create when
        missing (the audience list if any change may be imported, and each segment entered when
        ``create_lists``), and those only looked up (segments left, or entered without
        ``create_lists``). Changes that delete, or that will be refused for lack of consent,
        name none."""
        names = self.settings.brevo_attributes()
        entered: dict[str, None] = {}
        left: dict[str, None] = {}
        audience = False
        seen: set[tuple[Any, Any]] = set()
        for change in changes:
            if change.op == "delete" or no_consent_refusal(change.status, change.previous_status):
                continue
            if not audience and (change.previous_status is None or any(
                    value is not None and key in names for key, value in change.attributes.items())):
                audience = True
            segments = (tuple(change.tags_add), tuple(change.tags_remove))
            if segments not in seen:
                seen.add(segments)
                entered.update(dict.fromkeys(segments[0]))
                left.update(dict.fromkeys(segments[1]))
        if self.settings.segment_mode != "lists":
            entered, left = {}, {}
        create = [self.settings.audience_list] if audience else []
        if self.settings.create_lists:
            create += list(entered)
            return create, list(left)
        return create, [*entered, *left]

    # -- deletes -------------------------------------------------------------------------

    def _deletes(self, plan: Plan, outcomes: Outcomes) -> None:
        for index, email in plan.deletes:
            try:
                self.api.delete_contact(email)
            except BrevoApiError as exc:
                if exc.status == 404:
                    continue  # already gone: erasure achieved
                if exc.status == 405:
                    log.warning("Brevo refused to delete %s (405)", mask_email(email))
                    outcomes.reject(
                        [index],
                        "Brevo refuses to delete this contact (405: a registered email of the "
                        f"account cannot be deleted): {exc.message}",
                    )
                    continue
                _fail(outcomes, [index], exc, "delete failed")
            finally:
                outcomes.settle([index])

    # -- imports -------------------------------------------------------------------------

    def _imports(self, plan: Plan, outcomes: Outcomes) -> None:
        pending: list[tuple[ImportJob, int]] = []
        accepted: dict[int, float] = {}  # process id -> when Brevo's 202 for it arrived

        def send(job: ImportJob) -> tuple[int, float]:
            written = {} if job.rows_json is None else {"rows_json": job.rows_json}
            process_id = self.api.import_contacts(job.rows, list_ids=job.list_ids, email_blacklist=job.blacklist,
                                                  **written)
            # Read here, in the thread the 202 came to, as it came: the calling thread collects
            # the answers later, one after another, microseconds apart whatever their order.
            accepted_at = self.clock()
            job.rows_json = None  # sent: its memory back
            return process_id, accepted_at

        # Sent side by side: one import's body travels and is read by Brevo while another's
        # does. Outcomes are reported as each import's process completes (below).
        for job, sent in self._side_by_side(send, plan.imports):
            if isinstance(sent, BrevoApiError):
                _fail(outcomes, job.indices, sent, "contact import was refused")
                outcomes.settle(job.indices)
            else:
                process_id, accepted[process_id] = sent
                pending.append((job, process_id))
        # Brevo numbers processes as they arrive and works through them in that order, a few at
        # once: the oldest outstanding import finishes first.
        pending.sort(key=lambda sent: sent[1])
        if pending:
            # Before the first wait, not after the last poll. It delays the first poll by as long
            # (~0.1 s for 100,000 changes): counted into the wait instead, the first poll came at
            # the edge of the oldest import's end, and a first round that finds it unfinished
            # doubles the wait (bench/RESULTS-brevo.md).
            outcomes.build_ahead()
        deadline = self.clock() + self.settings.process_timeout_seconds
        wait = self.poll_seconds
        # How long the first import found done took is counted from the last 202, not from its
        # own: nothing is polled before every import is sent, so the time between its 202 and
        # the last one says nothing of how long it took (sent side by side, 7 imports answered
        # over ~0.4 s: counted from its own 202, each estimate below came ~0.4 s too late).
        polls_from = max(accepted.values(), default=0.0)
        first_done: tuple[float, float, int] | None = None  # (found done at, took, rows)

        def can_be_done(sent: tuple[ImportJob, int], lead: int, now: float,
                        first: tuple[float, float, int]) -> bool:
            """Whether an import behind ``lead`` (just found done) can be done by ``now``: Brevo
            accepted it no later than the lead (its 202 came first, though Brevo numbered it
            later), or it would be done by now even if it waited for a place: the first import
            found done took ``took`` for its rows, and this one can start no later than when
            that one was found done."""
            job, process_id = sent
            found_at, took, rows = first
            return (accepted[process_id] <= accepted[lead]
                    or found_at + took * len(job.rows) / max(1, rows) <= now)

        while pending:
            # Every poll counts against the /processes bucket (100 requests an hour): wait
            # first, then poll the oldest outstanding import alone, so a round that finds
            # nothing new costs one poll. Once it is found done, the imports behind it that can
            # be done by then are polled side by side, max_connections at a time (one latency
            # per group instead of one per import), then the oldest left alone again; the round
            # stops after a poll that found an import not done (a later one will hardly be).
            # After progress the wait starts again from poll_seconds; without, it doubles.
            self.sleep(wait)
            progressed = False
            behind: list[tuple[ImportJob, int]] = []  # can be done, not polled yet this round
            while pending:
                lead = not behind
                group = pending[:1] if lead else behind[:self.settings.max_connections]
                behind = behind[len(group):]
                answers = {process_id: answer for (_, process_id), answer in self._side_by_side(
                    lambda sent: self.api.get_process(sent[1]), group)}
                settled: set[int] = set()
                for job, process_id in group:  # settled oldest first, as Brevo numbered them
                    answer = answers[process_id]
                    if isinstance(answer, BrevoApiError):
                        if isinstance(answer, RetryableApiError) and self.clock() < deadline:
                            continue
                        _fail(outcomes, job.indices, answer, f"import process {process_id} unreadable")
                    elif answer.get("status") == "completed":
                        now = self.clock()
                        if first_done is None:
                            first_done = (now, now - polls_from, len(job.rows))
                        self._import_report(job, answer, outcomes)
                        progressed = True
                        if lead:
                            behind = [sent for sent in pending[1:]
                                      if can_be_done(sent, process_id, now, first_done)]
                    elif self.clock() >= deadline:
                        outcomes.retry(
                            job.indices,
                            f"import process {process_id} still {answer.get('status')} after "
                            f"{self.settings.process_timeout_seconds:.0f} s",
                        )
                    else:
                        continue
                    outcomes.settle(job.indices)
                    settled.add(process_id)
                pending[:] = [sent for sent in pending if sent[1] not in settled]
                if len(settled) < len(group):  # one was not done
                    break
            if not progressed:
                wait = min(wait * 2, 30.0)
            elif pending and first_done is not None:
                # The import found unfinished waited for one of those just done to free a place
                # (Brevo works a few at once, in order): it can be done no sooner than the
                # first import was found done plus as long as that one took, for its rows.
                # Never later than poll_seconds from now, as before.
                found_at, took, rows = first_done
                ready_at = found_at + took * len(pending[0][0].rows) / max(1, rows)
                wait = min(self.poll_seconds, max(0.0, ready_at - self.clock()))
            else:
                wait = self.poll_seconds

    def _side_by_side(self, call: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[T, R | BrevoApiError]]:
        return side_by_side(call, items, self.settings.max_connections)

    def _import_report(self, job: ImportJob, process: dict, outcomes: Outcomes) -> None:
        """Map the CSV reports a completed import points at back to the rows they name."""
        reports = ((process.get("info") or {}).get("import") or {})
        index_of = {row["email"]: index for row, index in zip(job.rows, job.indices)}
        url = reports.get("invalid_emails")
        if not url:
            return
        try:
            text = self.api.fetch_report(url)
        except BrevoApiError as exc:
            _fail(outcomes, job.indices, exc, "import report could not be read")
            return
        for record in csv.reader(io.StringIO(text)):
            if not record or record[0].strip().upper() == "EMAIL":
                continue
            email = valid_email(record[0]) or record[0].strip().lower()
            if email in index_of:
                outcomes.reject(
                    [index_of[email]], "Brevo's import rejected the address as invalid", "email"
                )

    # -- batch updates -------------------------------------------------------------------

    def _batch(self, plan: Plan, outcomes: Outcomes) -> None:
        size = self.settings.batch_size
        for start in range(0, len(plan.batch), size):
            self._batch_chunk(plan.batch[start : start + size], outcomes, plan)

    def _batch_chunk(self, chunk: list[tuple[int, dict]], outcomes: Outcomes, plan: Plan) -> None:
        self._update_batch(chunk, outcomes, plan)
        outcomes.settle([i for i, _ in chunk])

    def _update_batch(self, chunk: list[tuple[int, dict]], outcomes: Outcomes, plan: Plan) -> None:
        try:
            self.api.update_batch([entry for _, entry in chunk])
        except BrevoApiError as exc:
            if exc.status == 404 and exc.code == "document_not_found":
                gone = _missing_positions(exc.message, [entry for _, entry in chunk])
                if len(chunk) == 1 or (gone is not None and len(gone) == len(chunk)):
                    self._recreate(chunk, outcomes, plan)
                    return
                if gone:
                    # The others go at once (their opt-outs above all); the named ones are then
                    # sent alone, which confirms them gone (or lands them, should Brevo count
                    # its indexes from 1).
                    self._update_batch([e for i, e in enumerate(chunk) if i not in gone], outcomes, plan)
                    self._update_batch([chunk[i] for i in sorted(gone)], outcomes, plan)
                    return
            if exc.status in (400, 404) and len(chunk) > 1:
                # One error answer for the whole batch, naming no usable culprit: halve it.
                middle = len(chunk) // 2
                self._update_batch(chunk[:middle], outcomes, plan)
                self._update_batch(chunk[middle:], outcomes, plan)
                return
            _fail(outcomes, [i for i, _ in chunk], exc, "batch update failed")

    def _recreate(self, entries: list[tuple[int, dict]], outcomes: Outcomes, plan: Plan) -> None:
        """Contacts deleted in Brevo since segsync wrote them: create them again, in the state
        the change asks for. An opt-out is re-created blocklisted, so that no later import (by
        segsync or another tool) can make the address mailable in Brevo; a re-subscribe
        is re-created mailable, with its lists, as a new subscriber would be."""
        importing = {i for job in plan.imports for i in job.indices}
        todo = [(i, e) for i, e in entries if i not in importing]  # an import creates them anyway
        if not todo:
            return
        try:
            audience = self.directory.list_id(self.settings.audience_list, create=True)
        except BrevoApiError as exc:
            _fail(outcomes, [i for i, _ in todo], exc, "re-creating contacts deleted in Brevo failed")
            return
        groups: dict[tuple[frozenset[int], bool], list[tuple[int, dict]]] = {}
        for index, entry in todo:
            key = (frozenset({audience, *(entry.get("listIds") or ())}), bool(entry.get("emailBlacklisted")))
            groups.setdefault(key, []).append((index, {"email": entry["email"]}))
        for (list_ids, blacklist), rows in groups.items():
            log.info("re-creating %d contact(s) deleted in Brevo (blocklisted: %s)", len(rows), blacklist)
            plan.imports.append(ImportJob([r for _, r in rows], [i for i, _ in rows], list_ids, blacklist))
            outcomes.expect(i for i, _ in rows)  # not reported before this import is done

    # -- list memberships ----------------------------------------------------------------

    def _members(self, plan: Plan, outcomes: Outcomes, *, add: bool) -> None:
        todo = plan.adds if add else plan.removes
        chunks: list[tuple[int, list[tuple[int, str]]]] = []
        for list_id, members in todo.items():
            outcomes.settle([i for i, _ in members if outcomes.failed(i)])  # refused: not sent
            members = [(i, e) for i, e in members if not outcomes.failed(i)]
            chunks.extend((list_id, members[start : start + LIST_MEMBERS_PER_CALL])
                          for start in range(0, len(members), LIST_MEMBERS_PER_CALL))
        call = self.api.add_to_list if add else self.api.remove_from_list
        # Side by side up to max_connections, which the contacts bucket (10 a second) paces:
        # one call at a time would use a tenth of that at Brevo's latency.
        for (list_id, chunk), result in self._side_by_side(
                lambda item: call(item[0], [e for _, e in item[1]]), chunks):
            emails = [e for _, e in chunk]
            if isinstance(result, BrevoApiError):
                if result.status == 400 and "list" in result.message.lower():
                    failed = {e.lower() for e in emails}  # every address failed
                else:
                    _fail(outcomes, [i for i, _ in chunk], result, f"list {list_id} update failed")
                    outcomes.settle([i for i, _ in chunk])
                    continue
            else:
                failed = {e.lower() for e in result.get("failure") or []}
            if add:
                outcomes.reject(
                    [i for i, e in chunk if e in failed],
                    f"Brevo did not add the contact to list {list_id} "
                    "(it reports a missing contact and an existing member alike)",
                )
            # A failed removal means the contact is not in the list: the goal holds.
            outcomes.settle([i for i, _ in chunk])


class _VirtualClock:
    """Seconds that pass only through a writer's (injected) sleep."""

    def __init__(self, writer: Writer) -> None:
        self.now = 0.0
        sleep = writer.sleep

        def advance(seconds: float) -> None:
            self.now += seconds
            sleep(seconds)

        writer.sleep = advance

    def __call__(self) -> float:
        return self.now


def _expect_calls(plan: Plan, outcomes: Outcomes) -> None:
    """Count every change into each call it is part of, before any call is made."""
    outcomes.expect(i for i, _ in plan.deletes)
    outcomes.expect(i for i, _ in plan.batch)
    for job in plan.imports:
        outcomes.expect(job.indices)
    for members in [*plan.adds.values(), *plan.removes.values()]:
        outcomes.expect(i for i, _ in members)

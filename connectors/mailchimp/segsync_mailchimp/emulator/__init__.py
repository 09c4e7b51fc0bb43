"""A local, stateful Mailchimp Marketing API v3 for tests, demos, benchmarks and dry runs.

    from segsync_mailchimp.emulator import MailchimpEmulator

    with MailchimpEmulator(latency=0.1) as em:
        em.state.create_audience("aud0001")
        client.api_client.host = em.url   # the real SDK, pointed at the emulator
"""

from segsync_mailchimp.emulator.problems import GLOSSARY, ApiProblem
from segsync_mailchimp.emulator.server import DEFAULT_API_KEY, MailchimpEmulator, RequestRecord
from segsync_mailchimp.emulator.state import BATCH_MAX, PAGE_MAX, EmulatorState, subscriber_hash

__all__ = [
    "BATCH_MAX",
    "DEFAULT_API_KEY",
    "GLOSSARY",
    "PAGE_MAX",
    "ApiProblem",
    "EmulatorState",
    "MailchimpEmulator",
    "RequestRecord",
    "subscriber_hash",
]

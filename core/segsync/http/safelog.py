"""What of a request may be logged: URLs, headers and transport errors without their secrets.

Credentials travel in headers (``Authorization``, ``api-key``, ``X-API-Key``, cookies) and in
query strings (``?apikey=…``, ``access_token=…``); the values of those are replaced by ``***``
before anything is logged, and email addresses (often a query parameter or a path segment) are
masked. The log handler of :mod:`segsync.logs` redacts known secrets again as a second line of
defence; these functions make a line safe whichever handler prints it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from segsync.redaction import SECRET_MASK, mask_emails

SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "api-key", "x-api-key", "apikey", "cookie", "set-cookie",
    "x-auth-token", "x-access-token",
})
SECRET_PARAMS = frozenset({
    "api_key", "apikey", "key", "hapikey", "token", "access_token", "refresh_token", "id_token",
    "client_secret", "secret", "password", "signature", "sig", "code", "auth",
})


def safe_url(url: str, *, secret_params: Iterable[str] = SECRET_PARAMS) -> str:
    """``url`` with secret query values and any user:password replaced, addresses masked."""
    secret = {p.lower() for p in secret_params}
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:  # credentials in the authority: https://user:pass@host
        netloc = f"{SECRET_MASK}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, SECRET_MASK if k.lower() in secret else v) for k, v in pairs], safe="*@")
    return mask_emails(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


def safe_headers(headers: Mapping[str, str], *, secret_headers: Iterable[str] = SECRET_HEADERS) -> dict[str, str]:
    """A copy of ``headers`` with the values of credential headers replaced."""
    secret = {h.lower() for h in secret_headers}
    return {k: SECRET_MASK if k.lower() in secret else mask_emails(str(v)) for k, v in headers.items()}


def safe_error(exc: BaseException) -> str:
    """A transport error's text without query strings (``requests`` quotes the whole URL)."""
    text = str(exc) or type(exc).__name__
    words = []
    for word in text.split(" "):
        if "?" in word:
            head, _, tail = word.partition("?")
            # Keep what closes the quoted URL ("...?a=b)" -> "...?***)").
            closing = "".join(ch for ch in tail[-2:] if ch in "')\",")
            word = f"{head}?{SECRET_MASK}{closing}"
        words.append(word)
    return mask_emails(" ".join(words))[:500]

"""The distributions behind plugins: where one was installed from (PEP 610), and which one to
install for a connector type nobody provides, with the exact command.

Reading ``direct_url.json`` needs only :mod:`importlib.metadata`: ``segsync plugins`` shows it
without importing pip. Its format (the Direct URL Data Structure,
https://packaging.python.org/specifications/direct-url-data-structure/): a ``url`` and exactly
one of ``vcs_info`` (a repository), ``archive_info`` (an sdist or a wheel) or ``dir_info`` (a
local folder; ``"editable": true`` for a development install); installers write it only for
what was not installed by name from an index, and must strip credentials from ``url`` (we strip
any left, too).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from urllib.parse import unquote, urlsplit, urlunsplit

# Connector types of the repository's own connectors → their distributions. Any other type is
# looked for under the naming convention ``segsync-<type>`` (what `segsync new connector` writes).
FIRST_PARTY_CONNECTORS = {
    "files": "segsync-files",
    "mailchimp": "segsync-mailchimp",
    "brevo": "segsync-brevo",
    "hubspot": "segsync-hubspot",
    "constantcontact": "segsync-constantcontact",
}


@dataclass(frozen=True)
class InstallSource:
    """Where a distribution came from.

    ``kind``: ``editable`` (a local folder, in development mode), ``directory`` (a local folder,
    copied), ``archive`` (a wheel or sdist file, or a URL of one), ``vcs`` (a repository),
    ``index`` (by name from a package index: no ``direct_url.json``), ``built-in`` (part of
    segsync) or ``in-process`` (registered by the program itself). ``url`` is the PEP 610 URL
    without credentials, a local path for ``file:`` URLs.
    """

    kind: str
    url: str | None = None

    def __str__(self) -> str:
        return f"{self.kind} {self.url}" if self.url else self.kind

    def to_dict(self) -> dict[str, str | None]:
        return {"kind": self.kind, "url": self.url}


BUILT_IN = InstallSource("built-in")
IN_PROCESS = InstallSource("in-process")


def install_source(dist: metadata.Distribution | None) -> InstallSource | None:
    """What ``dist``'s ``direct_url.json`` (PEP 610) says; ``index`` without one. None when
    there is no distribution to ask."""
    if dist is None:
        return None
    import json  # when a listing asks, not at every start

    try:
        text = dist.read_text("direct_url.json")
    except OSError:
        text = None
    if not text:
        return InstallSource("index")
    try:
        record = json.loads(text)
        url = _displayable(str(record["url"]))
    except (ValueError, KeyError, TypeError):
        return InstallSource("unknown (unreadable direct_url.json)")
    if "vcs_info" in record:
        return InstallSource("vcs", url)
    if "archive_info" in record:
        return InstallSource("archive", url)
    dir_info = record.get("dir_info")
    if isinstance(dir_info, dict) and dir_info.get("editable"):
        return InstallSource("editable", url)
    return InstallSource("directory", url)


def _displayable(url: str) -> str:
    """A ``file:`` URL as its path; any other URL without the user and password it may carry."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return unquote(parts.path)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def normalize_name(name: str) -> str:
    """A distribution or entry-point name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def connector_distribution(type_name: str) -> tuple[str, bool]:
    """The distribution providing connector ``type_name``, and whether that is known (a
    first-party connector) rather than the ``segsync-<type>`` naming convention."""
    known = FIRST_PARTY_CONNECTORS.get(type_name)
    if known is not None:
        return known, True
    return f"segsync-{type_name.replace('_', '-')}", False


def missing_connector(type_name: str, installed: Iterable[str]) -> str:
    """Why connector ``type_name`` is unavailable and the exact command that installs it (after
    the closest installed type, when the name looks like a typo of one)."""
    import difflib  # only for this message: segsync's start does without it

    distribution, known = connector_distribution(type_name)
    types = sorted(installed)
    close = difflib.get_close_matches(type_name, types, n=1)
    typo = f"did you mean {close[0]!r}? If not, " if close else ""
    where = (f"it comes with the distribution {distribution}" if known else
             f"by the naming convention its distribution is {distribution}")
    return (f"no connector of type {type_name!r} (installed: {', '.join(types) or 'none'}); "
            f"{typo}{where}: segsync install {distribution}")

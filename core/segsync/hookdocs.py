"""Render ``docs/hooks.md`` from the hook specifications (``python -m segsync.hookdocs``).

The hook reference is generated, never hand-edited, so it cannot drift from ``hookspecs.py``;
a test fails when the committed file differs from what this renders.
"""

from __future__ import annotations

import inspect
import textwrap

from segsync import hookspecs

HEADER = """\
# Hook reference

segsync's plugin hooks, generated from `core/segsync/hookspecs.py` by
`python -m segsync.hookdocs > docs/hooks.md` (a test fails when this file is stale).

Implement a hook with `@segsync.hookimpl` in a module (or class) that your distribution
registers under the `segsync` entry-point group:

```toml
[project.entry-points.segsync]
my_plugin = "my_package"
```

Each `register` callback is typed by a Protocol in `segsync.hookspecs` (`RegisterConnector`,
`RegisterEventType`, … ; the first two are also `segsync.RegisterConnector` and
`segsync.RegisterEventType`), so a type checker reads your hook implementations against them.

See [writing-a-connector.md](writing-a-connector.md) for a whole connector.
"""


def hook_names() -> list[str]:
    return sorted(
        name for name, fn in vars(hookspecs).items()
        if name.startswith("segsync_") and callable(fn)
    )


def render() -> str:
    parts = [HEADER]
    for name in hook_names():
        fn = getattr(hookspecs, name)
        opts = getattr(fn, "segsync_spec", {}) or {}
        flags = [k for k in ("firstresult", "historic") if opts.get(k)]
        signature = str(inspect.signature(fn)).replace("'", "")
        parts.append(f"## `{name}`\n")
        parts.append(f"```python\ndef {name}{signature}\n```\n")
        if flags:
            parts.append(f"Options: {', '.join(flags)}.\n")
        parts.append(textwrap.dedent(inspect.getdoc(fn) or "").strip() + "\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")

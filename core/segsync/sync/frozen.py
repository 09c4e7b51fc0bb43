"""Building many frozen dataclass instances cheaply (one per change, a million in a large run).

A frozen dataclass's ``__init__`` sets each field with its own ``object.__setattr__`` call; a
constructor from :func:`constructor` sets the instance's fields at once. It is only for values
the caller has already typed itself: nothing is checked and no default is filled in, so every
field must be given by name.
"""

from __future__ import annotations

from typing import Any


def constructor(cls: type) -> Any:
    """``make(**fields)`` for the frozen dataclass ``cls`` (every field by name)."""
    new, set_fields = object.__new__, object.__setattr__

    def make(**values: Any) -> Any:
        instance = new(cls)
        set_fields(instance, "__dict__", values)
        return instance

    return make

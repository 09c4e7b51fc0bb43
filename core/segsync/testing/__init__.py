"""Helpers for testing segsync plugins and connectors: part of the public API.

* :mod:`segsync.testing.conformance` — ``ConnectorConformance``, the standard tests every
  connector passes (subclass it in your tests);
* :class:`Project` — a temporary project folder with its config and data files, and its runs;
  :data:`SAMPLE_CONFIG`/:data:`SAMPLE_FILES` a small one to start from (``Project.sample``);
* :class:`MemoryConnector` (``type = "memory"``, registered by :class:`MemoryPlugin`) — an
  in-memory destination; :func:`reset_memory` forgets what it holds;
* :class:`FakeClock` — the "now" of a run under the test's control;
* :class:`ScratchStore` — what the store makes of a connector's batches;
* :func:`registered_connectors`, :func:`plugin_load_failures` — what the installed plugins
  register, loaded as segsync loads them;
* record builders :func:`contact`, :func:`event`, :func:`consent`, :func:`batch` (what a
  source yields) and :func:`change` (what a destination is given);
* :mod:`segsync.testing.faults`, :mod:`segsync.testing.serve`, :mod:`segsync.testing.payloads`
  — fault injection, serving an emulator, hypothesis strategies for odd payloads.

The pytest plugin (:mod:`segsync.testing.pytest_plugin`, installed with segsync) adds the
fixtures ``segsync_project``, ``fake_clock`` and ``memory_destination``. Names are imported on
first use: importing this package costs nothing.
"""

from segsync.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "FakeClock": "segsync.testing.clock",
    "MemoryConnector": "segsync.testing.memory",
    "MemoryPlugin": "segsync.testing.memory",
    "MemorySettings": "segsync.testing.memory",
    "reset_memory": "segsync.testing.memory",
    "Project": "segsync.testing.project",
    "SAMPLE_CONFIG": "segsync.testing.project",
    "SAMPLE_FILES": "segsync.testing.project",
    "ScratchStore": "segsync.testing.store",
    "plugin_load_failures": "segsync.testing.plugins",
    "registered_connectors": "segsync.testing.plugins",
    "batch": "segsync.testing.records",
    "change": "segsync.testing.records",
    "consent": "segsync.testing.records",
    "contact": "segsync.testing.records",
    "event": "segsync.testing.records",
})

__all__ = [
    "FakeClock",
    "MemoryConnector",
    "MemoryPlugin",
    "MemorySettings",
    "Project",
    "SAMPLE_CONFIG",
    "SAMPLE_FILES",
    "ScratchStore",
    "batch",
    "change",
    "consent",
    "contact",
    "event",
    "plugin_load_failures",
    "registered_connectors",
    "reset_memory",
]

"""segsync connector for files: CSV/JSONL sources and audience files as a destination.

The plugin host imports this module at every start (``segsync --help`` included); the connector
(and DuckDB, which reads the files) is imported when the connector is first asked for.
"""

from segsync import hookimpl, lazy_exports

__all__ = ["FilesConnector", "FilesSettings"]
__getattr__, __dir__ = lazy_exports(__name__, {
    "FilesConnector": "segsync_files.connector",
    "FilesSettings": "segsync_files.settings",
})


@hookimpl
def segsync_register_connectors(register):
    from segsync_files.connector import FilesConnector

    register(FilesConnector)

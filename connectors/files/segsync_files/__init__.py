"""segsync connector for files: CSV/JSONL sources and audience files as a destination."""

from segsync import hookimpl
from segsync_files.connector import FilesConnector, FilesSettings

__all__ = ["FilesConnector", "FilesSettings"]


@hookimpl
def segsync_register_connectors(register):
    register(FilesConnector)

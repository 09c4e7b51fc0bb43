"""Run a connector's emulator in the foreground (``python -m segsync_<name>.emulator``)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable


def serve_until_interrupted(stop_server: Callable[[], None]) -> None:
    """Block until Ctrl-C or SIGTERM, then call ``stop_server`` (the server runs in threads)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_server()

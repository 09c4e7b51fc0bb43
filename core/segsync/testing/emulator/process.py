"""An emulator in a process of its own, so that a benchmark measures the client, not the emulator.

    with EmulatorProcess("segsync_mailchimp.emulator:MailchimpEmulator", latency=0.1) as em:
        em.seed({"audiences": ["aud0001"]})
        settings = MailchimpSettings(..., host=em.url)
        ...
        log = em.log()          # the request log, as dicts
        em.inject(kind="status", status=503, count=2)

The child runs ``python -m segsync.testing.emulator.process TARGET JSON`` (the emulator class
and its keyword arguments), prints its URL and serves until stopped; the parent talks to it
through the control paths (``/_emulator/...``). Its CPU time is the child's, not the caller's.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import urllib.request
from typing import Any

from segsync.testing.emulator.server import CONTROL_PREFIX


class EmulatorProcess:
    def __init__(self, target: str, **options: Any) -> None:
        self.target = target
        self.options = options
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.root = ""

    def start(self) -> EmulatorProcess:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "segsync.testing.emulator.process", self.target, json.dumps(self.options)],
            stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"emulator {self.target} did not start: {line!r}")
        self.url, _, self.root = line.partition(" ")
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                # A busy child (a million members to let go of) may take longer: stop it.
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.root}{CONTROL_PREFIX}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")

    def seed(self, body: Any) -> Any:
        return self._control("POST", "seed", body)

    def inject(self, **fault: Any) -> None:
        self._control("POST", "faults", fault)

    def configure(self, **config: Any) -> None:
        self._control("POST", "config", config)

    def log(self) -> list[dict[str, Any]]:
        return self._control("GET", "log")

    def stats(self) -> dict[str, Any]:
        return self._control("GET", "stats")

    def cpu_seconds(self) -> float:
        """User + system CPU the emulator's process has used so far (Linux /proc)."""
        assert self._proc is not None
        import os

        fields = open(f"/proc/{self._proc.pid}/stat").read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The collector's thresholds in an emulator's own process. Its state is millions of long-lived
# objects (a member, its fields, its tags) that hold no reference cycles; with the default
# thresholds (700, 10, 10) the collector keeps re-scanning them as they pile up, which was ~40 %
# of the Mailchimp emulator's CPU at 300,000 members. Each request ends with gc.freeze()
# besides (see Emulator.freeze_after_requests): the objects it left alive are never traversed
# again (a reference cycle frozen would never be collected: requests leave none behind).
GC_THRESHOLDS = (50_000, 50, 100)


def main(argv: list[str]) -> None:
    import gc

    from segsync.testing.serve import serve_until_interrupted

    gc.set_threshold(*GC_THRESHOLDS)

    module, _, name = argv[0].partition(":")
    emulator = getattr(importlib.import_module(module), name)(**json.loads(argv[1]))
    emulator.freeze_after_requests = True
    emulator.start()
    print(emulator.url, f"http://127.0.0.1:{emulator.port}", flush=True)
    serve_until_interrupted(emulator.stop)


if __name__ == "__main__":
    main(sys.argv[1:])

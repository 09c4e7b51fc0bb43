"""One ``segsync serve`` process: the app on uvicorn, the worker, the inbox and the metrics.

:class:`Service` is what the command, the demo, the tests and the benchmark start: ``start()``
serves on a thread (port 0 picks a free one; :attr:`Service.url` says which), ``stop()`` ends
the server and then the worker after its current run. ``serve_forever()`` serves on the calling
thread until Ctrl-C (the command).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from segsync import Connector
from segsync.live import LiveProject

from segsync_serve.app import build_app
from segsync_serve.inbox import Inbox
from segsync_serve.metrics import Metrics
from segsync_serve.receivers import Receiver, receiver_for
from segsync_serve.schedule import Schedule
from segsync_serve.worker import Worker

log = logging.getLogger(__name__)


class ServeSettings(BaseSettings):
    """The webhook secret comes only from the environment (or ``.env``):
    ``SEGSYNC_SERVE_WEBHOOK_SECRET``. Mailchimp carries it in the webhook URL, Brevo as the
    webhook's bearer token."""

    model_config = SettingsConfigDict(env_prefix="SEGSYNC_SERVE_", env_file=".env", extra="ignore")

    webhook_secret: SecretStr = Field(min_length=16, description="at least 16 characters, random")


@dataclass
class Endpoint:
    receiver: Receiver
    connector: Connector


class Service:
    def __init__(
        self,
        project: LiveProject,
        secret: SecretStr | str,
        *,
        schedule: Schedule | None = None,
        host: str = "127.0.0.1",
        port: int = 8787,
        max_attempts: int = 5,
        busy_retry: float = 1.0,
        retry_wait: float = 30.0,
    ) -> None:
        self.project = project
        self._secret = secret if isinstance(secret, SecretStr) else SecretStr(secret)
        self.host, self.port = host, port
        self.metrics = Metrics()
        self.inbox = Inbox.beside(project.store_path)
        self.worker = Worker(project, self.inbox, schedule or Schedule(), self.metrics,
                             max_attempts=max_attempts, busy_retry=busy_retry, retry_wait=retry_wait)
        self.endpoints: dict[str, Endpoint] = {}
        for name, connector_type in project.connections().items():
            receiver = receiver_for(connector_type)
            if receiver is not None:
                self.endpoints[name] = Endpoint(receiver, project.connector(name))
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._socket: Any = None

    @property
    def secret(self) -> str:
        return self._secret.get_secret_value()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def webhook_url(self, connection: str, public_url: str | None = None) -> str:
        """The URL a service is given for ``connection`` (with the secret where it goes in it)."""
        return self.endpoints[connection].receiver.url(public_url or self.url, connection, self.secret)

    def register_webhooks(self, public_url: str | None = None) -> list[str]:
        """Register this server's webhook with every service that sends them (idempotent)."""
        return [endpoint.receiver.register(endpoint.connector, self.webhook_url(name, public_url), self.secret)
                for name, endpoint in self.endpoints.items()]

    # -- running -----------------------------------------------------------------------------

    def _uvicorn(self) -> Any:
        import uvicorn

        config = uvicorn.Config(build_app(self), host=self.host, port=self.port, log_level="warning",
                                access_log=False, lifespan="off")
        return uvicorn.Server(config)

    def start(self) -> Service:
        """Serve on a thread; returns once the port is open (``port=0``: a free one)."""
        self.worker.start()
        self._server = self._uvicorn()
        self._thread = threading.Thread(target=self._server.run, name="segsync-serve-http", daemon=True)
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                self.worker.stop()
                raise RuntimeError(f"segsync serve could not listen on {self.host}:{self.port}")
            threading.Event().wait(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def bind(self) -> Service:
        """Open the listening socket now (``port=0``: a free one; :attr:`url` says which)."""
        import socket

        self._socket = socket.create_server((self.host, self.port))
        self.port = self._socket.getsockname()[1]
        return self

    def serve_forever(self) -> None:
        """Serve on this thread until interrupted (uvicorn handles Ctrl-C), then stop the worker."""
        if self._socket is None:
            self.bind()
        self.worker.start()
        self._server = self._uvicorn()
        try:
            self._server.run(sockets=[self._socket])
        finally:
            self._close()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._close()

    def _close(self) -> None:
        self.worker.stop()
        for endpoint in self.endpoints.values():
            endpoint.connector.close()
        self.inbox.close()

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

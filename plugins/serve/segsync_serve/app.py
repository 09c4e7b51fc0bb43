"""The HTTP side (Starlette): webhooks, ``/healthz`` and ``/metrics``.

``POST /webhooks/{connection}``: the connection's receiver (by connector type) checks the
secret (401), reads the payload (400 with the reason), commits its records to the inbox and
answers 200 only then; the worker applies them. ``GET``/``HEAD`` on the same URL answer 200:
Mailchimp checks a webhook URL with a GET before it saves it. An unknown connection, or one
whose service sends no webhooks segsync reads, is 404. Nothing is written for any answer but 200.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from segsync_serve.receivers import Delivery, Malformed, Unauthorized

if TYPE_CHECKING:
    from segsync_serve.server import Service

MAX_BODY = 1_000_000  # bytes; Mailchimp's and Brevo's payloads are a few kilobytes (Brevo batches more)
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def build_app(service: Service) -> Starlette:
    async def webhook(request: Request) -> Response:
        connection = request.path_params["connection"]
        endpoint = service.endpoints.get(connection)
        if endpoint is None:
            service.metrics.webhooks.labels("-", "unknown").inc()
            return _problem(404, f"no connection {connection!r} takes webhooks here")
        if request.method in ("GET", "HEAD"):
            return JSONResponse({"connection": connection, "ok": True})
        received_at = time.time()
        body = await request.body()
        if len(body) > MAX_BODY:
            service.metrics.webhooks.labels(connection, "malformed").inc()
            return _problem(413, f"the body has {len(body)} bytes; at most {MAX_BODY}")
        delivery = Delivery(request.method, dict(request.query_params),
                            {k.lower(): v for k, v in request.headers.items()}, body)
        try:
            endpoint.receiver.authenticate(delivery, service.secret)
        except Unauthorized as exc:
            service.metrics.webhooks.labels(connection, "unauthorized").inc()
            return _problem(401, str(exc))
        try:
            received = endpoint.receiver.parse(delivery, endpoint.connector)
        except Malformed as exc:
            service.metrics.webhooks.labels(connection, "malformed").inc()
            return _problem(400, str(exc))
        if not received.batches:
            service.metrics.webhooks.labels(connection, "ignored").inc()
            return JSONResponse({"queued": 0, "ignored": received.ignored})
        delivery_id = await run_in_threadpool(service.inbox.add, connection, received.batches, received_at)
        service.metrics.webhooks.labels(connection, "queued").inc()
        service.worker.wake()
        return JSONResponse({"queued": received.records, "ignored": received.ignored, "delivery": delivery_id})

    async def healthz(request: Request) -> Response:
        waiting, dead = service.inbox.counts(service.worker.max_attempts)
        last = service.worker.last_run
        body = {
            "status": "ok" if service.worker.alive and not dead else ("failing" if dead else "stopped"),
            "running": service.worker.running,
            "queued": waiting,
            "given_up": dead,
            "schedule": service.worker.schedule.describe(),
            "last_run": None if last is None else {
                "id": last.run_id, "trigger": last.trigger, "status": last.status,
                "finished_at": last.finished_at, "deliveries": last.deliveries},
            "last_error": service.worker.last_error,
        }
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    async def metrics(request: Request) -> Response:
        return Response(service.metrics.text(), media_type=PROMETHEUS_TEXT)

    return Starlette(routes=[
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/webhooks/{connection}", webhook, methods=["GET", "HEAD", "POST"]),
    ])


def _problem(status: int, reason: str) -> Response:
    return Response(json.dumps({"error": reason}), status_code=status, media_type="application/json")

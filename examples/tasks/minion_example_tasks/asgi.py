"""Enqueue from a web request without blocking the event loop: a bare ASGI application, the
shape every async framework (FastAPI, Starlette, aiohttp) wraps. With FastAPI it reads::

    minion = AsyncMinion(dsn)

    @app.post("/fetch")
    async def fetch(url: str) -> dict[str, int]:
        return {"job": await minion.enqueue("fetch", [url])}

``POST /fetch?url=...`` enqueues the ``fetch`` task and answers ``{"job": id}``;
``GET /jobs/ID`` answers the job's state and result.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from minion_daemon import AsyncMinion

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def make_app(minion: AsyncMinion) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The application, enqueueing through ``minion``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        if method == "POST" and path == "/fetch":
            url = parse_qs(scope.get("query_string", b"").decode()).get("url", [""])[0]
            await _answer(send, 202, {"job": await minion.enqueue("fetch", [url])})
        elif method == "GET" and path.startswith("/jobs/") and path[6:].isdigit():
            job = await minion.job(int(path[6:]))
            info = None if job is None else await job.info()
            if info is None:
                await _answer(send, 404, {"error": "no such job"})
            else:
                await _answer(send, 200, {"state": info["state"], "result": info["result"]})
        else:
            await _answer(send, 404, {"error": "not found"})

    return app


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})

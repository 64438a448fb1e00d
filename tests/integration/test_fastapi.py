"""A FastAPI application enqueues from its request handlers with ``AsyncMinion``, on the
application's event loop, the way README's *Async tasks* shows. The requests are made as an
ASGI server makes them, on one loop (no HTTP client library needed)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi import FastAPI

from minion_daemon import AsyncMinion, Minion
from minion_daemon.backend import PgBackend


@pytest.fixture
def minion(dsn: str) -> Iterator[Minion]:
    minion = Minion(PgBackend(dsn, min_size=0, max_size=2))
    minion.backend.schema_version  # noqa: B018 - creates the schema the async client expects
    yield minion
    minion.close()


def _app(client: AsyncMinion) -> FastAPI:
    app = FastAPI()

    @app.post("/fetch")
    async def enqueue_fetch(url: str) -> dict[str, int]:
        return {"job": await client.enqueue("fetch", [url], attempts=3)}

    @app.get("/jobs/{job_id}")
    async def job_state(job_id: int) -> dict[str, str | None]:
        job = await client.job(job_id)
        info = None if job is None else await job.info()
        return {"state": None if info is None else info["state"]}

    return app


async def _request(app: FastAPI, method: str, path: str, **query: str) -> tuple[int, Any]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": urlencode(query).encode(), "headers": [], "server": ("test", 80),
        "client": ("127.0.0.1", 1234),
    }  # fmt: skip
    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body)


def test_a_handler_enqueues_without_blocking_its_loop(minion: Minion, dsn: str) -> None:
    async def requests() -> tuple[int, Any, Any]:
        async with AsyncMinion(dsn) as client:
            app = _app(client)
            status, answer = await _request(app, "POST", "/fetch", url="http://127.0.0.1/")
            job_id = answer["job"]
            return status, job_id, await _request(app, "GET", f"/jobs/{job_id}")

    status, job_id, read = asyncio.run(requests())
    assert status == 200
    assert read == (200, {"state": "inactive"})
    info = minion.job(job_id).info  # type: ignore[union-attr]
    assert info is not None
    assert (info["task"], info["args"], info["attempts"]) == ("fetch", ["http://127.0.0.1/"], 3)



def _double_app(client: AsyncMinion) -> FastAPI:
    app = FastAPI()

    @app.post("/double")
    async def enqueue_double(number: int) -> dict[str, int]:
        return {"job": await client.enqueue("double", [number])}

    @app.get("/jobs/{job_id}/result")
    async def result(job_id: int) -> dict[str, Any]:
        info = await client.result(job_id, timeout=30, interval=0.05)
        return {"state": info and info["state"], "result": info and info["result"]}

    return app


def test_a_handler_waits_for_its_jobs_result(minion: Minion, dsn: str) -> None:
    """One request enqueues, another awaits the result while a worker runs the job (here in
    the main thread, as inline timeouts need; the application's loop in a thread of its own)."""
    minion.add_task("double", lambda job, number: number * 2, mode="inline")

    async def request(method: str, path: str, **query: str) -> tuple[int, Any]:
        async with AsyncMinion(dsn) as client:
            return await _request(_double_app(client), method, path, **query)

    _, answer = asyncio.run(request("POST", "/double", number="21"))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(asyncio.run, request("GET", f"/jobs/{answer['job']}/result"))
        minion.perform_jobs()
        assert waiting.result(timeout=60) == (200, {"state": "finished", "result": 42})

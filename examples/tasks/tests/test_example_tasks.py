"""The example tasks, tested with minion-daemon's pytest plugin (docs/testing.md): install
this package and minion-daemon, then run ``pytest`` here; the fixtures come with the plugin."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from minion_example_tasks.asgi import make_app

from minion_daemon import AsyncMinion, Minion
from minion_daemon.eager import EagerMinion


def test_echo_returns_its_arguments(minion_eager: EagerMinion) -> None:
    info = minion_eager.info(minion_eager.enqueue("echo", [1, "two", None]))
    assert (info["state"], info["result"]) == ("finished", [1, "two", None])


def test_fail_fails_with_the_message(minion_eager: EagerMinion) -> None:
    info = minion_eager.info(minion_eager.enqueue("fail", ["on purpose"]))
    assert info["state"] == "failed"
    assert info["result"].startswith("RuntimeError: on purpose")


def test_every_task_runs_in_a_worker(minion: Minion) -> None:
    noop, echo = minion.enqueue("noop"), minion.enqueue("echo", ["hi"])
    sleep, fail = minion.enqueue("sleep", [0.1]), minion.enqueue("fail")
    minion.perform_jobs()
    states = {job["id"]: (job["state"], job["result"]) for job in minion.enqueued()}
    assert states[noop] == ("finished", None)
    assert states[echo] == ("finished", ["hi"])
    assert states[sleep] == ("finished", 0.1)
    assert states[fail][0] == "failed"


def test_sleep_past_its_timeout_fails(minion: Minion) -> None:
    minion.tasks.configure("sleep", mode="inline", timeout=0.5)
    job_id = minion.enqueue("sleep", [30])
    minion.perform_jobs()
    [info] = minion.enqueued(task="sleep")
    assert (info["id"], info["state"]) == (job_id, "failed")
    assert info["result"] == "Job timed out after 0.5 seconds"


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello " + self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def local_url() -> Iterator[str]:
    """A web server on this machine: the tests never reach the internet."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()
    server.server_close()


def test_fetch_gets_a_page_on_the_event_loop(minion: Minion, local_url: str) -> None:
    job_id = minion.enqueue("fetch", [f"{local_url}/page"])
    minion.perform_jobs()
    [info] = minion.enqueued(task="fetch")
    assert (info["id"], info["state"]) == (job_id, "finished"), info["result"]
    assert info["result"] == {"status": 200, "bytes": len("hello /page")}
    assert info["notes"]["http_status"] == 200


async def _request(app: Any, method: str, path: str, query: str = "") -> tuple[int, Any]:
    """One request to an ASGI application, as a server would make it."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "query_string": query.encode()}
    await app(scope, receive, send)
    return sent[0]["status"], json.loads(sent[1]["body"])


def test_a_request_handler_enqueues_and_reads_jobs_on_its_loop(
    minion: Minion, minion_dsn: str, local_url: str
) -> None:
    async def enqueue() -> int:
        async with AsyncMinion(minion_dsn) as client:
            status, body = await _request(make_app(client), "POST", "/fetch", f"url={local_url}/")
        assert status == 202
        return int(body["job"])

    async def read(job_id: int) -> tuple[int, Any]:
        async with AsyncMinion(minion_dsn) as client:
            return await _request(make_app(client), "GET", f"/jobs/{job_id}")

    job_id = asyncio.run(enqueue())
    minion.perform_jobs()
    fetched = {"status": 200, "bytes": len("hello /")}
    assert asyncio.run(read(job_id)) == (200, {"state": "finished", "result": fetched})

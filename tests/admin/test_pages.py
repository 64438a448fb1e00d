"""Every page of the admin UI over HTTP (Werkzeug's test client) on a real database."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from helpers.admin import text
from werkzeug.test import Client

from minion_daemon.admin.app import CONTENT_SECURITY_POLICY, AdminApp
from minion_daemon.admin.auth import Credentials
from minion_daemon.backend import PgBackend

TRACEBACK = 'Traceback (most recent call last):\n  File "task.py", line 3\nValueError: no'


def _failed_job(backend: PgBackend, worker: int, task: str = "fails") -> int:
    job_id = backend.enqueue(task, [1], {"notes": {"stage": "parse"}})
    job = backend.dequeue(worker, 0, {"id": job_id})
    assert job is not None
    backend.fail_job(job_id, 0, TRACEBACK)
    return job_id


def test_the_dashboard_shows_every_stats_field_with_links_the_history_and_the_backlog(
    read_only: Client, admin_backend: PgBackend
) -> None:
    worker = admin_backend.register_worker(None, {"status": {"jobs": 4}})
    _failed_job(admin_backend, worker)
    admin_backend.enqueue("waits", [], {"queue": "mail"})
    page = read_only.get("/")
    assert page.status_code == 200
    body = text(page)
    stats = admin_backend.stats()
    for field in stats:
        if field != "uptime":
            assert f'data-stat="{field}">{stats[field]}<' in body, field
    assert 'href="/jobs?state=failed"' in body
    assert body.count('<rect class="finished"') == 24
    assert "1 finished" not in body
    assert "1 failed" in body
    assert 'href="/jobs?state=inactive&amp;queue=mail"' in body


def test_stats_as_json_for_the_live_figures(read_only: Client, admin_backend: PgBackend) -> None:
    admin_backend.enqueue("a")
    answer = read_only.get("/stats")
    assert answer.status_code == 200
    assert answer.json is not None
    assert answer.json["inactive_jobs"] == 1


def test_the_job_list_filters_by_state_queue_task_id_and_note(
    read_only: Client, admin_backend: PgBackend
) -> None:
    first = admin_backend.enqueue("alpha", [], {"queue": "q1", "notes": {"tag": 1}})
    second = admin_backend.enqueue("beta", [], {"queue": "q2"})
    worker = admin_backend.register_worker()
    failed = _failed_job(admin_backend, worker, "gamma")

    def listed(query: str) -> set[int]:
        page = read_only.get(f"/jobs?{query}")
        assert page.status_code == 200, query
        return {int(found) for found in re.findall(r'href="/jobs/(\d+)"', text(page))}

    assert listed("") == {first, second, failed}
    assert listed("state=failed") == {failed}
    assert listed("queue=q2") == {second}
    assert listed("task=alpha") == {first}
    assert listed(f"id={second}") == {second}
    assert listed("note=tag") == {first}
    assert listed("state=inactive&task=beta") == {second}


def test_older_pages_go_by_id_and_keep_the_filters(
    read_only: Client, admin_backend: PgBackend
) -> None:
    ids = [admin_backend.enqueue("paged", [n], {"queue": "p"}) for n in range(25)]
    admin_backend.enqueue("other", [], {"queue": "p"})
    first = text(read_only.get("/jobs?task=paged&limit=10"))
    found = re.search(r'href="(/jobs\?[^"]*before=\d+)" id="older"', first)
    assert found, "a full page links to the older jobs"
    older = found[1].replace("&amp;", "&")
    assert "task=paged" in older
    assert "limit=10" in older
    second = text(read_only.get(older))
    shown = [int(n) for n in re.findall(r'href="/jobs/(\d+)"', second)]
    assert shown == sorted(ids, reverse=True)[10:20]


def test_one_job_shows_args_traceback_notes_relatives_timings_and_worker(
    read_only: Client, admin_backend: PgBackend
) -> None:
    worker = admin_backend.register_worker()
    parent = _failed_job(admin_backend, worker)
    child = admin_backend.enqueue("child", ["x"], {"parents": [parent]})
    page = read_only.get(f"/jobs/{parent}")
    assert page.status_code == 200
    body = text(page)
    assert "ValueError: no" in body
    assert 'class="traceback"' in body
    assert "&#34;stage&#34;: &#34;parse&#34;" in body
    assert f'href="/jobs/{child}"' in body
    for moment in ("created", "delayed until", "started", "finished"):
        assert f"<td>{moment}</td>" in body
    assert f"{worker}</a> on " in body
    assert f'href="/jobs/{parent}"' in text(read_only.get(f"/jobs/{child}"))


def test_workers_show_host_pid_status_and_their_running_jobs(
    read_only: Client, admin_backend: PgBackend
) -> None:
    worker = admin_backend.register_worker(None, {"status": {"queues": ["default"]}})
    job_id = admin_backend.enqueue("busy")
    assert admin_backend.dequeue(worker, 0) is not None
    body = text(read_only.get("/workers"))
    assert f"<td>{worker}</td>" in body
    assert f'href="/jobs/{job_id}"' in body
    assert "&#34;queues&#34;" in body


def test_locks_list_and_filter(read_only: Client, admin_backend: PgBackend) -> None:
    admin_backend.lock("nightly-report", 3600)
    admin_backend.lock("other", 3600)
    assert "nightly-report" in text(read_only.get("/locks"))
    filtered = text(read_only.get("/locks?name=other"))
    assert "other" in filtered
    assert "nightly-report" not in filtered


def test_schedules_list(read_only: Client, admin_backend: PgBackend) -> None:
    admin_backend.schedule("hourly-sync", "0 * * * *", "sync", [1], {"queue": "sync"})
    body = text(read_only.get("/schedules"))
    assert "hourly-sync" in body
    assert "0 * * * *" in body
    assert "active" in body


def test_queues_show_backlog_running_and_the_last_hour(
    read_only: Client, admin_backend: PgBackend
) -> None:
    worker = admin_backend.register_worker()
    admin_backend.enqueue("a", [], {"queue": "busy"})
    admin_backend.enqueue("a", [], {"queue": "busy"})
    admin_backend.enqueue("b", [], {"queue": "running"})
    assert admin_backend.dequeue(worker, 0, {"queues": ["running"]}) is not None
    _failed_job(admin_backend, worker)
    body = text(read_only.get("/queues"))
    rows = {
        cells[0]: cells[1:]
        for cells in (
            re.findall(r"<td>(?:<a [^>]*>)?([^<]*)", row)
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
        )
        if cells
    }
    assert rows["busy"][0] == "2"  # backlog
    assert rows["running"][2] == "1"  # running
    assert rows["default"][4] == "1"  # failed in the last hour


@pytest.mark.parametrize(
    "path",
    [
        "/jobs?state=bogus",
        "/jobs?limit=0",
        "/jobs?limit=abc",
        "/jobs?limit=100000",
        "/jobs?id=x",
        "/jobs?before=-1",
        "/jobs?id=99999999999999999999999",
        "/workers?offset=%F0",
        "/locks?offset=99999999",
        "/jobs?queue=a%00b",
    ],
)
def test_bad_parameters_answer_a_400_page_never_a_traceback(read_only: Client, path: str) -> None:
    page = read_only.get(path)
    assert page.status_code == 400
    assert 'id="error-message"' in text(page)
    assert "Traceback" not in text(page)


def test_an_unknown_job_or_path_is_a_404_page(read_only: Client) -> None:
    assert read_only.get("/jobs/424242").status_code == 404
    assert read_only.get("/jobs/abc").status_code == 404
    assert read_only.get("/jobs/99999999999999999999999").status_code == 404
    assert read_only.get("/static/../app.py").status_code == 404


ALL_PAGES = ["/", "/jobs", "/jobs/1", "/workers", "/locks", "/schedules", "/queues", "/stats"]


def test_every_page_has_a_strict_policy_and_no_dsn(
    read_only: Client, admin_backend: PgBackend, dsn: str
) -> None:
    admin_backend.enqueue("a")
    for path in [*ALL_PAGES, "/jobs?state=bogus", "/static/admin.css"]:
        page = read_only.get(path)
        assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, path
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
        assert dsn not in text(page), path
        assert "dbname" not in text(page), path


def test_read_only_shows_no_action_and_refuses_every_post(
    read_only: Client, admin_backend: PgBackend
) -> None:
    job_id = admin_backend.enqueue("keep")
    for path in ("/jobs", f"/jobs/{job_id}", "/workers", "/locks", "/schedules"):
        assert 'method="post"' not in text(read_only.get(path)), path
    for path in ("/jobs/manage", "/workers/broadcast", "/locks/unlock", "/schedules/manage"):
        answer = read_only.post(path, data={"id": job_id, "do": "remove", "csrf": "x"})
        assert answer.status_code == 403, path
    assert admin_backend.list_jobs(0, 1, {"ids": [job_id]})["total"] == 1
    assert read_only.get("/login").status_code == 404


@pytest.mark.parametrize("version", [23, 24])
def test_an_older_schema_is_shown_and_never_migrated(
    make_database: Callable[[int | None], str], version: int
) -> None:
    backend = PgBackend(make_database(version), pooled=False, auto_migrate=False)
    try:
        backend.enqueue("perl_task", [1])
        client = Client(AdminApp(backend, Credentials(None, None), b"k" * 32))
        for path in ALL_PAGES:
            assert client.get(path).status_code == 200, path
        assert "no schedules" in text(client.get("/schedules"))
        assert backend.schema_version == version
    finally:
        backend.close()


def test_an_unreachable_database_is_a_503_page_without_its_address() -> None:
    dsn = "host=127.0.0.1 port=1 password=hunter2 connect_timeout=1"
    backend = PgBackend(dsn, pooled=False, auto_migrate=False, connect_timeout=1)
    client = Client(AdminApp(backend, Credentials(None, None), b"k" * 32))
    page = client.get("/jobs")
    assert page.status_code == 503
    assert "hunter2" not in text(page)
    assert "Traceback" not in text(page)

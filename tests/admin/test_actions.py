"""Login, sessions, CSRF and every action of the admin UI, over HTTP on a real database."""

from __future__ import annotations

import pytest
from helpers.admin import PASSWORD, SECRET, csrf_of, text
from werkzeug.test import Client

from minion_daemon.admin.app import AdminApp
from minion_daemon.admin.auth import (
    TOKEN_ENVIRONMENT_VARIABLE,
    Credentials,
    Sessions,
    check_hash,
    hash_password,
    verify_password,
)
from minion_daemon.backend import PgBackend
from minion_daemon.config import ConfigError


def _exists(backend: PgBackend, job_id: int) -> bool:
    return backend.list_jobs(0, 1, {"ids": [job_id]})["total"] == 1


def _info(backend: PgBackend, job_id: int) -> dict[str, object]:
    return dict(backend.list_jobs(0, 1, {"ids": [job_id]})["jobs"][0])


def test_password_hashes_are_phc_scrypt_strings_that_verify() -> None:
    encoded = hash_password("s3cret")
    assert encoded.startswith("$scrypt$ln=15,r=8,p=1$")
    check_hash(encoded)
    assert verify_password("s3cret", encoded)
    assert not verify_password("s3cret!", encoded)
    assert hash_password("s3cret") != encoded  # a fresh salt each time
    with pytest.raises(ConfigError, match=r"admin\.password_hash: not a"):
        check_hash("plaintext")


def test_sessions_expire_and_a_forged_one_is_refused() -> None:
    sessions = Sessions(SECRET)
    cookie = sessions.issue(now=1000.0)
    assert sessions.valid(cookie, 1001.0)
    assert not sessions.valid(cookie, 1000.0 + 13 * 3600)
    assert not sessions.valid(cookie[:-2] + "xx", 1001.0)
    assert not Sessions(b"other" * 8).valid(cookie, 1001.0)
    assert sessions.csrf_valid(cookie, sessions.csrf_token(cookie))
    assert not sessions.csrf_valid(cookie, sessions.csrf_token(sessions.issue(1000.0)))


def test_with_a_password_every_page_needs_a_login(guarded: Client) -> None:
    for path in ("/", "/jobs", "/stats", "/workers"):
        answer = guarded.get(path)
        assert (answer.status_code, answer.location) == (303, "/login"), path
    assert guarded.post("/login", data={"password": "wrong"}).status_code == 403


def test_a_login_sets_an_http_only_same_site_strict_cookie(guarded: Client) -> None:
    answer = guarded.post("/login", data={"password": PASSWORD})
    assert answer.status_code == 303
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    assert guarded.get("/").status_code == 200


def test_the_token_from_the_environment_logs_in_too(
    admin_backend: PgBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENVIRONMENT_VARIABLE, "tok-123")
    client = Client(AdminApp(admin_backend, Credentials.from_config(None), SECRET))
    assert client.get("/").status_code == 303
    assert client.post("/login", data={"password": "tok-12"}).status_code == 403
    assert client.post("/login", data={"password": "tok-123"}).status_code == 303
    assert client.get("/").status_code == 200


def test_an_action_without_the_csrf_token_or_from_another_site_is_refused(
    signed_in: Client, admin_backend: PgBackend
) -> None:
    job_id = admin_backend.enqueue("keep")
    form = {"id": str(job_id), "do": "remove"}
    assert signed_in.post("/jobs/manage", data=form).status_code == 403
    assert signed_in.post("/jobs/manage", data=form | {"csrf": "forged"}).status_code == 403
    token = csrf_of(signed_in)
    for origin in ("http://evil.example", "null"):
        answer = signed_in.post(
            "/jobs/manage", data=form | {"csrf": token}, headers={"Origin": origin}
        )
        assert answer.status_code == 403, origin
    assert _exists(admin_backend, job_id)


def test_retry_and_remove_selected_jobs(signed_in: Client, admin_backend: PgBackend) -> None:
    worker = admin_backend.register_worker()
    ids = [admin_backend.enqueue("t") for _ in range(3)]
    for job_id in ids:
        assert admin_backend.dequeue(worker, 0, {"id": job_id}) is not None
        admin_backend.fail_job(job_id, 0, "boom")
    token = csrf_of(signed_in)
    form = {"id": [str(i) for i in ids[:2]], "do": "retry", "csrf": token}
    answer = signed_in.post("/jobs/manage", data=form)
    assert answer.status_code == 303
    assert "notice=retried" in (answer.location or "")
    assert [_info(admin_backend, i)["state"] for i in ids] == ["inactive", "inactive", "failed"]
    page = signed_in.get(answer.location or "")
    assert "All selected jobs retried." in text(page)
    form = {"id": [str(ids[2])], "do": "remove", "csrf": token}
    assert "notice=removed" in (signed_in.post("/jobs/manage", data=form).location or "")
    assert not _exists(admin_backend, ids[2])


def test_retry_with_a_new_priority_queue_and_delay(
    signed_in: Client, admin_backend: PgBackend
) -> None:
    job_id = admin_backend.enqueue("t", [], {"priority": 1, "queue": "old"})
    form = {
        "id": str(job_id),
        "do": "retry",
        "priority": "-5",
        "queue": "new",
        "delay": "600",
        "csrf": csrf_of(signed_in),
        "back": "job",
    }
    answer = signed_in.post("/jobs/manage", data=form)
    assert answer.location == f"/jobs/{job_id}?notice=retried"
    info = _info(admin_backend, job_id)
    assert (info["priority"], info["queue"], info["retries"]) == (-5, "new", 1)
    assert float(info["delayed"]) >= float(info["retried"] or 0) + 590  # type: ignore[arg-type]


def test_a_job_that_cannot_be_removed_says_so(signed_in: Client, admin_backend: PgBackend) -> None:
    worker = admin_backend.register_worker()
    job_id = admin_backend.enqueue("t")
    assert admin_backend.dequeue(worker, 0) is not None  # active jobs are never removed
    form = {"id": str(job_id), "do": "remove", "csrf": csrf_of(signed_in)}
    answer = signed_in.post("/jobs/manage", data=form)
    assert "Some selected jobs could not be removed" in text(signed_in.get(answer.location or ""))


@pytest.mark.parametrize(
    ("action", "command"),
    [
        ("stop", ["stop"]),
        ("sig_int", ["kill", "INT"]),
        ("sig_term", ["kill", "TERM"]),
        ("sig_usr1", ["kill", "USR1"]),
        ("sig_usr2", ["kill", "USR2"]),
    ],
)
def test_stop_and_signals_reach_the_workers_inbox_as_perl_sends_them(
    signed_in: Client, admin_backend: PgBackend, action: str, command: list[str]
) -> None:
    worker = admin_backend.register_worker()
    job_id = admin_backend.enqueue("t")
    form = {"id": str(job_id), "do": action, "csrf": csrf_of(signed_in)}
    assert signed_in.post("/jobs/manage", data=form).status_code == 303
    assert admin_backend.receive(worker) == [[*command, job_id]]


def test_jobs_and_spare_broadcasts_to_one_worker_or_all(
    signed_in: Client, admin_backend: PgBackend
) -> None:
    one, other = admin_backend.register_worker(), admin_backend.register_worker()
    token = csrf_of(signed_in, "/workers")
    form = {"command": "jobs", "count": "0", "worker": str(one), "csrf": token}
    assert "notice=broadcast" in (signed_in.post("/workers/broadcast", data=form).location or "")
    assert admin_backend.receive(one) == [["jobs", 0]]
    assert admin_backend.receive(other) == []
    form = {"command": "spare", "count": "3", "csrf": token}
    signed_in.post("/workers/broadcast", data=form)
    assert admin_backend.receive(one) == admin_backend.receive(other) == [["spare", 3]]
    bad = {"command": "reboot", "count": "1", "csrf": token}
    assert signed_in.post("/workers/broadcast", data=bad).status_code == 400


def test_stop_is_offered_for_python_workers_only_and_sends_shutdown(
    signed_in: Client, admin_backend: PgBackend
) -> None:
    """Minion's ``stop`` names a job: stopping a worker is our own ``shutdown``, which only a
    Python worker obeys (a Perl one has no ``type`` in its status)."""
    ours = admin_backend.register_worker(None, {"status": {"type": "Python"}})
    perl = admin_backend.register_worker(None, {"status": {"jobs": 4}})
    page = text(signed_in.get("/workers"))
    assert f'id="shutdown-{ours}"' in page
    assert f'id="shutdown-{perl}"' not in page
    form = {"command": "shutdown", "worker": str(ours), "csrf": csrf_of(signed_in, "/workers")}
    assert "notice=broadcast" in (signed_in.post("/workers/broadcast", data=form).location or "")
    assert admin_backend.receive(ours) == [["shutdown"]]
    assert admin_backend.receive(perl) == []


def test_unlock_selected_locks(signed_in: Client, admin_backend: PgBackend) -> None:
    admin_backend.lock("a", 3600)
    admin_backend.lock("b", 3600)
    form = {"name": ["a"], "csrf": csrf_of(signed_in, "/locks")}
    assert signed_in.post("/locks/unlock", data=form).location == "/locks?notice=unlocked"
    assert [lock["name"] for lock in admin_backend.list_locks(0, 10)["locks"]] == ["b"]


def test_schedules_pause_resume_and_run_now(signed_in: Client, admin_backend: PgBackend) -> None:
    admin_backend.schedule("nightly", "0 3 * * *", "report", [7], {"queue": "reports"})
    token = csrf_of(signed_in, "/schedules")

    def act(action: str) -> str:
        form = {"name": "nightly", "do": action, "csrf": token}
        return signed_in.post("/schedules/manage", data=form).location or ""

    assert act("pause") == "/schedules?notice=paused"
    assert admin_backend.list_schedules(0, 1)["schedules"][0]["paused"]
    assert act("resume") == "/schedules?notice=resumed"
    assert not admin_backend.list_schedules(0, 1)["schedules"][0]["paused"]
    assert act("run") == "/schedules?notice=ran"
    jobs = admin_backend.list_jobs(0, 10, {"tasks": ["report"]})["jobs"]
    assert [(j["args"], j["queue"]) for j in jobs] == [([7], "reports")]
    form = {"name": "absent", "do": "pause", "csrf": token}
    assert "schedule-missing" in (signed_in.post("/schedules/manage", data=form).location or "")


def test_bad_action_forms_are_a_400(signed_in: Client) -> None:
    token = csrf_of(signed_in)
    for form in (
        {"do": "retry"},
        {"id": "1", "do": "explode"},
        {"id": "x", "do": "retry"},
        {"id": "1", "do": "retry", "priority": "high"},
        {"id": "1", "do": "retry", "delay": "-1"},
    ):
        answer = signed_in.post("/jobs/manage", data=form | {"csrf": token})
        assert answer.status_code == 400, form
        assert "Traceback" not in text(answer)


def test_a_body_of_a_megabyte_is_refused(signed_in: Client) -> None:
    form = {"id": "1", "do": "retry", "csrf": csrf_of(signed_in), "queue": "q" * (1 << 20)}
    assert signed_in.post("/jobs/manage", data=form).status_code == 413


def test_logout_ends_the_session(signed_in: Client) -> None:
    token = csrf_of(signed_in)
    assert signed_in.post("/logout", data={"csrf": token}).status_code == 303
    assert signed_in.get("/").status_code == 303

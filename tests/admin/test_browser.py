"""The admin UI in a real browser: Debian's chromium through chromium-driver, over real HTTP.

One browser and one server for the module; the tests run in one xdist group, so one browser
runs at a time. The screenshots go to a temporary directory, or where $MINION_DAEMON_SCREENSHOTS
says (MINION_DAEMON_SCREENSHOTS=docs/admin refreshes the ones docs/admin.md shows).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.admin import PASSWORD
from helpers.waiting import wait_until
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select
from werkzeug.serving import make_server

from minion_daemon.admin.app import AdminApp
from minion_daemon.admin.auth import Credentials, hash_password
from minion_daemon.backend import PgBackend

pytestmark = pytest.mark.xdist_group("admin_browser")

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parents[2]
DOCS_SCREENSHOTS = ROOT / "docs" / "admin"
#: Where the screenshots go when not in a temporary directory (docs/admin refreshes the docs').
SCREENSHOTS_VARIABLE = "MINION_DAEMON_SCREENSHOTS"

#: Values a hostile task, job or worker could put in the database: each would set
#: window.__xss (or raise an alert) if the UI let it run.
HOSTILE = [
    "<script>window.__xss = 1</script>",
    '"><img src=x onerror="window.__xss = 2">',
    "javascript:window.__xss = 3",
    "'><svg onload=alert(4)>",
    '</pre><script>alert("5")</script>',
]


def _modified(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.png")}


@pytest.fixture(scope="module")
def docs_before() -> dict[str, int]:
    return _modified(DOCS_SCREENSHOTS)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory, docs_before: dict[str, int]) -> Path:
    """$MINION_DAEMON_SCREENSHOTS (relative to the checkout) when set, else a temporary
    directory: a test run leaves docs/admin as it was unless asked."""
    asked = os.environ.get(SCREENSHOTS_VARIABLE)
    folder = (ROOT / asked).resolve() if asked else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def served(make_module_database: Callable[[int | None], str]) -> Iterator[tuple[str, PgBackend]]:
    """The admin UI with a password, served over HTTP on a free loopback port (Werkzeug's
    server here, which stops cleanly; the daemon's process runs waitress)."""
    backend = PgBackend(make_module_database(25), min_size=0, max_size=4, auto_migrate=False)
    app = AdminApp(backend, Credentials.from_config(hash_password(PASSWORD)), b"b" * 32)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", backend
    server.shutdown()
    thread.join(10)
    backend.close()


@pytest.fixture(scope="module")
def browser(served: tuple[str, PgBackend]) -> Iterator[WebDriver]:
    assert CHROMIUM.exists(), "chromium is missing: apt-get install chromium chromium-driver"
    assert CHROMEDRIVER.exists(), "chromedriver is missing: apt-get install chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,1000")
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    url, _ = served
    driver.get(f"{url}/login")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form.login button").click()
    wait_until(lambda: driver.find_elements(By.ID, "stats"), 10, "the dashboard")
    yield driver
    driver.quit()


def _untouched(driver: WebDriver) -> None:
    """Nothing hostile ran: no variable set, no alert open, only our own script."""
    assert driver.execute_script("return window.__xss === undefined")
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 - reading it is the probe
    scripts = driver.execute_script("return Array.from(document.scripts).map(s => s.src)")
    assert all(src.endswith("/static/admin.js") for src in scripts), scripts
    assert not driver.find_elements(By.CSS_SELECTOR, "img, svg[onload], [onerror]")


def _shoot(driver: WebDriver, folder: Path, name: str) -> None:
    assert driver.save_screenshot(str(folder / f"{name}.png")), name


def test_hostile_values_are_shown_as_text_and_never_run(
    browser: WebDriver, served: tuple[str, PgBackend]
) -> None:
    url, backend = served
    worker = backend.register_worker(None, {"status": {"note": HOSTILE[0]}})
    ids = []
    for value in HOSTILE:
        options: dict[str, Any] = {"queue": value, "notes": {value: value}}
        ids.append(backend.enqueue(value, [value, {value: value}], options))
    backend.dequeue(worker, 0, {"queues": [HOSTILE[1]]})
    backend.fail_job(ids[1], 0, HOSTILE[4])
    backend.lock(HOSTILE[2], 3600)
    backend.schedule(HOSTILE[3], "0 * * * *", HOSTILE[0], [HOSTILE[1]], {"queue": HOSTILE[2]})
    pages = ["/", "/jobs", *(f"/jobs/{i}" for i in ids), "/queues", "/workers", "/locks"]
    for path in [*pages, "/schedules", f"/jobs?task={HOSTILE[0]}"]:
        browser.get(f"{url}{path}")
        _untouched(browser)
    browser.get(f"{url}/jobs/{ids[0]}")
    assert browser.find_element(By.ID, "task").text == HOSTILE[0]
    assert HOSTILE[0] in browser.find_element(By.ID, "args").text
    browser.find_element(By.ID, "task").click()  # the link of a hostile name is a filter
    assert browser.current_url.startswith(f"{url}/jobs?task=")
    _untouched(browser)
    browser.get(f"{url}/jobs?queue={HOSTILE[2]}")
    browser.find_element(By.CSS_SELECTOR, "#jobs tbody a[href^='/jobs?queue']").click()
    assert browser.current_url.startswith(f"{url}/jobs?queue=javascript")
    _untouched(browser)
    backend.reset({"all": True})


def test_filters_retry_and_remove_through_the_forms(
    browser: WebDriver, served: tuple[str, PgBackend], screenshots: Path
) -> None:
    url, backend = served
    worker = backend.register_worker(None, {"status": {"jobs": 4, "queues": ["default"]}})
    failed = []
    for number in range(3):
        job_id = backend.enqueue("resize_image", [{"width": 640 * (number + 1)}])
        backend.dequeue(worker, 0, {"id": job_id})
        backend.fail_job(job_id, 0, "Traceback (most recent call last):\nOSError: disk full")
        failed.append(job_id)
    backend.enqueue("send_mail", ["ops@example.com"], {"queue": "mail", "notes": {"to": "ops"}})
    running = backend.enqueue("build_report", [2026])
    backend.dequeue(worker, 0, {"id": running})
    backend.lock("nightly-report", 3600)
    backend.schedule("nightly", "0 3 * * *", "build_report", [2026])

    browser.get(f"{url}/jobs")
    Select(browser.find_element(By.NAME, "state")).select_by_value("failed")
    browser.find_element(By.CSS_SELECTOR, "#filters button").click()
    assert "state=failed" in browser.current_url
    rows = browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr")
    assert len(rows) == 3
    _shoot(browser, screenshots, "jobs")

    for box in browser.find_elements(By.CSS_SELECTOR, "#jobs input[name=id]")[:2]:
        box.click()
    browser.find_element(By.CSS_SELECTOR, "button[value=retry]").click()
    assert "All selected jobs retried." in browser.find_element(By.CLASS_NAME, "notice").text
    states = [backend.list_jobs(0, 1, {"ids": [i]})["jobs"][0]["state"] for i in failed]
    assert sorted(states) == ["failed", "inactive", "inactive"]

    browser.get(f"{url}/jobs/{failed[0]}")
    _shoot(browser, screenshots, "job")
    browser.find_element(By.CSS_SELECTOR, "button[value=remove]").click()
    assert "removed" in browser.find_element(By.CLASS_NAME, "notice").text
    assert backend.list_jobs(0, 1, {"ids": [failed[0]]})["total"] == 0

    for name, path in [
        ("dashboard", "/"),
        ("queues", "/queues"),
        ("workers", "/workers"),
        ("locks", "/locks"),
        ("schedules", "/schedules"),
    ]:
        browser.get(f"{url}{path}")
        _untouched(browser)
        _shoot(browser, screenshots, name)
    browser.get(f"{url}/")  # two retried, one removed: no job ended, and no bar drawn
    heights = {
        r.get_attribute("height") for r in browser.find_elements(By.CSS_SELECTOR, "#history rect")
    }
    assert heights == {"0.0"}, heights


def test_select_all_and_the_live_dashboard_work_under_the_policy(
    browser: WebDriver, served: tuple[str, PgBackend]
) -> None:
    url, backend = served
    backend.reset({"all": True})
    for _ in range(3):
        backend.enqueue("tick")
    browser.get(f"{url}/jobs")
    browser.find_element(By.CSS_SELECTOR, "input.select-all").click()
    boxes = browser.find_elements(By.CSS_SELECTOR, "#jobs input[name=id]")
    assert all(box.is_selected() for box in boxes)
    browser.get(f"{url}/")
    figure = browser.find_element(By.CSS_SELECTOR, "[data-stat=inactive_jobs]")
    assert figure.text == "3"
    backend.enqueue("tick")
    wait_until(lambda: figure.text == "4", 10, "the dashboard to refresh its figures")


def test_screenshots_are_written_and_reach_docs_only_when_asked(
    screenshots: Path, docs_before: dict[str, int]
) -> None:
    """Run after the tests that take them (one module, one xdist group, file order)."""
    names = {"jobs", "job", "dashboard", "queues", "workers", "locks", "schedules"}
    assert {p.stem for p in screenshots.glob("*.png") if p.stat().st_size} >= names
    if screenshots != DOCS_SCREENSHOTS:
        assert _modified(DOCS_SCREENSHOTS) == docs_before, "a test run rewrote docs/admin"

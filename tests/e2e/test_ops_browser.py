"""The ops console in a real headless Chromium (Debian's chromium and chromium-driver, driven by
selenium) against the app served over HTTP, real PostgreSQL and Redis and real worker processes. Where
no Chromium is installed these tests skip and say so; in CI (CI=true) they fail instead."""
from __future__ import annotations

import csv
import importlib.util
import io
import shutil
import signal
import threading
import time
import uuid

import pytest

from models import jobs
from models.db import session_scope
from models.kinds import PROBES
from models.users import ensure_tenant
from tests.conftest import IN_CI, WorkerProcess, wait_for
from tests.factories import make_user

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
TIMEOUT = 3  # the app's heartbeat timeout in these tests


def _need_browser():
    missing = [name for name, path in (("chromium", CHROMIUM), ("chromedriver", DRIVER)) if not path]
    if importlib.util.find_spec("selenium") is None:
        missing.append("the selenium package")
    if missing:
        message = f"browser tests need {', '.join(missing)} (apt-get install chromium chromium-driver)"
        if IN_CI:
            pytest.fail(message + "; CI must run them")
        pytest.skip(message)


@pytest.fixture(scope="module")
def server(settings, real_sessions, engine, redis_url):
    _need_browser()
    import redis as redis_lib
    from werkzeug.serving import make_server

    from web.app import create_app
    from workers.app import make_celery
    from workers.runtime import Runtime
    celery_app = make_celery(settings, Runtime(settings, real_sessions))
    app = create_app(settings.replace(ops_worker_timeout_seconds=TIMEOUT), session_factory=real_sessions,
                     celery_app=celery_app, redis_client=redis_lib.Redis.from_url(redis_url))
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser(server):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def admin(real_sessions):
    with session_scope(real_sessions) as s:
        return make_user(s, role="admin", is_system=True, username=f"ops-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def signed_in(browser, server, admin):
    from selenium.webdriver.common.by import By
    browser.get(server + "/ops/")
    assert "/ops/login" in browser.current_url  # no page without a session
    browser.find_element(By.ID, "username").send_keys(admin.username)
    browser.find_element(By.ID, "password").send_keys("pw-secret")
    browser.find_element(By.ID, "sign-in").click()
    wait_for(lambda: browser.current_url.rstrip("/").endswith("/ops"), 10, message="the overview after sign-in")
    cookie = browser.get_cookie("fieldsync_ops")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax"
    return browser


def _read(browser, element_id, what="textContent"):
    """An element's text or property, read in one script (None while the page reloads), so a redraw
    between finding and reading cannot make the element stale."""
    try:
        return browser.execute_script(
            "var e = document.getElementById(arguments[0]); return e ? e[arguments[1]] : null;", element_id, what)
    except Exception:  # between a reload and the next page
        return None


def _text(browser, element_id):
    text = _read(browser, element_id)
    return text.strip() if isinstance(text, str) else text


def _probe(real_sessions, celery_app_sender, steps, sleep):
    from workers.api import submit_job
    with session_scope(real_sessions) as s:
        ensure_tenant(s, "browser")
        job, _ = submit_job(s, celery_app_sender, tenant_id="browser", kind=PROBES["ingest"],
                            params={"steps": steps, "sleep": sleep})
        return job.id


def test_progress_moves_live_then_cancel_ends_it(signed_in, server, live_worker, real_sessions, celery_app):
    from selenium.webdriver.common.by import By
    browser = signed_in
    job_id = _probe(real_sessions, celery_app, steps=300, sleep=0.05)
    browser.get(f"{server}/ops/jobs/{job_id}")
    seen = []

    def moved():
        value = _read(browser, "job-progress", "value")
        if value is not None and (not seen or float(value) != seen[-1]):
            seen.append(float(value))
        return len(seen) >= 4
    wait_for(moved, 30, interval=0.2, message="the progress bar to move")
    assert seen == sorted(seen) and seen[-1] > seen[0]
    browser.find_element(By.ID, "cancel").click()
    wait_for(lambda: _text(browser, "job-status") == "CANCELLED" and _read(browser, "cancel") is None, 15,
             message="CANCELLED on the page, without the cancel button")
    done = float(_read(browser, "job-progress", "value"))
    assert 0 < done < 300


def test_retry_of_a_failed_job_completes_on_the_page(signed_in, server, live_worker, real_sessions):
    from selenium.webdriver.common.by import By
    browser = signed_in
    with session_scope(real_sessions) as s:
        ensure_tenant(s, "browser")
        job, _ = jobs.create_job(s, tenant_id="browser", kind=PROBES["ingest"], params={"steps": 4, "sleep": 0.2},
                                 max_attempts=1)
        s.flush()
        jobs.claim(s, job.id, 60)
        jobs.fail(s, job.id, "internal_error", "RuntimeError while running the job; see the worker log")
        job_id = job.id
    browser.get(f"{server}/ops/jobs/{job_id}")
    assert _text(browser, "job-status") == "FAILED"
    browser.find_element(By.ID, "retry").click()
    wait_for(lambda: _text(browser, "job-status") == "COMPLETED" and _read(browser, "retry") is None, 30,
             message="COMPLETED after the retry")
    assert "internal_error" not in (_text(browser, "job-error") or "")


def test_failed_rows_csv_downloads_with_every_row(signed_in, server, real_sessions):
    from selenium.webdriver.common.by import By
    browser = signed_in
    evil = '<script>document.title="owned"</script>'
    with session_scope(real_sessions) as s:
        ensure_tenant(s, "browser")
        job, _ = jobs.create_job(s, tenant_id="browser", kind=PROBES["ingest"])
        s.flush()
        jobs.record_errors(s, job.id, [{"position": i, "record_id": f"rec-{i}", "code": "invalid_type",
                                        "message": evil if i == 0 else f"bad {i}", "path": "data",
                                        "record": "{}"} for i in range(30)])
        job_id = job.id
    browser.get(f"{server}/ops/jobs/{job_id}")
    # a record error holding markup is shown as its text, and runs nothing
    assert evil in browser.find_element(By.ID, "record-errors").text
    assert browser.title != "owned"
    href = browser.find_element(By.ID, "failed-csv").get_attribute("href")
    body = browser.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'}).then(function (r) {"
        "  return r.text().then(function (t) { done([r.status, r.headers.get('content-type'), t]); }); });", href)
    status, media, text = body
    assert status == 200 and media.startswith("text/csv")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["position", "record_id", "code", "message", "path", "record"]
    assert [r[1] for r in rows[1:]] == [f"rec-{i}" for i in range(30)]
    assert rows[1][3] == evil


def test_a_killed_worker_turns_red_within_the_timeout(signed_in, server, settings):
    browser = signed_in
    worker = WorkerProcess(settings, queues=("maintenance",), concurrency=1,
                           extra_env={"OPS_HEARTBEAT_SECONDS": "0.5"}).start()
    try:
        browser.get(f"{server}/ops/")

        def row_class():  # read in one script: the table is redrawn at every poll
            return browser.execute_script(
                "var rows = document.querySelectorAll('#workers tbody tr');"
                "for (var i = 0; i < rows.length; i++) {"
                "  if ((rows[i].dataset.worker || '').indexOf(arguments[0]) === 0) return rows[i].className; }"
                "return null;", worker.hostname_prefix)
        wait_for(lambda: row_class() == "worker-alive", 15, message="the worker shown alive")
        worker.stop(signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: row_class() == "worker-dead", TIMEOUT + 5, interval=0.2, message="the worker shown dead")
        assert time.monotonic() - killed <= TIMEOUT + 2.5  # the timeout, plus a beat and a poll
        badge = browser.execute_script(
            "var b = document.querySelector('tr.worker-dead .badge.dead');"
            "return b && [b.textContent, getComputedStyle(b).backgroundColor];")
        assert badge == ["dead", "rgb(207, 34, 46)"]
    finally:
        worker.stop()


def test_an_export_schedule_is_paused_and_resumed_from_the_exports_page(signed_in, server, real_sessions):
    import datetime as dt

    from selenium.webdriver.common.by import By

    from models import exports as store
    from models.tables import ExportSchedule
    browser = signed_in
    name = f"nightly-<b>{uuid.uuid4().hex[:6]}</b>"
    with session_scope(real_sessions) as s:
        ensure_tenant(s, "browser")
        schedule_id = store.create_schedule(
            s, tenant_id="browser", name=name, cron="0 2 * * *", spec={"namespace": "synkronus.observations"},
            target="nightly", retention=3, next_run_at=dt.datetime(2030, 1, 1, 2, tzinfo=dt.timezone.utc),
            created_by="ops").id
    browser.find_element(By.LINK_TEXT, "Exports").click()
    wait_for(lambda: browser.current_url.endswith("/ops/exports"), 10, message="the exports page")
    row = f'tr[data-schedule="{schedule_id}"]'

    def state():
        try:
            return browser.find_element(By.CSS_SELECTOR, f"{row} td.state").text.strip()
        except Exception:  # between the POST and the page it redirects to
            return None
    assert state() == "active"
    assert name in browser.find_element(By.CSS_SELECTOR, row).text  # the name is text, not markup
    browser.find_element(By.CSS_SELECTOR, f"{row} button.pause").click()
    wait_for(lambda: state() == "paused", 10, message="paused on the page")
    with session_scope(real_sessions) as s:
        assert s.get(ExportSchedule, schedule_id).paused is True
    browser.find_element(By.CSS_SELECTOR, f"{row} button.resume").click()
    wait_for(lambda: state() == "active", 10, message="active again on the page")
    with session_scope(real_sessions) as s:
        resumed = s.get(ExportSchedule, schedule_id)
        assert resumed.paused is False and resumed.next_run_at.year < 2030

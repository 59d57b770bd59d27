"""The dashboard in a real browser against the live cloud: log in, the
Overview's charts, live usage pushed by the worker through Redis and the
websocket, the project switcher, log out, and the screenshot the README uses."""

import itertools
import json
import re
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

pytestmark = [pytest.mark.browser, pytest.mark.live]

ROOT = Path(__file__).resolve().parents[2]
DEMO = ("demo", "demo-live-pass")
ADMIN = ("admin", "admin-live-pass")
_names = itertools.count(1)


def watch_errors(page):
    """Console errors (a CSP violation, a failed socket) and uncaught
    exceptions; a page with any of them fails the test."""
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def log_in(page, credentials, next_url=None):
    page.goto("/auth/login/" + (f"?next={quote(next_url, safe='')}" if next_url else ""))
    page.fill("#id_username", credentials[0])
    page.fill("#id_password", credentials[1])
    with page.expect_navigation():
        page.click("form button[type=submit]")


def session_cookie(context):
    return next((c for c in context.cookies() if c["name"] == "sessionid"), None)


def used(page, resource):
    return int(page.get_attribute(f"#quota-usage [data-resource={resource}]", "data-used"))


def wait_used(page, resource, value):
    page.wait_for_function(
        "([resource, value]) => {"
        "  const card = document.querySelector(`#quota-usage [data-resource=${resource}]`);"
        "  return card && card.dataset.used === String(value); }",
        arg=[resource, value], timeout=20_000)


def open_overview(page):
    page.goto("/")
    page.wait_for_selector("body[data-ws-state=open]")
    page.wait_for_selector("#quota-usage[data-charts=drawn]")


def api_token(live_cloud, credentials, project="demo"):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": credentials[0], "domain": {"name": "Default"}, "password": credentials[1]}}},
        "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}}
    response = requests.post(f"{live_cloud.url}/identity/v3/auth/tokens", json=body, timeout=30)
    assert response.status_code == 201, response.text
    return response.headers["X-Subject-Token"]


def test_log_in_rotates_the_session_and_shows_live_charts(new_context, live_cloud):
    context = new_context()
    page = context.new_page()
    errors = watch_errors(page)
    page.goto("/auth/login/")
    assert session_cookie(context) is None, "an anonymous visit must not create a session"
    # A session id planted before login (session fixation) must not survive it.
    context.add_cookies([{"name": "sessionid", "value": "planted-before-login", "url": live_cloud.url}])
    before = session_cookie(context)["value"]
    log_in(page, DEMO)
    assert page.url == f"{live_cloud.url}/"
    after = session_cookie(context)
    assert after["value"] not in (before, "")
    assert after["httpOnly"] and after["sameSite"] == "Lax"

    open_overview(page)
    assert page.locator("#quota-usage canvas").count() >= 10
    assert page.evaluate("Chart.getChart(document.querySelector('#quota-usage canvas')) !== undefined")
    box = page.locator("#quota-usage canvas").first.bounding_box()
    assert box["width"] > 50 and box["height"] > 50
    assert page.evaluate("window.dcStatus.connected") is True
    assert page.evaluate("window.dcStatus.received") >= 1  # the server's hello
    assert page.locator(".dc-sidebar .nav-link.active").inner_text().strip() == "Overview"
    assert page.locator(".dc-sidebar").get_by_text("Identity").count() == 0  # not an operator
    assert errors == []


def test_usage_updates_live_when_another_session_changes_it(new_context, live_cloud, tmp_path):
    watcher = new_context().new_page()
    errors = watch_errors(watcher)
    log_in(watcher, DEMO)
    open_overview(watcher)
    start = used(watcher, "key_pairs")
    watcher.evaluate("window.__sameDocument = true")

    # Another browser of the same user creates a key pair through the UI.
    actor = new_context(accept_downloads=True).new_page()
    log_in(actor, DEMO)
    name = f"live-{next(_names)}-{live_cloud.port}"
    actor.goto("/key-pairs/create/")
    actor.fill("#id_name", name)
    actor.click("#main form button[type=submit]")
    actor.wait_for_selector("#private-key-download")
    with actor.expect_download() as download_info:
        actor.click("#private-key-download")
    download = download_info.value
    assert download.suggested_filename == f"{name}.pem"
    pem = Path(download.path()).read_text()
    assert pem.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    # The private key was handed out once: the list does not show it.
    actor.goto("/key-pairs/")
    assert name in actor.content() and "PRIVATE KEY" not in actor.content()

    # The worker renders the usage and pushes it through Redis: no reload, no polling.
    wait_used(watcher, "key_pairs", start + 1)
    assert watcher.evaluate("window.__sameDocument") is True
    assert watcher.evaluate("window.dcStatus.swaps") >= 1
    assert watcher.evaluate("Chart.getChart(document.querySelector("
                            "'#quota-usage [data-resource=key_pairs] canvas')) !== undefined")
    assert f"Used {start + 1} of" in watcher.inner_text("#quota-usage [data-resource=key_pairs]")

    # Deleting it through the OpenStack API updates the page as well.
    token = api_token(live_cloud, DEMO)
    response = requests.delete(f"{live_cloud.url}/compute/v2.1/os-keypairs/{quote(name)}",
                               headers={"X-Auth-Token": token}, timeout=30)
    assert response.status_code == 202, response.text
    wait_used(watcher, "key_pairs", start)
    assert watcher.evaluate("window.__sameDocument") is True
    assert errors == []


def test_socket_reconnects_after_a_drop_and_shows_toasts_as_text(new_context):
    page = new_context().new_page()
    errors = watch_errors(page)
    routes, from_page = [], []

    def through(route):
        # Sits between the page and the real server, so the test can drop
        # the connection and speak as the server.
        server = route.connect_to_server()

        def forward(message):
            from_page.append(json.loads(message))
            server.send(message)

        route.on_message(forward)
        routes.append((route, server))

    page.route_web_socket(re.compile(r"/ws/status/$"), through)
    log_in(page, DEMO)
    open_overview(page)
    page.evaluate("window.__sameDocument = true")

    sockets = len(routes)
    route, server = routes[-1]
    route.close(code=1011, reason="dropped by the test")
    server.close()
    page.wait_for_function("() => window.dcStatus.reconnects >= 1 && window.dcStatus.connected")
    page.wait_for_selector("body[data-ws-state=open]")
    assert len(routes) == sockets + 1
    # Having possibly missed events, the page asked for its live partials again
    # and the server answered with a fresh copy.
    page.wait_for_function("() => window.dcStatus.swaps >= 1")
    assert {"kind": "sync", "ids": ["quota-usage"]} in from_page
    page.wait_for_selector("#quota-usage[data-charts=drawn]")
    assert page.evaluate("window.__sameDocument") is True

    # A toast's message is text, never markup.
    routes[-1][0].send(json.dumps({"kind": "toast", "level": "success", "message": "<b>Done</b> & dusted"}))
    toast = page.locator("#toasts .toast.text-bg-success").last
    toast.wait_for()
    assert toast.locator(".toast-body").inner_text() == "<b>Done</b> & dusted"
    assert toast.locator("b").count() == 0
    # An unknown level falls back to info; a swap for an id not on the page is ignored.
    routes[-1][0].send(json.dumps({"kind": "toast", "level": "bogus onclick=x", "message": "hello"}))
    page.locator("#toasts .toast.text-bg-info", has_text="hello").wait_for()
    routes[-1][0].send(json.dumps({"kind": "swap", "id": "nothing-here", "html": "<p id=nothing-here>x</p>"}))
    assert page.locator("#nothing-here").count() == 0
    assert errors == []


def test_switch_project_then_log_out(new_context, live_cloud):
    context = new_context()
    page = context.new_page()
    errors = watch_errors(page)
    log_in(page, ADMIN)
    open_overview(page)
    switcher = page.locator("#project-switcher-toggle")
    assert switcher.locator("[data-current-project]").inner_text() == "admin"
    # An operator sees the Admin and Identity sections.
    assert page.locator(".dc-sidebar").get_by_text("Identity").count() == 1

    switcher.click()
    with page.expect_navigation():
        page.locator("#project-switcher button[name=project]", has_text="demo").click()
    assert page.locator("#project-switcher-toggle [data-current-project]").inner_text() == "demo"
    page.wait_for_selector("body[data-ws-state=open]")
    assert "demo" in page.inner_text("h1")

    session = session_cookie(context)["value"]
    page.click("#user-menu button")
    with page.expect_navigation():
        page.click("#logout-button")
    assert page.url == f"{live_cloud.url}/auth/login/"
    assert (session_cookie(context) or {}).get("value") != session
    page.goto("/")
    assert page.url.startswith(f"{live_cloud.url}/auth/login/")
    assert errors == []


@pytest.mark.parametrize("next_url, lands_on", [
    ("http://evil.example/", "/"),
    ("//evil.example/path", "/"),
    ("/flavors/", "/flavors/"),
])
def test_login_next_never_leaves_the_site(new_context, live_cloud, next_url, lands_on):
    page = new_context().new_page()
    log_in(page, DEMO, next_url=next_url)
    assert page.url == f"{live_cloud.url}{lands_on}"


def test_overview_screenshot_for_the_readme(new_context):
    page = new_context().new_page()
    log_in(page, ADMIN)
    # The demo project, where the other tests leave some usage behind.
    page.locator("#project-switcher-toggle").click()
    with page.expect_navigation():
        page.locator("#project-switcher button[name=project]", has_text="demo").click()
    open_overview(page)
    page.wait_for_timeout(800)  # let the doughnuts finish their entry animation
    target = ROOT / "docs" / "screenshot.png"
    target.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000
    assert re.match(rb"\x89PNG", target.read_bytes()[:4])

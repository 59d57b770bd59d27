"""Instances in a real browser against the live cloud: upload an image with
its progress bar, launch from the dialog, watch the status badge go from
BUILD to ACTIVE as the worker pushes it (no reload), stop and start from the
row actions (whose menu follows the pushed state), and follow the console
log tab over its websocket."""

import re
import subprocess
import sys
import time

import pytest

from .test_dashboard import ADMIN, DEMO, log_in, watch_errors

pytestmark = [pytest.mark.browser, pytest.mark.live]

IMAGE = "tiny-linux"


@pytest.fixture(scope="module")
def compute_worker(live_cloud):
    """A worker serving the compute host's queue (compute.localhost), which
    registers the host and builds the guests. The live cloud's own worker
    serves only ``default`` unless tests/live.py starts one; a second
    consumer of the same host queue would split one test:///default
    hypervisor across two processes, so it is added only when missing."""
    if not any("compute." in " ".join(map(str, proc.args)) for proc in live_cloud.procs):
        log = live_cloud.spawn("compute-worker", [
            sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "threads", "--concurrency", "4",
            "-Q", "compute.localhost", "-n", "compute@localhost", "--without-mingle", "--without-gossip",
            "--loglevel", "INFO"])
        live_cloud._wait_for_line(log, "ready.", live_cloud.procs[-1])
    return live_cloud


def wait_for_host(page, name="localhost", timeout=60):
    """The operator's Hypervisors panel shows the host up (its worker registered)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.goto("/operator/hypervisors/")
        row = page.locator("#hypervisor-table tbody tr", has_text=name)
        if row.count() and row.first.locator(".badge", has_text="up").count():
            return row.first
        time.sleep(1)
    raise AssertionError(f"host {name} never came up")


def upload_image(page, tmp_path):
    """A small qcow2 made with qemu-img, created and uploaded through the
    Images panel; returns its name once the list shows it active."""
    name = f"e2e-tiny-{int(time.time() * 1000)}"
    disk = tmp_path / "tiny.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    page.goto("/images/")
    page.click("#image-create-button")
    page.fill("#id_name", name)
    page.select_option("#id_disk_format", "qcow2")
    page.select_option("#id_container_format", "bare")
    page.set_input_files("#id_file", str(disk))
    # What the bar shows as upload.js moves it with the XHR's upload progress events.
    seen = []
    page.expose_function("dcUploadSeen", lambda text: seen.append(text))
    page.evaluate("""() => {
        const bar = document.querySelector('[data-upload-bar]');
        new MutationObserver(() => window.dcUploadSeen(bar.textContent))
            .observe(bar, {childList: true, characterData: true, subtree: true});
    }""")
    with page.expect_request(lambda r: r.method == "POST" and "/images/create/" in r.url) as sent:
        with page.expect_navigation(url="**/images/"):
            page.click("[data-upload-submit]")
    # Sent by XMLHttpRequest (a plain form post carries neither header), and the bar got to 100%.
    headers = sent.value.headers
    assert headers.get("hx-request") == "true" and headers.get("x-csrftoken")
    assert "100%" in seen
    row = page.locator("#image-table tbody tr", has_text=name)
    assert row.locator("[data-image-status]").inner_text() == "Active"
    return name


def ensure_image(page, tmp_path):
    """The seeded tiny-linux image when the cloud has one, else an uploaded one."""
    page.goto("/images/")
    seeded = page.locator("#image-table tbody tr", has_text=IMAGE).locator("[data-image-status=active]")
    return IMAGE if seeded.count() else upload_image(page, tmp_path)


def status_of(page, instance_id):
    return page.get_attribute(f"#instance-status-{instance_id}", "data-status")


def row_action(page, instance_id, action):
    """Open the row's menu and choose ``action`` (a POST form)."""
    page.click(f"#instance-actions-{instance_id} [data-actions-toggle]")
    with page.expect_navigation():
        page.click(f"#instance-actions-{instance_id} [data-action={action}]")


def wait_status(page, instance_id, status, timeout=60_000):
    page.wait_for_function(
        "([id, status]) => { const el = document.getElementById('instance-status-' + id);"
        " return el && el.dataset.status === status; }", arg=[instance_id, status], timeout=timeout)


def test_launch_watch_it_build_stop_start_and_follow_the_console(new_context, compute_worker, tmp_path):
    operator = new_context().new_page()
    log_in(operator, ADMIN)
    wait_for_host(operator)

    context = new_context()
    # Every status swap the page makes (pushed, or its catch-up when the socket opens).
    context.add_init_script("""window.__statusSeen = [];
        document.addEventListener('dc:swapped', (e) => {
            if (e.target.id && e.target.id.startsWith('instance-status-'))
                window.__statusSeen.push([e.target.id, e.target.dataset.status]); });""")
    page = context.new_page()
    errors = watch_errors(page)
    log_in(page, DEMO)
    image = ensure_image(page, tmp_path)

    # The dialog: the form comes in with htmx, the quota bars follow the choice.
    page.goto("/instances/")
    page.wait_for_selector("body[data-ws-state=open]")
    page.click("#launch-button")
    page.wait_for_selector("#launch-modal.show #launch-form")
    name = f"e2e-{int(time.time())}"
    page.fill("#id_name", name)
    page.select_option("#id_image", label=image)
    page.select_option("#id_flavor", "300")  # gp1.lightspeed: 2 vCPUs, 4 GiB
    cores = page.locator("[data-quota-bar][data-resource=cores]")
    used = int(cores.get_attribute("data-used"))
    page.fill("#id_count", "3")
    assert cores.locator("[data-quota-after]").inner_text() == str(used + 6)
    page.fill("#id_count", "1")
    page.select_option("#id_flavor", "50")
    assert cores.locator("[data-quota-after]").inner_text() == str(used + 1)
    with page.expect_navigation(url="**/instances/") as navigation:
        page.click("#launch-submit")
    served = navigation.value.text()

    # Back on the list: the new row builds, and its badge turns ACTIVE by push.
    row = page.locator("#instance-table tbody tr", has_text=name)
    instance_id = row.get_attribute("data-instance-id")
    first = re.search(rf'id="instance-status-{instance_id}"[^>]*data-status="(\w+)"', served).group(1)
    assert first in ("BUILD", "ACTIVE")  # ACTIVE only when the build beat the page
    page.evaluate("window.__sameDocument = true")
    wait_status(page, instance_id, "ACTIVE")
    assert page.evaluate("window.__sameDocument") is True
    if first == "BUILD":
        # Swapped in place: pushed, or caught up once when the socket opened.
        seen = [status for element, status in page.evaluate("window.__statusSeen")
                if element == f"instance-status-{instance_id}"]
        assert seen and seen[-1] == "ACTIVE"
    # The row's menu was fetched again for the new state: Stop, not Start.
    page.wait_for_selector(f"#instance-actions-{instance_id} [data-action=stop]", state="attached")
    assert page.locator(f"#instance-actions-{instance_id} [data-action=start]").count() == 0

    # Stop from the row's menu; SHUTOFF arrives by push and Start appears.
    row_action(page, instance_id, "stop")
    page.evaluate("window.__sameDocument = true")
    wait_status(page, instance_id, "SHUTOFF")
    page.wait_for_selector(f"#instance-actions-{instance_id} [data-action=start]", state="attached")
    assert page.evaluate("window.__sameDocument") is True

    row_action(page, instance_id, "start")
    wait_status(page, instance_id, "ACTIVE")
    page.wait_for_selector(f"#instance-actions-{instance_id} [data-action=stop]", state="attached")

    # The detail page: the console follows over its own socket; the action log.
    page.click(f"#instance-table a:text-is('{name}')")
    page.wait_for_selector(f"#instance-status-{instance_id}")
    page.click("#tab-console")
    page.wait_for_selector("#console-state[data-console-state=following]")
    page.click("#tab-log")
    log = page.locator("#action-log tbody").inner_text()
    assert "create" in log and "stop" in log and "start" in log

    # Clean up: delete through the confirmation page.
    page.goto("/instances/")
    page.click(f"#instance-actions-{instance_id} [data-actions-toggle]")
    page.click(f"#instance-actions-{instance_id} [data-action=delete]")
    with page.expect_navigation(url="**/instances/"):
        page.click("[data-confirm-submit]")
    assert errors == []


def test_upload_an_image_with_a_progress_bar(new_context, live_cloud, tmp_path):
    page = new_context().new_page()
    errors = watch_errors(page)
    log_in(page, DEMO)
    page.goto("/images/create/")
    # Members cannot publish to everyone; the form only offers private.
    assert page.locator("#id_visibility option").all_inner_texts() == ["Private"]
    upload_image(page, tmp_path)
    # Errors come back into the form without leaving the page.
    page.click("#image-create-button")
    page.select_option("#id_disk_format", "qcow2")
    page.click("[data-upload-submit]")
    page.wait_for_selector("#image-form .invalid-feedback")
    assert "/images/create/" in page.url
    assert errors == []


def test_console_log_follows_a_real_guest_booting(new_context, live_cloud):
    """On the QEMU host (zone ``real``) the guest writes its serial console
    to the file the server tails: the tab fills in while it boots."""
    page = new_context().new_page()
    errors = watch_errors(page)
    log_in(page, DEMO)
    page.goto("/instances/launch/")  # the dialog's form on its own page (as without JavaScript)
    if not page.locator("#id_availability_zone option[value=real]").count():
        pytest.skip("the live cloud has no QEMU host (zone real)")
    if not page.locator("#id_image option", has_text=IMAGE).count():
        pytest.skip("the live cloud has no tiny-linux image")
    name = f"e2e-real-{int(time.time())}"
    page.fill("#id_name", name)
    page.select_option("#id_image", label=IMAGE)
    page.select_option("#id_availability_zone", "real")
    with page.expect_navigation(url="**/instances/"):
        page.click("#launch-submit")
    instance_id = page.locator("#instance-table tbody tr", has_text=name).get_attribute("data-instance-id")
    page.click(f"#instance-table a:text-is('{name}')")
    frames = []

    def listen(socket):
        if "/ws/console/" in socket.url:
            socket.on("framereceived", lambda payload: frames.append(payload))

    page.on("websocket", listen)
    page.click("#tab-console")
    page.wait_for_selector("#console-state[data-console-state=following]")
    page.evaluate("window.__sameDocument = true")
    # The guest boots while the page stays put; its lines arrive as they are written.
    page.wait_for_function("() => document.getElementById('console-log').textContent.includes('DC-GUEST: ready')",
                           timeout=180_000)
    text = page.text_content("#console-log")
    assert f"hostname={name}" in text
    assert page.evaluate("window.__sameDocument") is True
    assert any('"kind": "append"' in str(frame) for frame in frames)
    assert page.locator("#console-log *").count() == 0  # text nodes only, never markup
    page.goto(f"/instances/{instance_id}/delete/")
    with page.expect_navigation(url="**/instances/"):
        page.click("[data-confirm-submit]")
    assert errors == []

"""Volumes in a real browser against the live cloud: launch an instance on
the test-driver host (zone nova), create a volume (the quota cost follows
the size), attach it to the instance from the Volumes table's row menu, and
watch, in a second tab that was open all along, its status go to In-use and
its "attached to" cell fill in without a reload, as the worker's events
arrive on the status websocket; then snapshot it while in use, detach it
and clean up."""

import time

import pytest

from .test_dashboard import ADMIN, DEMO, log_in, watch_errors
from .test_instances_browser import compute_worker, ensure_image, wait_for_host, wait_status  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.live]


def volume_status(page, volume_id):
    return page.get_attribute(f"#volume-status-{volume_id}", "data-status")


def wait_volume(page, volume_id, status, timeout=60_000, kind="volume"):
    page.wait_for_function(
        "([id, status]) => { const el = document.getElementById(id);"
        " return el && el.dataset.status === status; }",
        arg=[f"{kind}-status-{volume_id}", status], timeout=timeout)


def row_menu(page, volume_id, action):
    """Open the volume row's menu and follow ``action`` (a link to its form)."""
    page.click(f"#volume-actions-{volume_id} [data-actions-toggle]")
    with page.expect_navigation():
        page.click(f"#volume-actions-{volume_id} [data-action={action}]")


def test_create_attach_watch_in_use_live_and_snapshot(new_context, compute_worker, tmp_path):  # noqa: F811
    operator = new_context().new_page()
    log_in(operator, ADMIN)
    wait_for_host(operator)
    # The operators' Storage page reports the backend's capacity.
    operator.goto("/operator/storage/")
    assert int(operator.get_attribute("#storage-backend-table tr[data-backend=default] [data-total]",
                                      "data-total")) > 0

    context = new_context()
    # Every volume status swap the watching tab makes (pushed, or its catch-up when the socket opens).
    context.add_init_script("""window.__volumeSeen = [];
        document.addEventListener('dc:swapped', (e) => {
            if (e.target.id && e.target.id.startsWith('volume-status-'))
                window.__volumeSeen.push(e.target.dataset.status); });""")
    page = context.new_page()
    errors = watch_errors(page)
    log_in(page, DEMO)
    stamp = int(time.time() * 1000) % 10_000_000

    # An instance on the test-driver host.
    image = ensure_image(page, tmp_path)
    page.goto("/instances/launch/")
    vm = f"e2e-vol-vm-{stamp}"
    page.fill("#id_name", vm)
    page.select_option("#id_image", label=image)
    page.select_option("#id_flavor", "50")
    with page.expect_navigation(url="**/instances/"):
        page.click("#launch-submit")
    instance_id = page.locator("#instance-table tbody tr", has_text=vm).get_attribute("data-instance-id")
    wait_status(page, instance_id, "ACTIVE")

    # Create a volume; the quota cost follows the size as it is typed.
    page.goto("/volumes/create/")
    gigabytes = page.locator("[data-quota-bar][data-resource=gigabytes]")
    used = int(gigabytes.get_attribute("data-used"))
    name = f"e2e-vol-{stamp}"
    page.fill("#id_name", name)
    page.fill("#id_size", "3")
    assert gigabytes.locator("[data-quota-after]").inner_text() == str(used + 3)
    page.fill("#id_size", "1")
    assert gigabytes.locator("[data-quota-after]").inner_text() == str(used + 1)
    with page.expect_navigation(url="**/volumes/"):
        page.click("#volume-create-submit")
    volume_id = page.locator("#volume-table tbody tr", has_text=name).get_attribute("data-volume-id")
    wait_volume(page, volume_id, "available")

    # A second tab shows the Volumes table all along.
    watcher = context.new_page()
    errors += watch_errors(watcher)
    watcher.goto("/volumes/")
    watcher.wait_for_selector("body[data-ws-state=open]")
    assert volume_status(watcher, volume_id) == "available"
    assert watcher.locator(f"#volume-attachment-{volume_id}").inner_text().strip() == "—"
    watcher.evaluate("window.__sameDocument = true")

    # Attach from the Volumes table's row menu.
    row_menu(page, volume_id, "attach")
    page.select_option("#id_instance", label=f"{vm} (ACTIVE)")
    with page.expect_navigation(url="**/volumes/"):
        page.click("#volume-attach-submit")

    # The watching tab: In-use arrives by push, the "attached to" cell and
    # the row's menu follow, all in the same document.
    wait_volume(watcher, volume_id, "in-use")
    assert watcher.evaluate("window.__sameDocument") is True
    assert watcher.evaluate("window.__volumeSeen")[-1] == "in-use"
    watcher.wait_for_function(
        "([id, vm]) => { const cell = document.getElementById('volume-attachment-' + id);"
        " return cell && cell.textContent.includes(vm) && cell.textContent.includes('/dev/vd'); }",
        arg=[volume_id, vm], timeout=20_000)
    watcher.wait_for_selector(f"#volume-actions-{volume_id} [data-action=detach]", state="attached")
    assert watcher.locator(f"#volume-actions-{volume_id} [data-action=attach]").count() == 0
    # The instance's detail lists it.
    page.goto(f"/instances/{instance_id}/")
    assert name in page.locator("#instance-volumes").inner_text()

    # Snapshot it while in use (forced, with a warning on the form).
    page.goto("/volumes/")
    row_menu(page, volume_id, "snapshot")
    assert page.locator("#snapshot-in-use").count() == 1
    snapshot_name = f"{name}-snap"
    page.fill("#id_name", snapshot_name)
    with page.expect_navigation(url="**/volumes/"):
        page.click("#volume-snapshot-submit")
    page.goto("/volume-snapshots/")
    snapshot_id = page.locator("#snapshot-table tbody tr", has_text=snapshot_name).get_attribute("data-snapshot-id")
    wait_volume(page, snapshot_id, "available", kind="snapshot")

    # Detach; the watching tab goes back to available and an empty cell.
    page.goto("/volumes/")
    row_menu(page, volume_id, "detach")
    with page.expect_navigation(url="**/volumes/"):
        page.click("[data-confirm-submit]")
    wait_volume(watcher, volume_id, "available")
    watcher.wait_for_function(
        "(id) => document.getElementById('volume-attachment-' + id).textContent.trim() === '—'",
        arg=volume_id, timeout=20_000)
    assert watcher.evaluate("window.__sameDocument") is True

    # Clean up: the snapshot, the volume (its row shows Deleted by push), the instance.
    page.goto(f"/volume-snapshots/{snapshot_id}/delete/")
    with page.expect_navigation(url="**/volume-snapshots/"):
        page.click("[data-confirm-submit]")
    page.goto("/volume-snapshots/")
    page.wait_for_function(
        "(id) => { const el = document.getElementById('snapshot-status-' + id); return !el ||"
        " el.dataset.status === 'deleted'; }", arg=snapshot_id, timeout=30_000)
    page.goto("/volumes/")
    row_menu(page, volume_id, "delete")
    with page.expect_navigation(url="**/volumes/"):
        page.click("[data-confirm-submit]")
    wait_volume(watcher, volume_id, "deleted")
    page.goto(f"/instances/{instance_id}/delete/")
    with page.expect_navigation(url="**/instances/"):
        page.click("[data-confirm-submit]")
    assert errors == []

"""The Instances, Images, Hypervisors and All Instances panels.

Instances are made as rows (or through the services inside a test
transaction, whose on-commit tasks never run), so nothing here needs a
worker or a hypervisor; tests/compute covers what the tasks do.
"""

import asyncio
import base64
import re
import subprocess

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext

from billing import quotas
from compute import console
from compute.models import Host, Image, Instance, InstanceAction, InstanceFault
from identity import services as identity
from tests.factories import make_project, make_user

pytestmark = pytest.mark.django_db


def make_instance(project, user, name="vm", vm_state="active", task_state=None, **fields):
    return Instance.objects.create(project=project, user=user, name=name, hostname=name, flavor_ref="50",
                                   flavor_name="gp1.semisonic", vcpus=1, memory_mib=512, root_gb=80,
                                   vm_state=vm_state, task_state=task_state, **fields)


def make_image(owner=None, name="tiny", visibility="public", status="active", **fields):
    return Image.objects.create(name=name, owner=owner, visibility=visibility, status=status, disk_format="qcow2",
                                container_format="bare", size=1024 if status == "active" else None, **fields)


def row(page, instance):
    """The <tr> of ``instance`` in a rendered instance table."""
    match = re.search(rf'<tr data-instance-id="{instance.pk}".*?</tr>', page, re.S)
    assert match, f"no row for {instance.name}"
    return match.group(0)


def actions_in(html):
    return set(re.findall(r'data-action="([a-z_]+)"', html))


def messages_of(response):
    return [str(m) for m in response.wsgi_request._messages]


# --- The list -----------------------------------------------------------------------

def test_row_actions_follow_the_state_table(tenant_a, member_a):
    project, user = tenant_a.project, tenant_a.member
    active = make_instance(project, user, "web")
    stopped = make_instance(project, user, "db", vm_state="stopped")
    busy = make_instance(project, user, "busy", task_state="powering-off")
    paused = make_instance(project, user, "idle", vm_state="paused")
    resized = make_instance(project, user, "grown", vm_state="resized")
    page = member_a.get("/instances/").content.decode()
    assert actions_in(row(page, active)) == {"stop", "reboot", "reboot_hard", "pause", "suspend", "snapshot",
                                             "delete"}
    assert actions_in(row(page, stopped)) == {"start", "reboot_hard", "snapshot", "delete"}
    # While a task runs only Delete stays (it is allowed from anywhere, as in Nova).
    assert actions_in(row(page, busy)) == {"delete"}
    assert actions_in(row(page, paused)) == {"unpause", "reboot_hard", "snapshot", "delete"}
    assert actions_in(row(page, resized)) >= {"confirm_resize", "revert_resize"}
    # Every row action is a POST form carrying the CSRF token.
    assert row(page, active).count('name="csrfmiddlewaretoken"') == 5


def test_status_cell_is_the_pushed_partial(tenant_a, member_a):
    instance = make_instance(tenant_a.project, tenant_a.member, "building", vm_state="building",
                             task_state="spawning", progress=40)
    cell = row(member_a.get("/instances/").content.decode(), instance)
    assert f'id="instance-status-{instance.pk}"' in cell
    assert '<progress class="dc-progress dc-build-progress' in cell and 'value="40"' in cell
    assert "style=" not in cell  # the CSP forbids inline styles
    from compute.events import instance_event

    assert instance_event(instance)["html"].strip() in cell


def test_list_columns_filter_and_scope(tenant_a, tenant_b, member_a):
    image = make_image(name="tiny-linux")
    mine = make_instance(tenant_a.project, tenant_a.member, "web-1", image_ref=image.pk)
    make_instance(tenant_a.project, tenant_a.member, "db-1")
    theirs = make_instance(tenant_b.project, tenant_b.member, "web-theirs")
    make_instance(tenant_a.project, tenant_a.member, "gone", vm_state="deleted")
    page = member_a.get("/instances/").content.decode()
    assert "tiny-linux" in row(page, mine) and "gp1.semisonic" in row(page, mine) and "—" in row(page, mine)
    assert "web-theirs" not in page and theirs.pk not in page
    assert ">gone<" not in page
    filtered = member_a.get("/instances/?q=web").content.decode()
    assert "web-1" in filtered and "db-1" not in filtered


def test_user_strings_are_escaped(tenant_a, member_a):
    make_instance(tenant_a.project, tenant_a.member, "<script>alert(1)</script>")
    page = member_a.get("/instances/").content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_reader_sees_no_actions_and_gets_403(tenant_a, reader_a):
    instance = make_instance(tenant_a.project, tenant_a.member)
    page = reader_a.get("/instances/").content.decode()
    assert not actions_in(row(page, instance))
    assert 'id="launch-button"' not in page and "instance-bulk-form" not in page
    assert reader_a.get("/instances/launch/").status_code == 403
    assert reader_a.post("/instances/launch/", {"name": "x"}).status_code == 403
    assert reader_a.post(f"/instances/{instance.pk}/stop/").status_code == 403
    assert reader_a.post(f"/instances/{instance.pk}/delete/").status_code == 403
    assert reader_a.post("/instances/bulk/", {"action": "delete", "select": [instance.pk],
                                               "confirmed": "1"}).status_code == 403
    instance.refresh_from_db()
    assert instance.task_state is None


def bulk_instances(project, user, n, start=0, **fields):
    Instance.objects.bulk_create(
        Instance(project=project, user=user, name=f"vm-{i}", hostname=f"vm-{i}", flavor_ref="50",
                 flavor_name="gp1.semisonic", vcpus=1, memory_mib=512, root_gb=80, vm_state="active",
                 task_state=None, **fields) for i in range(start, start + n))


def page_cost(client, url):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    body = response.content.decode().split("<tbody", 1)[1].split("</tbody>", 1)[0]
    return len(captured), body.count("<tr")


def test_query_count_does_not_grow_with_rows(tenant_a, member_a):
    project, user = tenant_a.project, tenant_a.member
    image = make_image()
    member_a.get("/instances/")  # the session remembers the project first
    bulk_instances(project, user, 10, image_ref=image.pk)
    ten, shown = page_cost(member_a, "/instances/?per_page=100")
    assert shown == 10
    bulk_instances(project, user, 90, start=10, image_ref=image.pk)
    hundred, shown = page_cost(member_a, "/instances/?per_page=100")
    assert shown == 100
    assert hundred == ten


def test_admin_lists_cost_the_same_for_more_rows(tenant_a, tenant_b, operator_client):
    hosts = [Host.objects.create(name=f"node-{i}", uri="test:///default", virt_type="test", vcpus=8,
                                 memory_mib=8192, disk_gb=100) for i in range(2)]
    operator_client.get("/operator/instances/")
    bulk_instances(tenant_a.project, tenant_a.member, 5, host=hosts[0])
    bulk_instances(tenant_b.project, tenant_b.member, 5, start=5, host=hosts[1])
    few = page_cost(operator_client, "/operator/instances/?per_page=100")
    hypervisors = page_cost(operator_client, "/operator/hypervisors/")
    bulk_instances(tenant_a.project, tenant_a.member, 45, start=10, host=hosts[1])
    bulk_instances(tenant_b.project, tenant_b.member, 45, start=55, host=hosts[0])
    hosts += [Host.objects.create(name=f"node-{i}", uri="test:///default", virt_type="test", vcpus=8,
                                  memory_mib=8192, disk_gb=100) for i in range(2, 6)]
    many = page_cost(operator_client, "/operator/instances/?per_page=100")
    assert (few[1], many[1]) == (10, 100) and few[0] == many[0]
    more_hosts = page_cost(operator_client, "/operator/hypervisors/")
    assert (hypervisors[1], more_hosts[1]) == (2, 6) and hypervisors[0] == more_hosts[0]


def test_image_list_cost_does_not_grow(tenant_a, member_a):
    member_a.get("/images/")
    for i in range(3):
        make_image(owner=tenant_a.project, name=f"own-{i}", visibility="private")
    few = page_cost(member_a, "/images/")
    for i in range(3, 30):
        make_image(owner=tenant_a.project if i % 2 else None, name=f"img-{i}", visibility="public")
    many = page_cost(member_a, "/images/")
    assert (few[1], many[1]) == (3, 30) and few[0] == many[0]


# --- Row and bulk actions -------------------------------------------------------------

def test_row_action_goes_through_the_service(tenant_a, member_a):
    instance = make_instance(tenant_a.project, tenant_a.member)
    response = member_a.post(f"/instances/{instance.pk}/stop/", {"next": "/instances/?q=vm"})
    assert response.status_code == 302 and response["Location"] == "/instances/?q=vm"
    instance.refresh_from_db()
    assert instance.task_state == "powering-off"
    assert InstanceAction.objects.get(instance=instance).action == "stop"


def test_refused_action_is_a_message_not_an_error(tenant_a, member_a):
    instance = make_instance(tenant_a.project, tenant_a.member)
    response = member_a.post(f"/instances/{instance.pk}/start/", follow=True)
    assert response.status_code == 200
    assert any("Cannot 'start'" in m for m in messages_of(response))
    # Unknown action names are not routed to the service at all.
    assert member_a.post(f"/instances/{instance.pk}/migrate/").status_code == 404
    assert member_a.get(f"/instances/{instance.pk}/stop/").status_code == 405


def test_delete_asks_then_deletes(tenant_a, member_a):
    instance = make_instance(tenant_a.project, tenant_a.member, "doomed")
    page = member_a.get(f"/instances/{instance.pk}/delete/").content.decode()
    assert "Delete the instance doomed?" in page and 'name="csrfmiddlewaretoken"' in page
    assert member_a.post(f"/instances/{instance.pk}/delete/").status_code == 302
    instance.refresh_from_db()
    assert instance.task_state == "deleting"


def test_snapshot_form_creates_an_image(tenant_a, member_a):
    instance = make_instance(tenant_a.project, tenant_a.member, "web")
    page = member_a.get(f"/instances/{instance.pk}/snapshot/").content.decode()
    assert 'value="web-snapshot"' in page
    response = member_a.post(f"/instances/{instance.pk}/snapshot/", {"name": "web-backup"})
    assert response.status_code == 302 and response["Location"] == "/images/"
    image = Image.objects.get(name="web-backup")
    assert image.owner == tenant_a.project and image.status == "queued"
    instance.refresh_from_db()
    assert instance.task_state == "image_snapshot"
    # A busy instance refuses a second snapshot: a form error, not a 500.
    response = member_a.post(f"/instances/{instance.pk}/snapshot/", {"name": "again"})
    assert response.status_code == 200 and "Cannot &#x27;snapshot&#x27;" in response.content.decode()


def test_bulk_delete_confirms_then_calls_the_service(tenant_a, tenant_b, member_a):
    a = make_instance(tenant_a.project, tenant_a.member, "a")
    b = make_instance(tenant_a.project, tenant_a.member, "b", vm_state="stopped")
    theirs = make_instance(tenant_b.project, tenant_b.member, "theirs")
    selected = {"action": "delete", "select": [a.pk, b.pk, theirs.pk]}
    page = member_a.post("/instances/bulk/", selected).content.decode()
    assert "<li>a</li>" in page and "<li>b</li>" in page and "theirs" not in page
    assert not Instance.objects.filter(task_state="deleting").exists()
    response = member_a.post("/instances/bulk/", {**selected, "confirmed": "1"}, follow=True)
    assert Instance.objects.get(pk=a.pk).task_state == "deleting"
    assert Instance.objects.get(pk=b.pk).task_state == "deleting"
    assert Instance.objects.get(pk=theirs.pk).task_state is None
    assert any(m.startswith("Deleting ") for m in messages_of(response))


def test_bulk_stop_reports_each_refusal(tenant_a, member_a):
    running = make_instance(tenant_a.project, tenant_a.member, "running")
    stopped = make_instance(tenant_a.project, tenant_a.member, "already", vm_state="stopped")
    response = member_a.post("/instances/bulk/", {"action": "stop", "select": [running.pk, stopped.pk]},
                             follow=True)
    assert Instance.objects.get(pk=running.pk).task_state == "powering-off"
    assert Instance.objects.get(pk=stopped.pk).task_state is None
    notes = messages_of(response)
    assert "Stopping running." in notes
    assert any(m.startswith("already: Cannot 'stop'") for m in notes)


def test_another_projects_instance_is_not_found(tenant_a, tenant_b, member_a):
    theirs = make_instance(tenant_b.project, tenant_b.member, "theirs")
    for url in (f"/instances/{theirs.pk}/", f"/instances/{theirs.pk}/actions/", f"/instances/{theirs.pk}/delete/",
                f"/instances/{theirs.pk}/snapshot/"):
        assert member_a.get(url).status_code == 404, url
    assert member_a.post(f"/instances/{theirs.pk}/stop/").status_code == 404
    assert member_a.post(f"/instances/{theirs.pk}/delete/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.task_state is None


def test_actions_partial_follows_the_state(tenant_a, member_a):
    instance = make_instance(tenant_a.project, tenant_a.member, vm_state="stopped")
    html = member_a.get(f"/instances/{instance.pk}/actions/?compact=1").content.decode()
    assert html.lstrip().startswith(f'<div id="instance-actions-{instance.pk}"')
    assert "start" in actions_in(html) and 'name="next" value="/instances/"' in html
    Instance.objects.filter(pk=instance.pk).update(vm_state="active")
    assert "start" not in actions_in(member_a.get(f"/instances/{instance.pk}/actions/").content.decode())


def test_statuses_resync_returns_this_projects_partials(tenant_a, tenant_b, member_a):
    """What a page asks for once its socket opens (events before that were missed)."""
    building = make_instance(tenant_a.project, tenant_a.member, "b", vm_state="building", task_state="spawning")
    gone = make_instance(tenant_a.project, tenant_a.member, "gone", vm_state="deleted")
    theirs = make_instance(tenant_b.project, tenant_b.member, "theirs")
    page = member_a.get("/instances/").content.decode()
    assert 'data-statuses-url="/instances/statuses/"' in page and "dreamcompute/instances.js" in page
    html = member_a.get(f"/instances/statuses/?id={building.pk}&id={gone.pk}&id={theirs.pk}").content.decode()
    assert f'id="instance-status-{building.pk}"' in html and 'data-status="BUILD"' in html
    assert f'id="instance-status-{gone.pk}"' in html and 'data-status="DELETED"' in html
    assert theirs.pk not in html


def test_locked_instance_offers_no_actions_to_members(tenant_a, member_a):
    instance = make_instance(tenant_a.project, tenant_a.member, locked=True)
    cell = row(member_a.get("/instances/").content.decode(), instance)
    assert not actions_in(cell) and "bi-lock-fill" in cell


# --- Launch ---------------------------------------------------------------------------

@pytest.fixture
def image(db):
    return make_image(name="tiny-linux")


def launch_data(**extra):
    return {"name": "web", "count": "1", "flavor": "50", "key_name": "", "availability_zone": "",
            "user_data": "", **extra}


def test_launch_form_lists_what_the_project_may_use(tenant_a, tenant_b, member_a, flavors, image):
    make_image(name="queued-one", status="queued")
    make_image(owner=tenant_b.project, name="bravo-private", visibility="private")
    make_image(owner=tenant_a.project, name="alpha-private", visibility="private")
    from compute.services import create_keypair

    create_keypair(user=tenant_a.member, project=tenant_a.project, name="laptop")
    page = member_a.get("/instances/launch/").content.decode()
    assert "tiny-linux" in page and "alpha-private" in page
    assert "queued-one" not in page and "bravo-private" not in page
    assert 'data-vcpus="2" data-ram="4096"' in page  # gp1.lightspeed's sizes for launch.js
    assert '<option value="laptop" selected>laptop</option>' in page
    assert 'data-resource="instances" data-used="0"' in page and 'name="csrfmiddlewaretoken"' in page
    # In the dialog (htmx) only the form comes back, with a Cancel that closes the dialog.
    partial = member_a.get("/instances/launch/", headers={"HX-Request": "true"}).content.decode()
    assert partial.lstrip().startswith("<form") and 'data-bs-dismiss="modal"' in partial


def test_launch_creates_instances_with_base64_user_data(tenant_a, member_a, flavors, image,
                                                        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = member_a.post("/instances/launch/", launch_data(count="2", image=image.pk,
                                                                   user_data="#!/bin/sh\necho hé\n"))
    assert response.status_code == 302 and response["Location"] == "/instances/"
    launched = Instance.objects.for_project(tenant_a.project).order_by("name")
    assert [i.name for i in launched] == ["web-1", "web-2"]
    assert base64.b64decode(launched[0].user_data).decode() == "#!/bin/sh\necho hé\n"
    assert launched[0].vm_state == "building" and launched[0].image_ref == image.pk


def test_launch_from_the_dialog_redirects_with_htmx(tenant_a, member_a, flavors, image,
                                                    django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = member_a.post("/instances/launch/", launch_data(image=image.pk), headers={"HX-Request": "true"})
    assert response.status_code == 200 and response["HX-Redirect"] == "/instances/"


def test_launch_over_quota_is_a_form_error(tenant_a, member_a, flavors, image):
    quotas.set_limit(tenant_a.project, "cores", 1)
    response = member_a.post("/instances/launch/", launch_data(image=image.pk, flavor="300"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Quota exceeded for cores" in page and "data-form-errors" in page
    # The bars already show the overflow for the chosen flavor (2 vCPUs of 1).
    assert re.search(r'data-resource="cores" data-used="0"\s+data-limit="1"', page)
    assert not Instance.objects.exists()
    quotas.set_limit(tenant_a.project, "instances", 0)
    page = member_a.post("/instances/launch/", launch_data(image=image.pk)).content.decode()
    assert "Quota exceeded for instances" in page


def test_launch_refuses_bad_choices(tenant_a, tenant_b, member_a, flavors, image):
    theirs = make_image(owner=tenant_b.project, name="theirs", visibility="private")
    page = member_a.post("/instances/launch/", launch_data(image=theirs.pk)).content.decode()
    assert "Select a valid choice" in page
    big = make_image(name="big", min_ram=4096)
    page = member_a.post("/instances/launch/", launch_data(image=big.pk)).content.decode()
    assert "too small for requested image" in page
    assert not Instance.objects.exists()


# --- Detail ---------------------------------------------------------------------------

def test_detail_overview_console_and_action_log(tenant_a, member_a, settings, tmp_path, image):
    settings.INSTANCES_ROOT = str(tmp_path)
    host = Host.objects.create(name="node-1", uri="test:///default", virt_type="test", vcpus=8, memory_mib=8192,
                               disk_gb=100)
    instance = make_instance(tenant_a.project, tenant_a.member, "web", vm_state="error", image_ref=image.pk,
                             host=host, key_name="laptop", metadata={"role": "<b>web</b>"})
    InstanceFault.objects.create(instance=instance, message="No valid host was found.")
    InstanceAction.objects.create(instance=instance, action="create", request_id="req-1", user=tenant_a.member,
                                  result="Error", message="boom")
    path = console.console_path(instance)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"Booting <kernel>\r\nlogin: ")
    page = member_a.get(f"/instances/{instance.pk}/").content.decode()
    assert f'id="instance-status-{instance.pk}"' in page
    assert "No valid host was found." in page
    assert "tiny-linux" in page and "laptop" in page and "512 MiB" in page
    assert "role = &lt;b&gt;web&lt;/b&gt;" in page
    assert "Booting &lt;kernel&gt;\nlogin:" in page
    assert f'data-console-socket="/ws/console/{instance.pk}/"' in page
    assert '<span class="badge text-bg-danger">Error</span>' in page and "boom" in page
    assert 'id="instance-host"' not in page  # hosts are for operators
    assert "?tab=console" in page
    assert 'class="tab-pane show active" id="pane-console"' in member_a.get(
        f"/instances/{instance.pk}/?tab=console").content.decode()


def test_operator_sees_the_host(operator, operator_client, image):
    host = Host.objects.create(name="node-7", uri="test:///default", virt_type="test", vcpus=8, memory_mib=8192,
                               disk_gb=100)
    project = operator.memberships.get().project
    instance = make_instance(project, operator, host=host)
    page = operator_client.get(f"/instances/{instance.pk}/").content.decode()
    assert 'id="instance-host">node-7<' in page


# --- Images ---------------------------------------------------------------------------

@pytest.fixture
def storage(settings, tmp_path):
    from storage.drivers import get_storage

    settings.STORAGE_ROOT = str(tmp_path / "storage")
    get_storage.cache_clear()
    yield
    get_storage.cache_clear()


def test_image_list_shows_what_the_project_can_see(tenant_a, tenant_b, member_a):
    make_image(name="cloud-image")
    make_image(owner=tenant_a.project, name="alpha-own", visibility="private")
    make_image(owner=tenant_b.project, name="bravo-own", visibility="private")
    page = member_a.get("/images/").content.decode()
    assert "cloud-image" in page and "alpha-own" in page and "bravo-own" not in page
    assert "(cloud)" in page and tenant_a.project.name in page


def test_create_image_then_upload_with_progress_markup(tenant_a, member_a, storage, tmp_path):
    page = member_a.get("/images/create/").content.decode()
    assert 'enctype="multipart/form-data"' in page and "data-upload-progress" in page
    assert 'value="public"' not in page  # members cannot publish
    response = member_a.post("/images/create/", {"name": "mine", "disk_format": "qcow2", "container_format": "bare",
                                                 "visibility": "private", "min_disk": "0", "min_ram": "0"})
    assert response.status_code == 302
    image = Image.objects.get(name="mine")
    assert image.owner == tenant_a.project and image.status == "queued" and image.visibility == "private"
    assert "data-action=\"upload\"" in member_a.get("/images/").content.decode()
    disk = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    with disk.open("rb") as handle:
        response = member_a.post(f"/images/{image.pk}/upload/", {"file": handle}, headers={"HX-Request": "true"})
    assert response["HX-Redirect"] == "/images/"
    image.refresh_from_db()
    assert image.status == "active" and image.size == disk.stat().st_size


def test_bad_upload_is_reported_and_the_image_kept(tenant_a, member_a, storage, tmp_path):
    bad = tmp_path / "not-an-image.qcow2"
    bad.write_bytes(b"hello, I am text")
    with bad.open("rb") as handle:
        response = member_a.post("/images/create/", {
            "name": "bad", "disk_format": "qcow2", "container_format": "bare", "visibility": "private",
            "min_disk": "0", "min_ram": "0", "file": handle}, follow=True)
    assert any("upload of bad failed" in m for m in messages_of(response))
    assert Image.objects.get(name="bad").status == "queued"


def test_public_images_are_for_operators(tenant_a, member_a, operator_client, storage):
    data = {"name": "pub", "disk_format": "qcow2", "container_format": "bare", "visibility": "public",
            "min_disk": "0", "min_ram": "0"}
    response = member_a.post("/images/create/", data)
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert operator_client.post("/images/create/", data).status_code == 302
    assert Image.objects.get(name="pub").visibility == "public"


def test_image_delete_rules(tenant_a, tenant_b, member_a, reader_a, storage):
    own = make_image(owner=tenant_a.project, name="own", visibility="private")
    kept = make_image(owner=tenant_a.project, name="kept", visibility="private", protected=True)
    cloud = make_image(name="cloud")
    theirs = make_image(owner=tenant_b.project, name="theirs", visibility="private")
    page = member_a.get("/images/").content.decode()
    assert page.count('data-action="delete"') == 1
    assert reader_a.post(f"/images/{own.pk}/delete/").status_code == 403
    assert member_a.post(f"/images/{cloud.pk}/delete/").status_code == 403
    assert member_a.post(f"/images/{theirs.pk}/delete/").status_code == 404
    response = member_a.post(f"/images/{kept.pk}/delete/", follow=True)
    assert any("protected" in m for m in messages_of(response))
    assert member_a.post(f"/images/{own.pk}/delete/").status_code == 302
    assert set(Image.objects.values_list("name", flat=True)) == {"kept", "cloud", "theirs"}


# --- Admin ------------------------------------------------------------------------------

def test_hypervisors_show_usage_and_toggle(tenant_a, operator_client, member_a):
    host = Host.objects.create(name="node-1", uri="test:///default", virt_type="test", vcpus=8, memory_mib=16384,
                               disk_gb=500)
    Host.objects.create(name="node-2", uri="test:///default", virt_type="test", vcpus=4, memory_mib=8192,
                        disk_gb=100)
    make_instance(tenant_a.project, tenant_a.member, "a", host=host)
    make_instance(tenant_a.project, tenant_a.member, "b", host=host)
    make_instance(tenant_a.project, tenant_a.member, "gone", host=host, vm_state="deleted")
    assert member_a.get("/operator/hypervisors/").status_code == 403
    page = operator_client.get("/operator/hypervisors/").content.decode()
    node1 = re.search(r"<tr.*?node-1.*?</tr>", page, re.S).group(0)
    assert "2 / 8" in node1 and "1.0\xa0GB / 16.0\xa0GB" in node1 and "160 GB / 500 GB" in node1
    assert ">2<" in node1 and "down" in node1
    response = operator_client.post(f"/operator/hypervisors/{host.pk}/disable/", {"reason": "maintenance"})
    assert response.status_code == 302
    host.refresh_from_db()
    assert not host.enabled and host.disabled_reason == "maintenance"
    assert "maintenance" in operator_client.get("/operator/hypervisors/").content.decode()
    operator_client.post(f"/operator/hypervisors/{host.pk}/enable/")
    host.refresh_from_db()
    assert host.enabled
    assert member_a.post(f"/operator/hypervisors/{host.pk}/disable/").status_code == 403


def test_all_instances_lists_every_project(tenant_a, tenant_b, operator_client, member_a):
    make_instance(tenant_a.project, tenant_a.member, "alpha-vm")
    make_instance(tenant_b.project, tenant_b.member, "bravo-vm")
    assert member_a.get("/operator/instances/").status_code == 403
    page = operator_client.get("/operator/instances/").content.decode()
    assert "alpha-vm" in page and "bravo-vm" in page and tenant_b.project.name in page
    filtered = operator_client.get("/operator/instances/?q=bravo").content.decode()
    assert "alpha-vm" not in filtered and "bravo-vm" in filtered


def test_navigation_and_csrf(tenant_a, operator_client):
    page = operator_client.get("/instances/").content.decode()
    for url in ("/instances/", "/images/", "/operator/hypervisors/", "/operator/instances/"):
        assert f'href="{url}"' in page
    assert 'class="nav-link active" href="/instances/"' in page
    client = Client(enforce_csrf_checks=True)
    client.force_login(tenant_a.member)
    page = client.get("/instances/launch/").content.decode()
    assert 'name="csrfmiddlewaretoken"' in page
    assert client.post("/instances/launch/", launch_data()).status_code == 403
    assert client.post("/instances/bulk/", {"action": "stop"}).status_code == 403


# --- The console websocket ----------------------------------------------------------------

def session_cookie(user):
    client = Client()
    client.force_login(user)
    client.get("/")  # the middleware remembers the current project in the session
    return client.cookies["sessionid"].value


def console_socket(instance_id, cookie=None):
    from config.asgi import application

    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    return WebsocketCommunicator(application, f"/ws/console/{instance_id}/", headers=headers)


def run(coroutine):
    async def and_close():
        try:
            return await coroutine
        finally:
            await sync_to_async(connections.close_all)()

    return asyncio.run(and_close())


@pytest.mark.django_db(transaction=True)
def test_console_socket_refuses_strangers():
    alpha, bravo = make_project("alpha-console"), make_project("bravo-console")
    owner = make_user(alpha, username="owner")
    instance = make_instance(alpha, owner)
    stranger = session_cookie(make_user(bravo, username="stranger"))
    homeless = session_cookie(make_user(username="homeless"))

    async def scenario():
        for cookie, code in ((None, 4401), (stranger, 4404), (homeless, 4403)):
            ws = console_socket(instance.pk, cookie)
            connected, close_code = await ws.connect()
            assert not connected and close_code == code

    run(scenario())


@pytest.mark.django_db(transaction=True)
def test_console_socket_requires_the_current_project(settings, tmp_path):
    """A member of both projects whose session is on the other one is refused."""
    settings.INSTANCES_ROOT = str(tmp_path)
    alpha, bravo = make_project("alpha-two"), make_project("bravo-two")
    user = make_user(bravo, username="both")
    identity.set_membership(user=user, project=alpha)
    instance = make_instance(alpha, user)
    client = Client()
    client.force_login(user)
    client.post("/auth/switch-project/", {"project": bravo.pk})
    cookie = client.cookies["sessionid"].value

    async def scenario():
        connected, code = await console_socket(instance.pk, cookie).connect()
        assert not connected and code == 4404

    run(scenario())


@pytest.mark.django_db(transaction=True)
def test_console_socket_follows_the_file(settings, tmp_path):
    settings.INSTANCES_ROOT = str(tmp_path)
    project = make_project("console-follow")
    user = make_user(project, username="follower")
    instance = make_instance(project, user)
    path = console.console_path(instance)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"SeaBIOS\r\n")
    cookie = session_cookie(user)

    async def scenario():
        ws = console_socket(instance.pk, cookie)
        assert (await ws.connect())[0]
        assert await ws.receive_json_from(timeout=5) == {"kind": "reset", "text": "SeaBIOS\n"}
        with path.open("ab") as handle:
            handle.write("Linux <version> ☃\r\nlogin: ".encode())
        assert await ws.receive_json_from(timeout=5) == {"kind": "append", "text": "Linux <version> ☃\nlogin: "}
        assert await ws.receive_nothing(timeout=0.8)
        path.write_bytes(b"rebuilt\n")  # the file starts over
        assert await ws.receive_json_from(timeout=5) == {"kind": "reset", "text": "rebuilt\n"}
        await ws.disconnect()

    run(scenario())


def test_detail_links_the_vnc_console_only_when_active(client, tenant_a, flavors, db):
    from compute import hosts
    from compute.drivers import get_driver
    from compute.models import Instance

    host = hosts.register(get_driver(), "node-vnc")
    running = Instance.objects.create(project=tenant_a.project, user=tenant_a.member, name="on", hostname="on",
                                      flavor_ref="50", flavor_name="gp1.semisonic", vcpus=1, memory_mib=512,
                                      root_gb=80, host=host, vm_state="active", task_state=None)
    stopped = Instance.objects.create(project=tenant_a.project, user=tenant_a.member, name="off", hostname="off",
                                      flavor_ref="50", flavor_name="gp1.semisonic", vcpus=1, memory_mib=512,
                                      root_gb=80, host=host, vm_state="stopped", task_state=None)
    client.force_login(tenant_a.member)
    assert 'id="vnc-console-link"' in client.get(f"/instances/{running.pk}/").content.decode()
    assert 'id="vnc-console-link"' not in client.get(f"/instances/{stopped.pk}/").content.decode()


def test_list_shows_each_instance_addresses_in_one_query(tenant_a, member_a, operator):
    from network import services as network_services
    from network.models import Port

    public = network_services.seed_public_network(operator.memberships.first().project)
    vms = [make_instance(tenant_a.project, tenant_a.member, f"net-{i}") for i in range(3)]
    addresses = {}
    for vm in vms:
        port = network_services.create_port(project=tenant_a.project, network=public, device_owner=Port.COMPUTE,
                                            device_id=vm.pk)
        addresses[vm.pk] = port.fixed_ips.get().ip_address
    member_a.get("/instances/")  # the session's first request costs its own queries
    with CaptureQueriesContext(connection) as three:
        page = member_a.get("/instances/").content.decode()
    for vm in vms:
        assert addresses[vm.pk] in row(page, vm)
    make_instance(tenant_a.project, tenant_a.member, "no-net")
    with CaptureQueriesContext(connection) as four:
        member_a.get("/instances/")
    assert len(four) == len(three)

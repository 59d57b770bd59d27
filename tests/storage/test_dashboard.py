"""The Volumes panels (Volumes, Volume Snapshots), the operators' Storage
page, and the instance detail's attached volumes, through the Django test
client. Everything is made through storage/services.py; the volume tasks
run eagerly on the real file backend in a throwaway STORAGE_ROOT when a
test runs a request's on-commit work (``run``); attach and detach are left
at ``attaching``/``detaching`` (the host's part is compute's, tested
there and in the browser test)."""

import re

import pytest

from billing import quotas
from compute.models import Image, Instance
from storage import services
from storage.models import Volume, VolumeAttachment, VolumeSnapshot
from storage.states import SnapshotStatus, VolumeStatus
from tests.dashboard.conftest import signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def file_storage(eager_tasks, settings, tmp_path):
    from storage.drivers import get_storage

    settings.STORAGE_BACKEND = "file"
    settings.STORAGE_ROOT = str(tmp_path / "storage")
    get_storage.cache_clear()
    yield get_storage()
    get_storage.cache_clear()


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    """``run(call, …)``: make a request and run what it enqueued on commit."""
    def call(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return call


@pytest.fixture
def member_a(tenant_a):
    return signed_in(tenant_a.member)


@pytest.fixture
def reader_a(tenant_a):
    return signed_in(tenant_a.reader)


@pytest.fixture
def member_b(tenant_b):
    return signed_in(tenant_b.member)


@pytest.fixture
def make_volume(run):
    def make(tenant, size=1, **kwargs):
        volume = run(services.create_volume, project=tenant.project, user=tenant.member, size=size, **kwargs)
        volume.refresh_from_db()
        return volume

    return make


def make_instance(tenant, host, name="vm", vm_state="active"):
    return Instance.objects.create(project=tenant.project, user=tenant.member, name=name, hostname=name,
                                   flavor_ref="50", flavor_name="gp1.semisonic", vcpus=1, memory_mib=512,
                                   root_gb=80, vm_state=vm_state, task_state=None, host=host)


def messages_of(response):
    return [str(m) for m in response.wsgi_request._messages]


def field_errors(page, field):
    """The invalid-feedback texts rendered under ``field``."""
    match = re.search(rf'id="id_{field}".*?(?=<div class="(?:mb-3|form-check)|<button|</div>\s*<div class="col)',
                      page, re.S)
    assert match, f"no field {field}"
    return " ".join(re.findall(r'class="invalid-feedback d-block">(.*?)</div>', match.group(0), re.S))


def form_errors(page):
    match = re.search(r"<div class=\"alert alert-danger\" role=\"alert\" data-form-errors>(.*?)</div>\s*(?=\n)",
                      page, re.S)
    return match.group(1) if match else ""


def row(page, volume):
    match = re.search(rf'<tr data-volume-id="{volume.pk}".*?</tr>', page, re.S)
    assert match, f"no row for {volume.pk}"
    return match.group(0)


def quota_bar(page, resource):
    match = re.search(rf'data-quota-bar data-resource="{resource}" data-used="(\d+)" data-limit="(-?\d+)".*?'
                      r"data-quota-after>(\d+)<", page, re.S)
    assert match, f"no quota bar for {resource}"
    return tuple(int(x) for x in match.groups())


# --- Volumes: list, create ---------------------------------------------------------------

def test_the_volumes_table_shows_status_type_attachment_and_bootable(tenant_a, tenant_b, member_a, make_volume,
                                                                      image, host):
    plain = make_volume(tenant_a, size=2, name="data")
    booty = make_volume(tenant_a, size=1, name="root", image=image)
    theirs = make_volume(tenant_b, name="theirs")
    vm = make_instance(tenant_a, host, "web-1")
    services.attach_volume(project=tenant_a.project, volume=plain, instance=vm)

    page = member_a.get("/volumes/").content.decode()
    assert theirs.pk not in page and "theirs" not in page
    data = row(page, plain)
    assert f'id="volume-status-{plain.pk}"' in data and 'data-status="attaching"' in data
    assert f'href="/instances/{vm.pk}/"' in data and "web-1" in data and "/dev/vdb" in data
    assert "2 GiB" in data and "ceph" in data
    root = row(page, booty)
    assert 'data-status="available"' in root and "✔" in root  # bootable
    # Actions follow the status: an attaching volume cannot be attached, extended or deleted.
    assert 'data-action="attach"' not in data and 'data-action="delete"' not in data
    assert 'data-action="attach"' in root and 'data-action="extend"' in root and 'data-action="delete"' in root
    # The nav has the panels, with Volumes active.
    assert re.search(r'class="nav-link active"[^>]*href="/volumes/"|href="/volumes/"[^>]*active', page)
    assert 'href="/volume-snapshots/"' in page


def test_create_an_empty_volume(tenant_a, member_a, run):
    response = run(member_a.post, "/volumes/create/", {
        "name": "scratch", "description": "tmp", "source_type": "empty", "size": "3"})
    assert response.status_code == 302 and response["Location"] == "/volumes/"
    volume = Volume.objects.get(project=tenant_a.project, name="scratch")
    assert (volume.size, volume.status, volume.description, volume.bootable) == (3, "available", "tmp", False)
    assert any("is being created" in m for m in messages_of(response))


def test_the_create_form_shows_the_quota_cost(tenant_a, member_a, make_volume):
    make_volume(tenant_a, size=4)
    quotas.set_limit(tenant_a.project, "gigabytes", 10)
    page = member_a.get("/volumes/create/").content.decode()
    assert quota_bar(page, "volumes") == (1, 64, 2)
    assert quota_bar(page, "gigabytes") == (4, 10, 4)  # no size chosen yet
    # A bound form shows the cost of what was asked.
    page = member_a.post("/volumes/create/", {"source_type": "empty", "size": "999"}).content.decode()
    assert quota_bar(page, "gigabytes") == (4, 10, 1003)
    assert "Over the quota" in page


def test_over_quota_is_a_form_error_and_creates_nothing(tenant_a, member_a, make_volume):
    make_volume(tenant_a, size=4)
    quotas.set_limit(tenant_a.project, "gigabytes", 10)
    response = member_a.post("/volumes/create/", {"name": "big", "source_type": "empty", "size": "7"})
    assert response.status_code == 200
    assert "Quota exceeded for gigabytes" in form_errors(response.content.decode())
    quotas.set_limit(tenant_a.project, "volumes", 1)
    response = member_a.post("/volumes/create/", {"name": "big", "source_type": "empty", "size": "1"})
    assert "Quota exceeded for volumes" in form_errors(response.content.decode())
    assert not Volume.objects.filter(name="big").exists()


@pytest.mark.parametrize("data, field, error", [
    ({"source_type": "empty"}, "size", "An empty volume needs a size."),
    ({"source_type": "empty", "size": "0"}, "size", "greater than or equal to 1"),
    ({"source_type": "empty", "size": "x"}, "size", "Enter a whole number."),
    ({"source_type": "snapshot", "size": "1"}, "snapshot", "Choose the volume&#x27;s source."),
    ({"source_type": "image"}, "image", "Choose the volume&#x27;s source."),
    ({"source_type": "volume", "source_volume": "nope"}, "source_volume", "Select a valid choice"),
])
def test_bad_create_input_is_a_form_error(tenant_a, member_a, data, field, error):
    response = member_a.post("/volumes/create/", {"name": "bad", **data})
    assert response.status_code == 200
    assert error in field_errors(response.content.decode(), field)
    assert not Volume.objects.filter(name="bad").exists()


def test_create_from_an_image_too_small_is_an_error_on_the_size(tenant_a, member_a, run):
    image = Image.objects.create(name="big-image", status="active", visibility="public", disk_format="qcow2",
                                 container_format="bare", min_disk=5, size=1 << 20)
    response = member_a.post("/volumes/create/", {"name": "vol", "source_type": "image", "image": image.pk,
                                                  "size": "2"})
    assert "is larger than volume size 2 GB" in field_errors(response.content.decode(), "size")
    # The image's option tells volumes.js the size it needs; no size given takes it.
    assert re.search(rf'<option value="{image.pk}"[^>]* data-size="5"', response.content.decode())


def test_create_from_an_image_a_snapshot_and_a_volume(tenant_a, member_a, make_volume, image, run):
    response = run(member_a.post, "/volumes/create/", {"name": "from-image", "source_type": "image",
                                                       "image": image.pk})
    assert response.status_code == 302
    from_image = Volume.objects.get(name="from-image")
    assert from_image.bootable and from_image.image_id == image.pk and from_image.status == "available"

    snapshot = run(services.create_snapshot, from_image, user=tenant_a.member, name="snap")
    # The snapshot row's "Create volume" preselects the snapshot.
    page = member_a.get(f"/volumes/create/?source_type=snapshot&snapshot={snapshot.pk}").content.decode()
    assert re.search(r'<option value="snapshot" selected>', page)
    assert re.search(rf'<option value="{snapshot.pk}" selected data-size="\d+">', page)
    run(member_a.post, "/volumes/create/", {"name": "from-snap", "source_type": "snapshot",
                                            "snapshot": snapshot.pk, "size": ""})
    clone = Volume.objects.get(name="from-snap")
    assert clone.depends_on_id == snapshot.pk and clone.size == from_image.size

    run(member_a.post, "/volumes/create/", {"name": "copy", "source_type": "volume",
                                            "source_volume": from_image.pk, "size": "5"})
    copy = Volume.objects.get(name="copy")
    assert (copy.source_volid, copy.size, copy.status) == (from_image.pk, 5, "available")


def test_another_projects_sources_are_not_offered_nor_accepted(tenant_a, tenant_b, member_a, make_volume, run):
    theirs = make_volume(tenant_b, name="theirs")
    snapshot = run(services.create_snapshot, theirs, user=tenant_b.member, name="their-snap")
    page = member_a.get("/volumes/create/").content.decode()
    assert theirs.pk not in page and snapshot.pk not in page
    response = member_a.post("/volumes/create/", {"name": "steal", "source_type": "snapshot",
                                                  "snapshot": snapshot.pk})
    assert "Select a valid choice" in field_errors(response.content.decode(), "snapshot")
    assert not Volume.objects.filter(name="steal").exists()


# --- Volumes: extend, attach, detach, snapshot, upload, delete ----------------------------

def test_extend_a_volume_and_a_smaller_size_is_a_form_error(tenant_a, member_a, make_volume, run):
    volume = make_volume(tenant_a, size=2)
    page = member_a.get(f"/volumes/{volume.pk}/extend/").content.decode()
    assert 'value="3"' in page and quota_bar(page, "gigabytes") == (2, 100, 3)
    response = member_a.post(f"/volumes/{volume.pk}/extend/", {"new_size": "2"})
    assert "New size for extend must be greater than current size" in field_errors(
        response.content.decode(), "new_size")
    response = run(member_a.post, f"/volumes/{volume.pk}/extend/", {"new_size": "6"})
    assert response.status_code == 302
    volume.refresh_from_db()
    assert (volume.size, volume.status) == (6, "available")


def test_extend_over_quota_is_a_form_error(tenant_a, member_a, make_volume):
    volume = make_volume(tenant_a, size=2)
    quotas.set_limit(tenant_a.project, "gigabytes", 5)
    response = member_a.post(f"/volumes/{volume.pk}/extend/", {"new_size": "6"})
    assert "Quota exceeded for gigabytes" in form_errors(response.content.decode())
    volume.refresh_from_db()
    assert volume.size == 2


def test_attach_to_an_instance_of_the_project_then_detach(tenant_a, tenant_b, member_a, make_volume, host):
    volume = make_volume(tenant_a, name="data")
    mine = make_instance(tenant_a, host, "mine")
    theirs = make_instance(tenant_b, host, "theirs")
    page = member_a.get(f"/volumes/{volume.pk}/attach/").content.decode()
    assert mine.pk in page and theirs.pk not in page
    # Another project's instance is not a choice.
    response = member_a.post(f"/volumes/{volume.pk}/attach/", {"instance": theirs.pk})
    assert "Select a valid choice" in field_errors(response.content.decode(), "instance")
    # A bad device name is the service's refusal, on the field.
    response = member_a.post(f"/volumes/{volume.pk}/attach/", {"instance": mine.pk, "device": "/dev/sda"})
    assert "Invalid device name" in field_errors(response.content.decode(), "device")

    response = member_a.post(f"/volumes/{volume.pk}/attach/", {"instance": mine.pk})
    assert response.status_code == 302 and response["Location"] == "/volumes/"
    volume.refresh_from_db()
    attachment = VolumeAttachment.objects.get(volume=volume)
    assert volume.status == VolumeStatus.ATTACHING and (attachment.instance, attachment.device) == (mine, "/dev/vdb")
    # Attaching again is refused by the service, as a form error (not a 500).
    response = member_a.post(f"/volumes/{volume.pk}/attach/", {"instance": mine.pk})
    assert response.status_code == 200 and "status must be" in form_errors(response.content.decode())

    services.finish_attachment(attachment)  # what the host's task does
    detail = member_a.get(f"/instances/{mine.pk}/").content.decode()
    section = re.search(r'id="instance-volumes".*?</table>', detail, re.S).group(0)
    assert "data" in section and "/dev/vdb" in section and 'data-status="in-use"' in section

    confirm = member_a.get(f"/volumes/{volume.pk}/detach/")
    assert confirm.status_code == 200 and "mine" in confirm.content.decode()
    response = member_a.post(f"/volumes/{volume.pk}/detach/")
    assert response.status_code == 302
    volume.refresh_from_db()
    assert volume.status == VolumeStatus.DETACHING


def test_attach_to_a_busy_instance_is_a_form_error(tenant_a, member_a, make_volume, host):
    volume = make_volume(tenant_a)
    building = make_instance(tenant_a, host, "building", vm_state="building")
    response = member_a.post(f"/volumes/{volume.pk}/attach/", {"instance": building.pk})
    assert response.status_code == 200 and "Cannot &#x27;attach_volume&#x27;" in form_errors(
        response.content.decode())
    volume.refresh_from_db()
    assert volume.status == VolumeStatus.AVAILABLE


def test_an_attached_volume_is_not_deleted(tenant_a, member_a, make_volume, host):
    volume = make_volume(tenant_a)
    services.attach_volume(project=tenant_a.project, volume=volume, instance=make_instance(tenant_a, host))
    # No delete action is offered, and a POST anyway is refused with the service's message.
    assert 'data-action="delete"' not in row(member_a.get("/volumes/").content.decode(), volume)
    response = member_a.post(f"/volumes/{volume.pk}/delete/", follow=True)
    assert any("is attached to an instance" in m for m in messages_of(response))
    assert Volume.objects.filter(pk=volume.pk).exists()


def test_delete_a_volume_after_confirming(tenant_a, member_a, make_volume, run):
    volume = make_volume(tenant_a, name="old")
    confirm = member_a.get(f"/volumes/{volume.pk}/delete/")
    assert confirm.status_code == 200 and "Delete the volume old?" in confirm.content.decode()
    response = run(member_a.post, f"/volumes/{volume.pk}/delete/")
    assert response.status_code == 302 and not Volume.objects.filter(pk=volume.pk).exists()


def test_a_volume_with_snapshots_is_not_deleted(tenant_a, member_a, make_volume, run):
    volume = make_volume(tenant_a)
    run(services.create_snapshot, volume, user=tenant_a.member)
    response = member_a.post(f"/volumes/{volume.pk}/delete/", follow=True)
    assert any("dependent snapshots" in m for m in messages_of(response))
    assert Volume.objects.get(pk=volume.pk).status == VolumeStatus.AVAILABLE


def test_snapshot_a_volume_also_in_use(tenant_a, member_a, make_volume, host, run):
    volume = make_volume(tenant_a, size=2, name="db")
    page = member_a.get(f"/volumes/{volume.pk}/snapshot/").content.decode()
    assert 'value="db-snapshot"' in page
    assert quota_bar(page, "snapshots") == (0, 64, 1) and quota_bar(page, "gigabytes") == (2, 100, 4)
    response = run(member_a.post, f"/volumes/{volume.pk}/snapshot/", {"name": "before", "description": ""})
    assert response.status_code == 302
    assert VolumeSnapshot.objects.get(volume=volume, name="before").status == SnapshotStatus.AVAILABLE
    # In use: forced, with a warning on the form.
    attachment = services.attach_volume(project=tenant_a.project, volume=volume,
                                        instance=make_instance(tenant_a, host))
    services.finish_attachment(attachment)
    page = member_a.get(f"/volumes/{volume.pk}/snapshot/").content.decode()
    assert 'id="snapshot-in-use"' in page
    run(member_a.post, f"/volumes/{volume.pk}/snapshot/", {"name": "live", "description": ""})
    assert VolumeSnapshot.objects.get(volume=volume, name="live").status == SnapshotStatus.AVAILABLE


def test_snapshot_over_quota_is_a_form_error(tenant_a, member_a, make_volume):
    volume = make_volume(tenant_a)
    quotas.set_limit(tenant_a.project, "snapshots", 0)
    response = member_a.post(f"/volumes/{volume.pk}/snapshot/", {"name": "nope"})
    assert "Quota exceeded for snapshots" in form_errors(response.content.decode())
    assert not VolumeSnapshot.objects.exists()


def test_upload_a_volume_to_an_image(tenant_a, member_a, make_volume, run):
    volume = make_volume(tenant_a, name="golden")
    page = member_a.get(f"/volumes/{volume.pk}/upload/").content.decode()
    assert 'value="golden-image"' in page
    response = run(member_a.post, f"/volumes/{volume.pk}/upload/", {"image_name": "golden-image",
                                                                    "disk_format": "qcow2"})
    assert response.status_code == 302
    image = Image.objects.get(name="golden-image")
    assert image.owner_id == tenant_a.project.pk and image.status == "active" and image.disk_format == "qcow2"
    assert Volume.objects.get(pk=volume.pk).status == VolumeStatus.AVAILABLE
    response = member_a.post(f"/volumes/{volume.pk}/upload/", {"image_name": "x", "disk_format": "vmdk"})
    assert "Select a valid choice" in field_errors(response.content.decode(), "disk_format")


def test_volume_detail(tenant_a, member_a, make_volume, run):
    volume = make_volume(tenant_a, size=3, name="detailed", metadata={"tier": "gold"})
    run(services.create_snapshot, volume, user=tenant_a.member, name="s1")
    page = member_a.get(f"/volumes/{volume.pk}/").content.decode()
    assert f'id="volume-status-{volume.pk}"' in page and "3 GiB" in page and "tier = gold" in page
    assert re.search(r'id="volume-snapshot-table".*s1', page, re.S)
    assert f'id="volume-actions-{volume.pk}"' in page


# --- Live updates: statuses and actions --------------------------------------------------

def test_statuses_answer_fresh_partials_and_deleted_for_unknown_ids(tenant_a, tenant_b, member_a, make_volume,
                                                                    run):
    mine = make_volume(tenant_a)
    theirs = make_volume(tenant_b)
    snapshot = run(services.create_snapshot, mine, user=tenant_a.member)
    page = member_a.get(f"/volumes/statuses/?volume={mine.pk}&volume={theirs.pk}&snapshot={snapshot.pk}"
                        ).content.decode()
    assert re.search(rf'id="volume-status-{mine.pk}"[^>]*data-status="available"', page)
    # Another project's id is indistinguishable from a deleted one.
    assert re.search(rf'id="volume-status-{theirs.pk}"[^>]*data-status="deleted"', page)
    assert re.search(rf'id="snapshot-status-{snapshot.pk}"[^>]*data-status="available"', page)


def test_the_actions_partial_carries_the_attachment_out_of_band(tenant_a, member_a, make_volume, host):
    volume = make_volume(tenant_a)
    vm = make_instance(tenant_a, host, "vm-x")
    services.attach_volume(project=tenant_a.project, volume=volume, instance=vm)
    page = member_a.get(f"/volumes/{volume.pk}/actions/").content.decode()
    assert f'id="volume-actions-{volume.pk}"' in page
    assert re.search(rf'id="volume-attachment-{volume.pk}"[^>]*hx-swap-oob="true"', page) and "vm-x" in page


def test_the_status_partial_pushed_matches_the_table_cell(tenant_a, member_a, make_volume):
    from storage.events import volume_event

    volume = make_volume(tenant_a)
    event = volume_event(volume)
    page = member_a.get("/volumes/").content.decode()
    assert event["html"].strip() in page


# --- Volume snapshots -------------------------------------------------------------------

def test_snapshots_table_and_delete_refused_while_volumes_depend_on_it(tenant_a, member_a, make_volume, run):
    volume = make_volume(tenant_a, name="src")
    snapshot = run(services.create_snapshot, volume, user=tenant_a.member, name="snap-1")
    child = make_volume(tenant_a, snapshot=snapshot, name="child")
    page = member_a.get("/volume-snapshots/").content.decode()
    snap_row = re.search(rf'<tr data-snapshot-id="{snapshot.pk}".*?</tr>', page, re.S).group(0)
    assert "snap-1" in snap_row and f'id="snapshot-status-{snapshot.pk}"' in snap_row and "src" in snap_row
    assert f"/volumes/create/?source_type=snapshot&amp;snapshot={snapshot.pk}" in snap_row
    assert re.search(r'<td class="text-end">1</td>', snap_row)  # one volume depends on it

    response = member_a.post(f"/volume-snapshots/{snapshot.pk}/delete/", follow=True)
    assert any("has dependent volumes" in m for m in messages_of(response))
    assert VolumeSnapshot.objects.get(pk=snapshot.pk).status == SnapshotStatus.AVAILABLE

    run(services.delete_volume, child)
    confirm = member_a.get(f"/volume-snapshots/{snapshot.pk}/delete/")
    assert confirm.status_code == 200 and "snap-1" in confirm.content.decode()
    response = run(member_a.post, f"/volume-snapshots/{snapshot.pk}/delete/")
    assert response.status_code == 302 and not VolumeSnapshot.objects.filter(pk=snapshot.pk).exists()


# --- Scoping, roles, escaping ------------------------------------------------------------

VOLUME_PAGES = ("", "actions/", "extend/", "attach/", "detach/", "snapshot/", "upload/", "delete/")


def test_another_projects_volume_and_snapshot_are_404(tenant_b, member_a, make_volume, run):
    volume = make_volume(tenant_b)
    snapshot = run(services.create_snapshot, volume, user=tenant_b.member)
    for page in VOLUME_PAGES:
        assert member_a.get(f"/volumes/{volume.pk}/{page}").status_code == 404, page
        if page not in ("", "actions/"):
            assert member_a.post(f"/volumes/{volume.pk}/{page}", {"new_size": "9"}).status_code == 404, page
    assert member_a.get(f"/volume-snapshots/{snapshot.pk}/actions/").status_code == 404
    assert member_a.post(f"/volume-snapshots/{snapshot.pk}/delete/").status_code == 404
    volume.refresh_from_db()
    assert volume.size == 1 and VolumeSnapshot.objects.filter(pk=snapshot.pk).exists()


def test_readers_see_but_cannot_change(tenant_a, reader_a, make_volume, run):
    volume = make_volume(tenant_a, name="ro")
    snapshot = run(services.create_snapshot, volume, user=tenant_a.member)
    page = reader_a.get("/volumes/").content.decode()
    assert "ro" in row(page, volume) and "volume-create-button" not in page and "data-action=" not in page
    assert "data-action=" not in reader_a.get("/volume-snapshots/").content.decode()
    for path in ("/volumes/create/", *(f"/volumes/{volume.pk}/{p}" for p in VOLUME_PAGES[2:]),
                 f"/volume-snapshots/{snapshot.pk}/delete/"):
        assert reader_a.get(path).status_code == 403, path
        assert reader_a.post(path, {"name": "x", "size": "1", "source_type": "empty"}).status_code == 403, path
    assert Volume.objects.count() == 1 and VolumeSnapshot.objects.count() == 1


def test_anonymous_users_are_sent_to_log_in(client):
    response = client.get("/volumes/")
    assert response.status_code == 302 and "/auth/login/" in response["Location"]


def test_user_strings_are_escaped(tenant_a, member_a, make_volume, run):
    volume = make_volume(tenant_a, name="<script>alert(1)</script>", description="<b>bold</b>")
    run(services.create_snapshot, volume, user=tenant_a.member, name="<img src=x>")
    for path in ("/volumes/", f"/volumes/{volume.pk}/", "/volume-snapshots/", f"/volumes/{volume.pk}/delete/"):
        page = member_a.get(path).content.decode()
        assert "<script>alert" not in page and "<img src=x>" not in page and "<b>bold" not in page, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in member_a.get("/volumes/").content.decode()


def test_forms_carry_csrf_tokens(tenant_a, make_volume):
    from django.test import Client

    volume = make_volume(tenant_a)
    client = Client(enforce_csrf_checks=True)
    client.force_login(tenant_a.member)
    for path in ("/volumes/create/", f"/volumes/{volume.pk}/extend/", f"/volumes/{volume.pk}/delete/"):
        assert 'name="csrfmiddlewaretoken"' in client.get(path).content.decode(), path
        assert client.post(path, {"new_size": "5"}).status_code == 403, path
    volume.refresh_from_db()
    assert volume.status == VolumeStatus.AVAILABLE and volume.size == 1


# --- Admin: Storage ----------------------------------------------------------------------

def test_operators_see_capacity_per_backend(operator, tenant_a, make_volume, member_a):
    make_volume(tenant_a, size=3)
    client = signed_in(operator)
    page = client.get("/operator/storage/").content.decode()
    backend = re.search(r'<tr data-backend="default">.*?</tr>', page, re.S).group(0)
    assert "file" in backend and "ceph" in backend and "3 GiB" in backend
    total = int(re.search(r'data-total="(\d+)"', backend).group(1))
    free = int(re.search(r'data-free="(\d+)"', backend).group(1))
    assert total > 0 and 0 <= free <= total
    assert 'href="/operator/storage/"' in page
    assert member_a.get("/operator/storage/").status_code == 403


def test_a_failing_capacity_report_is_shown_not_raised(operator, monkeypatch, file_storage):
    from storage.drivers.base import StorageError

    def broken():
        raise StorageError("the cluster is unreachable")

    monkeypatch.setattr(file_storage, "capacity", broken)
    page = signed_in(operator).get("/operator/storage/").content.decode()
    assert "the cluster is unreachable" in page


# --- Launch Instance: boot from a volume --------------------------------------------------

def launch_data(**extra):
    return {"name": "web", "count": "1", "flavor": "50", "key_name": "", "availability_zone": "",
            "user_data": "", **extra}


def test_the_launch_form_offers_the_boot_sources(tenant_a, tenant_b, member_a, flavors, make_volume, image):
    mine = make_volume(tenant_a, name="bootable-root", image=image)
    theirs = make_volume(tenant_b, name="their-root", image=image)
    page = member_a.get("/instances/launch/").content.decode()
    assert '<option value="image" selected>Image</option>' in page
    assert 'value="volume_from_image"' in page and 'value="volume"' in page
    assert mine.pk in page and theirs.pk not in page


def test_launch_on_a_new_volume_made_from_the_image(tenant_a, member_a, flavors, image):
    response = member_a.post("/instances/launch/", launch_data(
        boot_source="volume_from_image", image=image.pk, volume_size="3", delete_on_termination="on"))
    assert response.status_code == 302, response.content.decode()
    instance = Instance.objects.get(project=tenant_a.project, name="web")
    attachment = VolumeAttachment.objects.select_related("volume").get(instance=instance)
    assert instance.image_ref == "" and attachment.device == "/dev/vda" and attachment.delete_on_termination
    assert (attachment.volume.size, attachment.volume.image_id) == (3, image.pk)


def test_launch_from_an_existing_volume(tenant_a, member_a, flavors, make_volume, image):
    root = make_volume(tenant_a, name="root", image=image)
    response = member_a.post("/instances/launch/", launch_data(boot_source="volume", boot_volume=root.pk))
    assert response.status_code == 302, response.content.decode()
    attachment = VolumeAttachment.objects.get(volume=root)
    assert attachment.device == "/dev/vda" and not attachment.delete_on_termination
    assert attachment.instance.name == "web" and attachment.instance.image_ref == ""


def test_launch_boot_source_errors_are_form_errors(tenant_a, tenant_b, member_a, flavors, make_volume, image):
    response = member_a.post("/instances/launch/", launch_data(boot_source="volume"))
    assert "Choose the volume to boot from." in field_errors(response.content.decode(), "boot_volume")
    theirs = make_volume(tenant_b, image=image)
    response = member_a.post("/instances/launch/", launch_data(boot_source="volume", boot_volume=theirs.pk))
    assert "Select a valid choice" in field_errors(response.content.decode(), "boot_volume")
    # One existing volume cannot be the root disk of two instances: the service's refusal.
    root = make_volume(tenant_a, image=image)
    response = member_a.post("/instances/launch/", launch_data(boot_source="volume", boot_volume=root.pk,
                                                               count="2"))
    assert response.status_code == 200
    assert "cannot be attached to more than one instance" in form_errors(response.content.decode())
    # Over the gigabytes quota with the new volume: a form error, and no instance.
    quotas.set_limit(tenant_a.project, "gigabytes", 2)
    response = member_a.post("/instances/launch/", launch_data(boot_source="volume_from_image", image=image.pk,
                                                               volume_size="5"))
    assert "Quota exceeded for gigabytes" in form_errors(response.content.decode())
    assert not Instance.objects.filter(project=tenant_a.project).exists()


def test_the_lists_cost_the_same_queries_for_few_rows_and_many(tenant_a, member_a, make_volume, host, run):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def cost():
        counts = []
        for path in ("/volumes/", "/volume-snapshots/"):
            with CaptureQueriesContext(connection) as queries:
                assert member_a.get(path).status_code == 200
            counts.append(len(queries))
        return counts

    def add(n):
        for i in range(n):
            volume = make_volume(tenant_a, name=f"v{i}")
            run(services.create_snapshot, volume, user=tenant_a.member)
            services.attach_volume(project=tenant_a.project, volume=volume,
                                   instance=make_instance(tenant_a, host, f"vm{Instance.objects.count()}"))

    add(2)
    cost()  # the first request of a session costs a few queries of its own
    few = cost()
    add(6)
    assert cost() == few

"""Volumes on servers through the Nova API: os-volume_attachments (attach
and detach, running and stopped), the server body's volumes_attached, boot
from volume (block_device_mapping_v2 from an image, a volume or a
snapshot), delete_on_termination, and the refusals.

Tasks run eagerly in the test process (tests/conftest.py ``eager_tasks``)
on libvirt's test driver and the real file storage driver in a throwaway
STORAGE_ROOT (the ``image`` fixture stores its image there), so each
request's on-commit work is done before the next assertion. Real guests
seeing the disks come and go: tests/conformance/test_openstack_cli_volume_servers.py.
"""

import pytest

from compute.drivers import get_driver
from compute.drivers.base import DriverError
from compute.models import Image, Instance, InstanceAction
from storage.drivers import get_storage
from storage.models import Volume, VolumeAttachment

pytestmark = pytest.mark.django_db

SERVERS = "/compute/v2.1/servers"


@pytest.fixture(autouse=True)
def file_storage(eager_tasks, image, settings):
    """The file driver, in the folder the ``image`` fixture stored its image in."""
    settings.STORAGE_BACKEND = "file"
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


def boot(run, tenant, image=None, name="vm", expect=202, **extra):
    body = {"server": {"name": name, "flavorRef": "50", **({"imageRef": image.pk} if image else {}), **extra}}
    response = run(tenant.api.post, SERVERS, body, format="json")
    assert response.status_code == expect, response.content
    return response.json()["server"]["id"] if expect == 202 else response.json()


def server(tenant, server_id):
    response = tenant.api.get(f"{SERVERS}/{server_id}")
    assert response.status_code == 200, response.content
    return response.json()["server"]


def new_volume(run, tenant, size=1, **fields):
    response = run(tenant.api.post, f"/volume/v3/{tenant.project.pk}/volumes", {"volume": {"size": size, **fields}},
                   format="json")
    assert response.status_code == 202, response.content
    volume = Volume.objects.get(pk=response.json()["volume"]["id"])
    assert volume.status == "available", volume.status_reason
    return volume


def attach(run, tenant, server_id, volume_id, expect=200, **extra):
    response = run(tenant.api.post, f"{SERVERS}/{server_id}/os-volume_attachments",
                   {"volumeAttachment": {"volumeId": volume_id, **extra}}, format="json")
    assert response.status_code == expect, response.content
    return response.json()


def detach(run, tenant, server_id, volume_id, expect=202):
    response = run(tenant.api.delete, f"{SERVERS}/{server_id}/os-volume_attachments/{volume_id}")
    assert response.status_code == expect, response.content
    return response


def action(run, tenant, server_id, body, expect=202):
    response = run(tenant.api.post, f"{SERVERS}/{server_id}/action", body, format="json")
    assert response.status_code == expect, response.content
    return response


def targets(server_id):
    """{target: source} of the guest's disks, as libvirt holds its definition."""
    description = get_driver().definition(server_id)
    return {t: description.disk_source(t) for t in description.disk_targets}


def status(volume):
    volume.refresh_from_db()
    return volume.status


def test_attach_and_detach_on_a_running_server(run, tenant_a, flavors, host, image, file_storage):
    server_id = boot(run, tenant_a, image)
    volume = new_volume(run, tenant_a, name="data")

    body = attach(run, tenant_a, server_id, volume.pk)
    assert body == {"volumeAttachment": {"id": volume.pk, "serverId": server_id, "volumeId": volume.pk,
                                         "device": "/dev/vdb"}}
    assert status(volume) == "in-use"
    assert targets(server_id)["vdb"] == file_storage.volume_disk(volume.pk, "vdb").path
    assert server(tenant_a, server_id)["os-extended-volumes:volumes_attached"] == [{"id": volume.pk}]
    detail = tenant_a.api.get(f"{SERVERS}/detail").json()["servers"]
    assert detail[0]["os-extended-volumes:volumes_attached"] == [{"id": volume.pk}]
    listed = tenant_a.api.get(f"{SERVERS}/{server_id}/os-volume_attachments").json()["volumeAttachments"]
    assert listed == [body["volumeAttachment"]]
    shown = tenant_a.api.get(f"{SERVERS}/{server_id}/os-volume_attachments/{volume.pk}")
    assert shown.json() == body
    cinder = tenant_a.api.get(f"/volume/v3/{tenant_a.project.pk}/volumes/{volume.pk}").json()["volume"]
    assert cinder["status"] == "in-use"
    assert [(a["server_id"], a["device"]) for a in cinder["attachments"]] == [(server_id, "/dev/vdb")]

    # A second volume takes the next device; an explicit one is honoured.
    other = new_volume(run, tenant_a)
    assert attach(run, tenant_a, server_id, other.pk, device="/dev/vdd")["volumeAttachment"]["device"] == "/dev/vdd"

    detach(run, tenant_a, server_id, volume.pk)
    assert status(volume) == "available"
    assert "vdb" not in targets(server_id) and "vdd" in targets(server_id)
    assert server(tenant_a, server_id)["os-extended-volumes:volumes_attached"] == [{"id": other.pk}]
    missing = tenant_a.api.get(f"{SERVERS}/{server_id}/os-volume_attachments/{volume.pk}")
    assert missing.status_code == 404
    done = InstanceAction.objects.filter(instance_id=server_id).order_by("start_time", "id")
    assert [(a.action, a.result) for a in done] == [("create", "Success"), ("attach_volume", "Success"),
                                                    ("attach_volume", "Success"), ("detach_volume", "Success")]


def test_attach_to_a_stopped_server_reaches_its_definition(run, tenant_a, flavors, host, image):
    server_id = boot(run, tenant_a, image)
    action(run, tenant_a, server_id, {"os-stop": None})
    assert server(tenant_a, server_id)["status"] == "SHUTOFF"
    volume = new_volume(run, tenant_a)
    attach(run, tenant_a, server_id, volume.pk)
    assert status(volume) == "in-use" and "vdb" in targets(server_id)
    action(run, tenant_a, server_id, {"os-start": None})
    assert server(tenant_a, server_id)["status"] == "ACTIVE" and "vdb" in targets(server_id)
    detach(run, tenant_a, server_id, volume.pk)
    assert status(volume) == "available" and "vdb" not in targets(server_id)


def test_refusals(run, tenant_a, tenant_b, flavors, host, image):
    server_id = boot(run, tenant_a, image)
    second = boot(run, tenant_a, image, name="vm2")
    theirs = boot(run, tenant_b, image, name="theirs")
    volume = new_volume(run, tenant_a)
    their_volume = new_volume(run, tenant_b)

    # What another project owns is not there (404), whichever side it is.
    refused = attach(run, tenant_b, theirs, volume.pk, expect=404)
    assert "could not be found" in refused["itemNotFound"]["message"]
    attach(run, tenant_b, server_id, their_volume.pk, expect=404)
    attach(run, tenant_a, server_id, their_volume.pk, expect=404)
    assert status(volume) == "available" and status(their_volume) == "available"

    attach(run, tenant_a, server_id, volume.pk)
    # In use: no second attachment (Nova's "Invalid volume"), no delete (Cinder's 400).
    refused = attach(run, tenant_a, second, volume.pk, expect=400)
    assert "status must be 'available'" in refused["badRequest"]["message"]
    deleted = run(tenant_a.api.delete, f"/volume/v3/{tenant_a.project.pk}/volumes/{volume.pk}")
    assert deleted.status_code == 400 and "attached" in deleted.json()["badRequest"]["message"]
    # Detaching from the wrong server, or from another project, is 404.
    detach(run, tenant_a, second, volume.pk, expect=404)
    detach(run, tenant_b, server_id, volume.pk, expect=404)
    # Bad input.
    attach(run, tenant_a, second, new_volume(run, tenant_a).pk, device="/dev/sda", expect=400)
    response = run(tenant_a.api.post, f"{SERVERS}/{second}/os-volume_attachments",
                   {"volumeAttachment": {"volumeId": volume.pk, "bogus": 1}}, format="json")
    assert response.status_code == 400
    # A server in a state that cannot take a volume: 409.
    action(run, tenant_a, second, {"suspend": None})
    spare = new_volume(run, tenant_a)
    refused = attach(run, tenant_a, second, spare.pk, expect=409)
    assert "suspended" in refused["conflictingRequest"]["message"]
    assert status(spare) == "available"
    # A reader may look but not attach.
    response = run(tenant_a.reader_api.post, f"{SERVERS}/{server_id}/os-volume_attachments",
                   {"volumeAttachment": {"volumeId": spare.pk}}, format="json")
    assert response.status_code == 403


def test_failed_attach_leaves_the_volume_available_with_the_reason(run, tenant_a, flavors, host, image, monkeypatch):
    server_id = boot(run, tenant_a, image)
    volume = new_volume(run, tenant_a)

    def refuse(uuid, disk):
        raise DriverError("no PCI slot left")

    monkeypatch.setattr(get_driver(), "attach_disk", refuse)
    attach(run, tenant_a, server_id, volume.pk)  # accepted: the host answers later
    assert status(volume) == "available"
    assert "no PCI slot left" in volume.status_reason
    assert not VolumeAttachment.objects.filter(volume=volume).exists()
    assert server(tenant_a, server_id)["os-extended-volumes:volumes_attached"] == []
    failed = InstanceAction.objects.get(instance_id=server_id, action="attach_volume")
    assert failed.result == "Error" and "no PCI slot left" in failed.message


def test_failed_detach_keeps_the_volume_in_use(run, tenant_a, flavors, host, image, monkeypatch):
    server_id = boot(run, tenant_a, image)
    volume = new_volume(run, tenant_a)
    attach(run, tenant_a, server_id, volume.pk)

    def refuse(uuid, target):
        raise DriverError("the guest did not release vdb within 30 s")

    monkeypatch.setattr(get_driver(), "detach_disk", refuse)
    detach(run, tenant_a, server_id, volume.pk)
    assert status(volume) == "in-use" and "did not release" in volume.status_reason
    assert VolumeAttachment.objects.get(volume=volume).status == "attached"


def test_delete_detaches_first_and_keeps_the_volume(run, tenant_a, flavors, host, image, file_storage):
    server_id = boot(run, tenant_a, image)
    volume = new_volume(run, tenant_a)
    attach(run, tenant_a, server_id, volume.pk)
    assert run(tenant_a.api.delete, f"{SERVERS}/{server_id}").status_code == 204
    assert Instance.objects.get(pk=server_id).vm_state == "deleted"
    assert status(volume) == "available"
    assert not VolumeAttachment.objects.filter(volume=volume).exists()
    assert volume.pk in file_storage.list_volumes()


def bdm(source, uuid=None, **extra):
    return {"source_type": source, "destination_type": "volume", "boot_index": 0, **({"uuid": uuid} if uuid else {}),
            **extra}


def test_boot_from_a_new_volume_made_from_the_image(run, tenant_a, flavors, host, image, file_storage):
    # What `openstack server create --boot-from-volume 1 --image X` sends.
    server_id = boot(run, tenant_a, imageRef="", block_device_mapping_v2=[
        bdm("image", image.pk, volume_size=1, delete_on_termination=False)])
    body = server(tenant_a, server_id)
    assert body["status"] == "ACTIVE"
    assert body["image"] == ""  # Nova's volume-backed server
    (attached,) = body["os-extended-volumes:volumes_attached"]
    volume = Volume.objects.get(pk=attached["id"])
    assert (volume.status, volume.bootable, volume.image_id, volume.size) == ("in-use", True, image.pk, 1)
    assert volume.attachment.device == "/dev/vda"
    assert targets(server_id)["vda"] == file_storage.volume_disk(volume.pk, "vda").path
    assert file_storage.disk_path(server_id).exists() is False  # no image disk of its own
    assert Instance.objects.get(pk=server_id).root_gb == 0
    # The boot disk stays put.
    refused = detach(run, tenant_a, server_id, volume.pk, expect=400)
    assert "root device" in refused.json()["badRequest"]["message"]
    # Quotas: the volume counts as the project's.
    limits = tenant_a.api.get(f"/volume/v3/{tenant_a.project.pk}/limits").json()["limits"]["absolute"]
    assert (limits["totalVolumesUsed"], limits["totalGigabytesUsed"]) == (1, 1)

    # Not delete_on_termination: the volume outlives the server, available.
    assert run(tenant_a.api.delete, f"{SERVERS}/{server_id}").status_code == 204
    assert status(volume) == "available"
    assert volume.pk in file_storage.list_volumes()


def test_boot_from_an_existing_volume_deleted_on_termination(run, tenant_a, flavors, host, image, file_storage):
    volume = new_volume(run, tenant_a, imageRef=image.pk)
    data = new_volume(run, tenant_a)
    server_id = boot(run, tenant_a, block_device_mapping_v2=[
        bdm("volume", volume.pk, delete_on_termination=True),
        {"source_type": "volume", "destination_type": "volume", "uuid": data.pk, "boot_index": -1}])
    assert server(tenant_a, server_id)["status"] == "ACTIVE"
    assert (status(volume), volume.attachment.device) == ("in-use", "/dev/vda")
    assert (status(data), data.attachment.device) == ("in-use", "/dev/vdb")
    assert set(targets(server_id)) >= {"vda", "vdb"}
    assert {v["id"] for v in server(tenant_a, server_id)["os-extended-volumes:volumes_attached"]} == {
        volume.pk, data.pk}

    assert run(tenant_a.api.delete, f"{SERVERS}/{server_id}").status_code == 204
    assert not Volume.objects.filter(pk=volume.pk).exists()
    assert volume.pk not in file_storage.list_volumes()
    assert status(data) == "available"  # not marked: kept


def test_boot_from_a_volume_made_from_a_snapshot(run, tenant_a, flavors, host, image):
    source = new_volume(run, tenant_a, imageRef=image.pk)
    response = run(tenant_a.api.post, f"/volume/v3/{tenant_a.project.pk}/snapshots",
                   {"snapshot": {"volume_id": source.pk, "name": "golden"}}, format="json")
    assert response.status_code == 202, response.content
    snapshot_id = response.json()["snapshot"]["id"]
    server_id = boot(run, tenant_a, block_device_mapping_v2=[
        bdm("snapshot", snapshot_id, delete_on_termination=True)])
    assert server(tenant_a, server_id)["status"] == "ACTIVE"
    volume = Volume.objects.get(attachment__instance_id=server_id)
    assert (volume.snapshot_id, volume.size, volume.bootable, volume.status) == (snapshot_id, 1, True, "in-use")
    run(tenant_a.api.delete, f"{SERVERS}/{server_id}")
    assert not Volume.objects.filter(pk=volume.pk).exists()
    # The snapshot may go now that its clone did.
    deleted = run(tenant_a.api.delete, f"/volume/v3/{tenant_a.project.pk}/snapshots/{snapshot_id}")
    assert deleted.status_code == 202, deleted.content


def test_boot_from_volume_refusals(run, tenant_a, tenant_b, flavors, host, image):
    theirs = new_volume(run, tenant_b, imageRef=image.pk)
    refused = boot(run, tenant_a, expect=400, block_device_mapping_v2=[bdm("volume", theirs.pk)])
    assert "failed to get volume" in refused["badRequest"]["message"]
    mine = new_volume(run, tenant_a, imageRef=image.pk)
    server_id = boot(run, tenant_a, image)
    attach(run, tenant_a, server_id, mine.pk)
    refused = boot(run, tenant_a, expect=400, block_device_mapping_v2=[bdm("volume", mine.pk)])
    assert "status must be 'available'" in refused["badRequest"]["message"]
    refused = boot(run, tenant_a, expect=400, block_device_mapping_v2=[bdm("image", image.pk)])  # no size
    assert "volume_size" in refused["badRequest"]["message"]
    # Over the gigabytes quota: nothing is created.
    before = (Instance.objects.count(), Volume.objects.count())
    response = run(tenant_a.api.post, SERVERS, {"server": {"name": "huge", "flavorRef": "50",
                                                           "block_device_mapping_v2": [
                                                               bdm("image", image.pk, volume_size=5000)]}},
                   format="json")
    assert response.status_code in (403, 413), response.content
    assert (Instance.objects.count(), Volume.objects.count()) == before


def test_a_failed_build_releases_its_boot_volume(run, tenant_a, flavors, host, image, monkeypatch):
    def refuse(spec):
        raise DriverError("out of memory")

    monkeypatch.setattr(get_driver(), "spawn", refuse)
    volume = new_volume(run, tenant_a, imageRef=image.pk)
    server_id = boot(run, tenant_a, block_device_mapping_v2=[bdm("volume", volume.pk)])
    assert server(tenant_a, server_id)["status"] == "ERROR"
    assert status(volume) == "available" and "out of memory" in volume.status_reason
    assert not VolumeAttachment.objects.filter(volume=volume).exists()


def test_snapshot_of_a_volume_backed_server_is_an_image_of_its_volume(run, tenant_a, flavors, host, image):
    server_id = boot(run, tenant_a, block_device_mapping_v2=[bdm("image", image.pk, volume_size=1,
                                                                 delete_on_termination=True)])
    response = action(run, tenant_a, server_id, {"createImage": {"name": "from-volume"}})
    snapshot = Image.objects.get(pk=response["Location"].rsplit("/", 1)[-1])
    assert snapshot.status == "active" and snapshot.size > 0
    # And it boots a new, image-backed server.
    second = boot(run, tenant_a, snapshot, name="from-snapshot")
    assert server(tenant_a, second)["status"] == "ACTIVE"
    # Rebuilding a volume-backed server is refused.
    action(run, tenant_a, server_id, {"rebuild": {"imageRef": image.pk}}, expect=400)


def test_rbd_disks_with_cephx_need_their_libvirt_secret(libvirtd):
    """On the real libvirtd: the secret an RBD volume names is made from the
    key (idempotent), the disk XML carries it, a missing one is a clear
    DriverError before QEMU tries, and the secret can be removed again."""
    import base64
    import uuid

    from compute.drivers.base import DiskSpec
    from compute.drivers.libvirt import config
    from compute.drivers.libvirt.driver import LibvirtDriver

    secret_uuid = str(uuid.uuid4())
    key = base64.b64encode(b"0123456789abcdef").decode()
    disk = DiskSpec(target="vdb", source_type="rbd", name="volumes/volume-x", format="raw",
                    hosts=(("127.0.0.1", "6789"),), auth_username="dreamcompute", auth_secret_uuid=secret_uuid)
    xml = config.Disk.from_spec(disk).to_xml()
    assert f'<secret type="ceph" uuid="{secret_uuid}" />' in xml and 'username="dreamcompute"' in xml
    driver = LibvirtDriver("qemu:///system")
    try:
        with pytest.raises(DriverError, match="not defined on this host"):
            driver._check_secrets([disk])
        driver.ensure_ceph_secret(secret_uuid, "dreamcompute", key)
        driver.ensure_ceph_secret(secret_uuid, "dreamcompute", key)  # idempotent
        driver._check_secrets([disk])
        assert driver._host.secret_value(secret_uuid) == b"0123456789abcdef"
    finally:
        driver.delete_ceph_secret(secret_uuid)
        driver.delete_ceph_secret(secret_uuid)  # idempotent
        assert driver._host.secret_value(secret_uuid) is None
        driver.close()

"""storage.services and storage.tasks below the API, on the real file
backend: what happens when the driver refuses or fails (the database does
not know everything the store knows), the reconcile of stuck statuses, the
attachment interface compute builds on, and per-type quotas in the engine.
"""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from billing import quotas
from core.openstack.errors import BadRequest, NotFound, OverQuota
from storage import reconcile, services
from storage.models import Volume, VolumeAttachment, VolumeSnapshot
from storage.states import AttachStatus, SnapshotStatus, VolumeStatus

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def storage(eager_tasks, settings, tmp_path):
    from storage.drivers import get_storage

    settings.STORAGE_BACKEND = "file"
    settings.STORAGE_ROOT = str(tmp_path / "storage")
    get_storage.cache_clear()
    yield get_storage()
    get_storage.cache_clear()


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    def call(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return call


@pytest.fixture
def make_volume(run, tenant_a):
    def make(size=1, **kwargs):
        volume = run(services.create_volume, project=tenant_a.project, user=tenant_a.member, size=size, **kwargs)
        volume.refresh_from_db()
        return volume

    return make


@pytest.fixture
def make_snapshot(run, tenant_a):
    def make(volume, **kwargs):
        snapshot = run(services.create_snapshot, volume, user=tenant_a.member, **kwargs)
        snapshot.refresh_from_db()
        return snapshot

    return make


def make_instance(tenant, name="vm"):
    from compute.models import Instance

    return Instance.objects.create(project=tenant.project, user=tenant.member, name=name, hostname=name,
                                   flavor_ref="50", flavor_name="gp1.semisonic", vcpus=1, memory_mib=512, root_gb=80)


def test_driver_refusal_is_the_safety_net_for_snapshot_delete(run, make_volume, make_snapshot, storage):
    volume = make_volume()
    snapshot = make_snapshot(volume)
    child = make_volume(snapshot=snapshot)
    assert child.status == VolumeStatus.AVAILABLE and child.depends_on_id == snapshot.pk
    with pytest.raises(BadRequest, match="dependent volumes"):
        services.delete_snapshot(snapshot)
    # The database forgets the dependency; the store still refuses.
    Volume.objects.filter(pk=child.pk).update(depends_on=None)
    run(services.delete_snapshot, snapshot)
    snapshot.refresh_from_db()
    assert snapshot.status == SnapshotStatus.AVAILABLE
    assert "cannot be deleted yet" in snapshot.status_reason


def test_flatten_frees_the_snapshot(run, make_volume, make_snapshot):
    volume = make_volume()
    snapshot = make_snapshot(volume)
    child = make_volume(snapshot=snapshot, size=2)
    run(services.flatten_volume, child)
    child.refresh_from_db()
    assert child.depends_on_id is None
    run(services.delete_snapshot, snapshot)
    assert not VolumeSnapshot.objects.filter(pk=snapshot.pk).exists()
    assert Volume.objects.get(pk=child.pk).status == VolumeStatus.AVAILABLE


def test_volume_delete_refused_by_the_store_goes_back_to_available(run, make_volume, storage):
    volume = make_volume()
    storage.create_volume_snapshot(volume.pk, str(uuid.uuid4()))  # a snapshot the database does not know
    run(services.delete_volume, volume)
    volume.refresh_from_db()
    assert volume.status == VolumeStatus.AVAILABLE and "cannot be deleted yet" in volume.status_reason


def test_failed_create_is_error_with_the_reason_and_can_be_deleted(run, make_volume, image, storage):
    storage.delete_image(image.pk)  # the image's data is gone from the store
    volume = make_volume(image=image)
    assert volume.status == VolumeStatus.ERROR and "Creating the volume failed" in volume.status_reason
    run(services.delete_volume, volume)
    assert not Volume.objects.filter(pk=volume.pk).exists()


def test_failed_extend_is_error_extending_with_the_old_size(run, make_volume, storage, tenant_a):
    volume = make_volume(size=1)
    storage.delete_volume(volume.pk)  # gone from the store behind our back
    run(services.extend_volume, volume, 5)
    volume.refresh_from_db()
    assert volume.status == VolumeStatus.ERROR_EXTENDING and volume.size == 1
    assert quotas.usage_for(tenant_a.project, resources=["gigabytes"])["gigabytes"] == 1


def test_upload_failure_kills_the_image_and_frees_the_volume(run, make_volume, storage):
    from compute.models import Image

    volume = make_volume()
    storage.delete_volume(volume.pk)
    _, image = run(services.upload_to_image, volume, image_name="broken")
    volume.refresh_from_db()
    assert volume.status == VolumeStatus.AVAILABLE and "failed" in volume.status_reason
    assert Image.objects.get(pk=image.pk).status == "killed"


def test_reconcile_resolves_stuck_statuses(run, make_volume, make_snapshot, storage, settings):
    stuck = make_volume()
    deleting = make_volume()
    snapshot = make_snapshot(make_volume())
    old = timezone.now() - timedelta(seconds=settings.TASK_TIMEOUT + 5)
    Volume.objects.filter(pk=stuck.pk).update(status=VolumeStatus.CREATING, updated_at=old)
    Volume.objects.filter(pk=deleting.pk).update(status=VolumeStatus.DELETING, updated_at=old)
    VolumeSnapshot.objects.filter(pk=snapshot.pk).update(status=SnapshotStatus.CREATING, updated_at=old)
    report = run(reconcile.reconcile, storage)
    assert report["timed_out"] == [stuck.pk] and report["deletes_resumed"] == [deleting.pk]
    assert report["snapshots_timed_out"] == [snapshot.pk]
    stuck.refresh_from_db()
    assert stuck.status == VolumeStatus.ERROR and "Timed out" in stuck.status_reason
    assert not Volume.objects.filter(pk=deleting.pk).exists()
    assert VolumeSnapshot.objects.get(pk=snapshot.pk).status == SnapshotStatus.ERROR
    # A fresh transient status is left alone.
    Volume.objects.filter(pk=stuck.pk).update(status=VolumeStatus.EXTENDING)
    assert run(reconcile.reconcile, storage)["timed_out"] == []


def test_reconcile_reports_volumes_the_database_does_not_know(run, storage):
    stray = str(uuid.uuid4())
    storage.create_volume(stray, 1)
    assert run(reconcile.reconcile, storage)["unknown_volumes"] == [stray]
    storage.delete_volume(stray)


def test_attachment_interface(make_volume, tenant_a, tenant_b):
    instance = make_instance(tenant_a)
    first, second = make_volume(), make_volume()
    attachment = services.reserve_attachment(first, instance)
    assert attachment.device == "/dev/vdb" and attachment.status == AttachStatus.ATTACHING
    assert Volume.objects.get(pk=first.pk).status == VolumeStatus.ATTACHING
    with pytest.raises(BadRequest):
        services.reserve_attachment(first, make_instance(tenant_a, "other"))
    services.finish_attachment(attachment)
    assert Volume.objects.get(pk=first.pk).status == VolumeStatus.IN_USE
    assert services.reserve_attachment(second, instance).device == "/dev/vdc"
    assert services.volumes_attached([instance.pk]) == {instance.pk: [first.pk, second.pk]}
    services.abort_attachment(VolumeAttachment.objects.get(volume=second), "libvirt said no")
    second.refresh_from_db()
    assert second.status == VolumeStatus.AVAILABLE and second.status_reason == "libvirt said no"
    # Detach: begin, roll back, begin again, finish.
    services.begin_detach(attachment)
    assert Volume.objects.get(pk=first.pk).status == VolumeStatus.DETACHING
    services.abort_detach(attachment, "guest busy")
    assert Volume.objects.get(pk=first.pk).status == VolumeStatus.IN_USE
    services.begin_detach(attachment)
    services.finish_detach(attachment)
    assert Volume.objects.get(pk=first.pk).status == VolumeStatus.AVAILABLE
    assert not VolumeAttachment.objects.exists()
    # Another project's instance never gets the volume.
    with pytest.raises(NotFound):
        services.reserve_attachment(first, make_instance(tenant_b))
    with pytest.raises(BadRequest, match="device"):
        services.reserve_attachment(first, instance, device="/dev/sda")


def test_per_type_quotas_in_the_engine(make_volume, tenant_a):
    limits = quotas.limits_for(tenant_a.project)
    assert limits["volumes_ceph"] == limits["gigabytes_ceph"] == -1
    make_volume(size=2)
    used = quotas.usage_for(tenant_a.project, resources=["volumes_ceph", "gigabytes_ceph", "snapshots_ceph"])
    assert used == {"volumes_ceph": 1, "gigabytes_ceph": 2, "snapshots_ceph": 0}
    quotas.set_limit(tenant_a.project, "gigabytes_ceph", 5)
    with pytest.raises(OverQuota, match="gigabytes_ceph"):
        make_volume(size=4)
    make_volume(size=3)
    with pytest.raises(ValueError):
        quotas.set_limit(tenant_a.project, "bananas_ceph", 1)
    assert "volumes_ceph" in quotas.family_resources("volumes")


def test_cascade_delete_removes_snapshots_first(run, make_volume, make_snapshot):
    volume = make_volume()
    make_snapshot(volume)
    make_snapshot(volume)
    with pytest.raises(BadRequest, match="2 dependent snapshots"):
        services.delete_volume(volume)
    run(services.delete_volume, volume, cascade=True)
    assert not Volume.objects.exists() and not VolumeSnapshot.objects.exists()


def test_default_type_and_operator_types():
    ceph = services.default_volume_type()
    assert ceph.name == "ceph" and ceph.is_default
    gold = services.create_volume_type(name="gold", is_default=True)
    assert services.default_volume_type() == gold
    assert services.find_volume_type("ceph") == ceph
    assert services.find_volume_type(gold.pk) == gold
    secret = services.create_volume_type(name="secret", is_public=False)
    with pytest.raises(NotFound):
        services.find_volume_type("secret")
    assert services.find_volume_type("secret", staff=True) == secret

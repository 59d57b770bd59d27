"""Compute tasks: thin. Each takes ids, reloads the rows, calls one driver
(or the scheduler), records the outcome and publishes it. On any failure
the instance is left in a stable state (ERROR, or back where it was) with
a fault the user can read; nothing stays in a task state.
"""

import base64
import logging
import time
from pathlib import Path

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from storage.drivers import get_storage

from . import services
from .drivers import get_driver
from .drivers.base import DriverError, GuestSpec, NicSpec, PowerState
from .models import Host, Instance, InstanceAction
from .scheduler import NoValidHost, select_host
from .states import TaskState, VMState

logger = logging.getLogger(__name__)


def _finish(instance_id, action_id=None, error=None, **fields):
    """Write the final state in one UPDATE, close the action, publish."""
    fields.setdefault("task_state", None)
    Instance.objects.filter(pk=instance_id).update(updated_at=timezone.now(), **fields)
    if action_id:
        InstanceAction.objects.filter(pk=action_id).update(
            finish_time=timezone.now(), result="Error" if error else "Success", message=str(error or "")[:2000])
    instance = Instance.objects.select_related("host").get(pk=instance_id)
    if error:
        services.record_fault(instance, error)
    services.instance_changed(instance)
    return instance


def _action_id(instance_id, name):
    return InstanceAction.objects.filter(instance_id=instance_id, action=name).values_list("pk", flat=True).first()


@shared_task(soft_time_limit=60, ignore_result=True)
def schedule_instance(instance_id):
    """Pick a host (default queue) and hand the build to its queue."""
    create = _action_id(instance_id, "create")
    try:
        with transaction.atomic():
            instance = Instance.objects.select_for_update(of=("self",)).select_related("server_group").filter(
                pk=instance_id, vm_state=VMState.BUILDING, task_state=TaskState.SCHEDULING).first()
            if instance is None:
                return  # deleted meanwhile, or already scheduled
            host = select_host(instance)
            Instance.objects.filter(pk=instance_id).update(host=host, task_state=TaskState.SPAWNING, progress=10)
    except NoValidHost as exc:
        _finish(instance_id, create, error=exc, vm_state=VMState.ERROR)
        return
    services.instance_changed(Instance.objects.get(pk=instance_id))
    spawn_instance.apply_async(args=(instance_id,), queue=host.queue)


def instances_root(instance_id):
    path = Path(settings.INSTANCES_ROOT) / instance_id
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    return path


def _instance_ports(instance):
    from network.models import Port

    return Port.objects.filter(project=instance.project_id, device_owner=Port.COMPUTE, device_id=instance.pk)


def guest_nics(instance):
    """The instance's NICs from its ports, each on its network's bridge.  With
    a dataplane (NETWORK_DRIVER other than ``none``) the ports are bound to
    this host and they and their networks reconciled here first (its worker
    runs the network agent too), so the bridge exists and the filter is in
    place before the guest's tap appears."""
    if getattr(settings, "NETWORK_DRIVER", "none") == "none":
        return ()
    from network import agent
    from network.services import changed

    arriving = _instance_ports(instance).exclude(binding_host=settings.COMPUTE_HOST)
    joined = set(arriving.values_list("network_id", flat=True))
    arriving.update(binding_host=settings.COMPUTE_HOST)
    ports = list(_instance_ports(instance).select_related("network").order_by("created_at", "pk"))
    for network_id in dict.fromkeys(p.network_id for p in ports):
        agent.sync_network(network_id)
    nics = []
    for port in ports:
        agent.sync_port(port.pk)
        nics.append(NicSpec(mac=port.mac_address, bridge=agent.nic_bridge(port.network_id),
                            tap=agent.tap_name(port.pk), mtu=port.network.mtu))
    for network_id in sorted(joined):
        changed("network", network_id)  # the other hosts' bridges of it tunnel to this one now
    return tuple(nics)


def _plug_nics(instance):
    """After the guest (re)started: a new QEMU process has new taps, which
    the network agent puts on their bridges when libvirt could not (see
    ``network.agent.plug_ports``)."""
    if getattr(settings, "NETWORK_DRIVER", "none") == "none":
        return
    from network import agent

    agent.plug_ports(list(_instance_ports(instance).values_list("pk", flat=True)))


def _ports_up(instance):
    """The guest's NICs are plugged: its ports turn ACTIVE (Neutron's port
    status after the VIF is wired), each change pushed to the project."""
    from network.services import published

    if getattr(settings, "NETWORK_DRIVER", "none") == "none":
        return
    for port_id in _instance_ports(instance).exclude(status="ACTIVE").values_list("pk", flat=True):
        if _instance_ports(instance).filter(pk=port_id).update(status="ACTIVE"):
            published(instance.project_id, "port", port_id, "updated")


def guest_spec(instance, disks):
    """The driver's view of an instance, with one NIC per port of it when
    there is a dataplane (none with the embedded NETWORK_DRIVER=none)."""
    return GuestSpec(
        uuid=instance.pk, name=instance.domain_name, vcpus=instance.vcpus, memory_mib=instance.memory_mib,
        disks=tuple(disks), nics=guest_nics(instance),
        console_log=str(instances_root(instance.pk) / "console.log"),
        metadata={"name": instance.name, "project": instance.project_id, "flavor": instance.flavor_name},
    )


def build_disks(instance):
    """Root disk from the image (or the boot volume), the config drive, then
    the volumes attached to the instance."""
    from .drivers import configdrive

    volumes = volume_disks(instance)
    root = volumes.pop("vda", None) or get_storage().create_instance_disk(instance.pk, instance.image_ref,
                                                                         instance.root_gb)
    disks = [root]
    if instance.config_drive:
        user_data = base64.b64decode(instance.user_data) if instance.user_data else b""
        keys = {instance.key_name: instance.key_data} if instance.key_data else {}
        disks.append(configdrive.disk_spec(configdrive.build(
            instances_root(instance.pk), uuid=instance.pk, hostname=instance.hostname, name=instance.name,
            public_keys=keys, user_data=user_data, metadata=instance.metadata,
            availability_zone=instance.availability_zone or "nova", project_id=instance.project_id)))
    disks.extend(volumes.values())
    return disks


@shared_task(soft_time_limit=300, time_limit=360, ignore_result=True)
def spawn_instance(instance_id):
    """On the chosen host: make the disks, define and start the guest."""
    create = _action_id(instance_id, "create")
    instance = Instance.objects.filter(pk=instance_id, task_state=TaskState.SPAWNING).first()
    if instance is None:
        return
    driver, storage = get_driver(), get_storage()
    try:
        prepare_boot_volumes(instance)
        Instance.objects.filter(pk=instance_id).update(progress=40)
        spec = guest_spec(instance, build_disks(instance))
        Instance.objects.filter(pk=instance_id).update(progress=70)
        ensure_disk_secrets(driver, spec.disks)
        driver.spawn(spec)
        _plug_nics(instance)
    except (DriverError, SoftTimeLimitExceeded, OSError, Exception) as exc:  # noqa: BLE001 - any failure → ERROR
        logger.exception("spawning %s", instance_id)
        _cleanup_guest(instance_id, driver, storage)
        release_volumes(instance, reason=f"Build of instance {instance_id} failed: {exc}")
        _finish(instance_id, create, error=f"Build of instance {instance_id} failed: {exc}",
                vm_state=VMState.ERROR, power_state=PowerState.NOSTATE)
        return
    # A delete that arrived while spawning wins: its task will destroy the guest.
    Instance.objects.filter(pk=instance_id, task_state=TaskState.SPAWNING).update(
        vm_state=VMState.ACTIVE, task_state=None, power_state=PowerState.RUNNING, progress=100,
        launched_at=timezone.now(), updated_at=timezone.now())
    InstanceAction.objects.filter(pk=create).update(finish_time=timezone.now(), result="Success")
    boot_volumes_attached(instance)
    _ports_up(instance)
    services.instance_changed(Instance.objects.get(pk=instance_id))


def _cleanup_guest(instance_id, driver, storage):
    for step in (lambda: driver.destroy(instance_id), lambda: storage.delete_instance_disk(instance_id)):
        try:
            step()
        except Exception:  # noqa: BLE001 - best effort: the reconcile reports leftovers
            logger.exception("cleaning up %s", instance_id)


# Final vm_state and power_state of each action, and the driver call doing it.
def _do(action, instance, driver, **kwargs):
    uuid = instance.pk
    if action == "start":
        driver.power_on(uuid)
        return VMState.ACTIVE, PowerState.RUNNING
    if action == "stop":
        driver.power_off(uuid, timeout=settings.SHUTDOWN_TIMEOUT)
        return VMState.STOPPED, PowerState.SHUTDOWN
    if action == "reboot":
        driver.reboot(uuid, hard=False)
        return VMState.ACTIVE, PowerState.RUNNING
    if action == "reboot_hard":
        driver.reboot(uuid, hard=True)
        return VMState.ACTIVE, PowerState.RUNNING
    if action == "pause":
        driver.pause(uuid)
        return VMState.PAUSED, PowerState.PAUSED
    if action == "unpause":
        driver.unpause(uuid)
        return VMState.ACTIVE, PowerState.RUNNING
    if action == "suspend":
        driver.suspend(uuid)
        return VMState.SUSPENDED, PowerState.SUSPENDED
    if action == "resume":
        driver.resume(uuid)
        return VMState.ACTIVE, PowerState.RUNNING
    raise ValueError(action)


@shared_task(soft_time_limit=600, time_limit=660, ignore_result=True)
def run_action(instance_id, action, action_id, **kwargs):
    instance = Instance.objects.select_related("host").filter(pk=instance_id).first()
    if instance is None:
        return
    handler = {"delete": _delete, "resize": _resize, "confirm_resize": _confirm_resize,
               "revert_resize": _revert_resize, "rebuild": _rebuild, "snapshot": _snapshot}.get(action)
    driver = get_driver()
    try:
        if handler is not None:
            handler(instance, action_id, driver, **kwargs)
            if action != "delete":
                _plug_nics(instance)
            return
        vm_state, power_state = _do(action, instance, driver, **kwargs)
        if power_state == PowerState.RUNNING:
            _plug_nics(instance)
    except (DriverError, SoftTimeLimitExceeded, Exception) as exc:  # noqa: BLE001 - reported as the fault
        logger.exception("%s of %s", action, instance_id)
        # Back to a stable state: what the hypervisor says now.
        power = _safe_power_state(driver, instance_id)
        _finish(instance_id, action_id, error=f"{action} failed: {exc}", power_state=power,
                vm_state=_resting_state(instance, power))
        return
    _finish(instance_id, action_id, vm_state=vm_state, power_state=power_state)


def _safe_power_state(driver, instance_id):
    try:
        return driver.power_state(instance_id)
    except Exception:  # noqa: BLE001
        return PowerState.NOSTATE


def _resting_state(instance, power):
    from .states import POWER_TO_VM_STATE

    return POWER_TO_VM_STATE.get(power, VMState.ERROR if power == PowerState.NOSTATE else instance.vm_state)


def _delete(instance, action_id, driver, **_):
    storage = get_storage()
    driver.destroy(instance.pk)
    release_volumes(instance)
    storage.delete_instance_disk(instance.pk)
    _remove_instance_files(instance.pk)
    from network import services as network_services

    network_services.release_instance_ports(instance)
    _finish(instance.pk, action_id, vm_state=VMState.DELETED, power_state=PowerState.NOSTATE,
            terminated_at=timezone.now())
    services.usage_changed(instance.project)


def _remove_instance_files(instance_id):
    import shutil

    shutil.rmtree(Path(settings.INSTANCES_ROOT) / instance_id, ignore_errors=True)


def _resize(instance, action_id, driver, flavor_id):
    from .models import Flavor

    flavor = Flavor.objects.get(pk=flavor_id)
    old = {"id": instance.flavor_ref, "name": instance.flavor_name, "vcpus": instance.vcpus,
           "ram": instance.memory_mib, "disk": instance.root_gb}
    running = driver.power_state(instance.pk) == PowerState.RUNNING
    if running:
        driver.power_off(instance.pk, timeout=settings.SHUTDOWN_TIMEOUT)
    driver.resize(instance.pk, flavor.vcpus, flavor.ram)
    if root_volume_id(instance) is None:  # a boot volume keeps its own size (os-extend)
        get_storage().resize_instance_disk(instance.pk, max(flavor.disk, instance.root_gb))
    if running:
        driver.power_on(instance.pk)
    _finish(instance.pk, action_id, vm_state=VMState.RESIZED, old_flavor=old, flavor=flavor, flavor_ref=flavor.pk,
            flavor_name=flavor.name, vcpus=flavor.vcpus, memory_mib=flavor.ram,
            root_gb=max(flavor.disk, instance.root_gb), power_state=driver.power_state(instance.pk))


def _confirm_resize(instance, action_id, driver, **_):
    power = driver.power_state(instance.pk)
    _finish(instance.pk, action_id, vm_state=_resting_state(instance, power), old_flavor=None, power_state=power)


def _revert_resize(instance, action_id, driver, **_):
    from .models import Flavor

    old = instance.old_flavor or {}
    running = driver.power_state(instance.pk) == PowerState.RUNNING
    if running:
        driver.power_off(instance.pk, timeout=settings.SHUTDOWN_TIMEOUT)
    driver.resize(instance.pk, old["vcpus"], old["ram"])
    if running:
        driver.power_on(instance.pk)
    power = driver.power_state(instance.pk)
    _finish(instance.pk, action_id, vm_state=_resting_state(instance, power), old_flavor=None,
            flavor=Flavor.objects.filter(pk=old["id"]).first(), flavor_ref=old["id"], flavor_name=old["name"],
            vcpus=old["vcpus"], memory_mib=old["ram"], power_state=power)
    services.usage_changed(instance.project)


def _rebuild(instance, action_id, driver, image_id):
    from .models import Image

    image = Image.objects.get(pk=image_id)
    driver.destroy(instance.pk)
    get_storage().delete_instance_disk(instance.pk)
    Instance.objects.filter(pk=instance.pk).update(image_ref=image.pk)
    instance.refresh_from_db()
    driver.spawn(guest_spec(instance, build_disks(instance)))
    _finish(instance.pk, action_id, vm_state=VMState.ACTIVE, power_state=PowerState.RUNNING)


def _snapshot(instance, action_id, driver, image_id):
    from . import images

    was = instance.vm_state
    try:
        images.mark_saving(image_id)
        volume_id = root_volume_id(instance)
        if volume_id is None:
            stored = get_storage().snapshot_instance_disk(instance.pk, image_id)
        else:  # volume-backed: the boot volume's content becomes the image
            stored = get_storage().volume_to_image(volume_id, image_id, _image_format(image_id))
        images.mark_stored(image_id, stored)
    except Exception as exc:
        images.mark_failed(image_id, exc)
        raise
    _finish(instance.pk, action_id, vm_state=was, power_state=driver.power_state(instance.pk))


def _image_format(image_id):
    from .models import Image

    return Image.objects.filter(pk=image_id).values_list("disk_format", flat=True).first() or "qcow2"


# --- Volumes ----------------------------------------------------------------------
#
# The volume's status is the progress (storage/services.py moves it); these
# tasks run on the instance's host, call the driver and report back with
# the storage services' finish_* / abort_* steps, so a failure always ends
# in a resting status with the reason on the volume.

BOOT_VOLUME_WAIT = 240  # s a spawn waits for the volumes its launch created


def root_volume_id(instance):
    from storage.models import VolumeAttachment
    from storage.services import ROOT_DEVICE

    return VolumeAttachment.objects.filter(instance_id=instance.pk, device=ROOT_DEVICE).values_list(
        "volume_id", flat=True).first()


def volume_disks(instance):
    """``{target: DiskSpec}`` of the volumes on the instance, by device."""
    from storage.models import VolumeAttachment
    from storage.states import AttachStatus

    storage = get_storage()
    rows = VolumeAttachment.objects.filter(instance_id=instance.pk).exclude(
        status=AttachStatus.DETACHING).order_by("device").values_list("volume_id", "device")
    return {device.removeprefix("/dev/"): storage.volume_disk(volume_id, device.removeprefix("/dev/"))
            for volume_id, device in rows}


def ensure_disk_secrets(driver, disks):
    """RBD disks with cephx name a libvirt secret: make it on this host from
    the storage driver's key (``cephx_key()``, base64) before QEMU needs it.
    Without a key to give, the driver's own check reports the missing secret."""
    key_of = getattr(get_storage(), "cephx_key", None)
    ensure = getattr(driver, "ensure_ceph_secret", None)
    if key_of is None or ensure is None:
        return
    for secret_uuid, username in {(d.auth_secret_uuid, d.auth_username) for d in disks if d.auth_secret_uuid}:
        ensure(secret_uuid, username, key_of())


def prepare_boot_volumes(instance):
    """Before the first spawn: each volume the launch bound to the instance
    (boot from volume) is claimed (``attaching``) once it is available,
    waiting for those the launch is still creating (as Nova waits for
    Cinder). DriverError when one failed or never came."""
    from storage import services as volumes
    from storage.models import Volume, VolumeAttachment
    from storage.states import AttachStatus, VolumeStatus

    deadline = time.monotonic() + BOOT_VOLUME_WAIT
    for attachment in VolumeAttachment.objects.filter(instance_id=instance.pk, status=AttachStatus.ATTACHING):
        while True:
            volume = Volume.objects.get(pk=attachment.volume_id)
            if volume.status == VolumeStatus.ATTACHING:
                break
            if volume.status == VolumeStatus.AVAILABLE:
                attachment.volume = volume
                volumes.claim_boot_volume(attachment)
                break
            if volume.status != VolumeStatus.CREATING:
                raise DriverError(f"volume {volume.pk} is {volume.status}"
                                  + (f": {volume.status_reason}" if volume.status_reason else ""))
            if time.monotonic() > deadline:
                raise DriverError(f"volume {volume.pk} was not created within {BOOT_VOLUME_WAIT} s")
            time.sleep(0.5)


def boot_volumes_attached(instance):
    """The guest runs with its boot volumes: they are ``in-use``."""
    from storage import services as volumes
    from storage.models import VolumeAttachment
    from storage.states import AttachStatus

    for attachment in VolumeAttachment.objects.select_related("volume").filter(
            instance_id=instance.pk, status=AttachStatus.ATTACHING):
        try:
            volumes.finish_attachment(attachment)
        except Exception:  # noqa: BLE001 - moved meanwhile (an operator's reset); the guest has it anyway
            logger.exception("marking volume %s attached to %s", attachment.volume_id, instance.pk)


def release_volumes(instance, reason=""):
    """The guest is gone: its volumes are available again and those marked
    delete_on_termination are deleted (storage.services.release_instance_volumes)."""
    from storage import services as volumes

    try:
        volumes.release_instance_volumes(instance, reason=reason)
    except Exception:  # noqa: BLE001 - the instance's own outcome comes first; the rows stay for a retry
        logger.exception("releasing the volumes of %s", instance.pk)


def _close_action(action_id, error=None):
    if action_id:
        InstanceAction.objects.filter(pk=action_id).update(
            finish_time=timezone.now(), result="Error" if error else "Success", message=str(error or "")[:2000])


@shared_task(soft_time_limit=120, time_limit=180, ignore_result=True)
def attach_volume(attachment_id, action_id=None):
    """On the instance's host: plug the volume in (live when the guest
    runs, always into its definition), then ``in-use``; on failure the
    volume is ``available`` again with the reason."""
    from storage import services as volumes
    from storage.models import VolumeAttachment
    from storage.states import AttachStatus

    attachment = VolumeAttachment.objects.select_related("volume", "instance").filter(
        pk=attachment_id, status=AttachStatus.ATTACHING).first()
    if attachment is None:
        _close_action(action_id, error="The attachment was cancelled.")
        return
    instance = attachment.instance
    target = attachment.device.removeprefix("/dev/")
    driver = get_driver()
    try:
        disk = get_storage().volume_disk(attachment.volume_id, target)
        ensure_disk_secrets(driver, [disk])
        driver.attach_disk(instance.pk, disk)
    except (DriverError, SoftTimeLimitExceeded, Exception) as exc:  # noqa: BLE001 - reported on the volume
        logger.exception("attaching volume %s to %s", attachment.volume_id, instance.pk)
        reason = f"Attaching to instance {instance.pk} as {attachment.device} failed: {exc}"
        volumes.abort_attachment(attachment, reason)
        _close_action(action_id, error=reason)
        return
    try:
        volumes.finish_attachment(attachment)
    except Exception as exc:  # noqa: BLE001 - released meanwhile (instance deleted, status reset): undo
        logger.warning("volume %s was released while attaching to %s (%s); unplugging it", attachment.volume_id,
                       instance.pk, exc)
        try:
            driver.detach_disk(instance.pk, target)
        except Exception:  # noqa: BLE001
            logger.exception("unplugging %s from %s", target, instance.pk)
        _close_action(action_id, error=str(exc))
        return
    _close_action(action_id)
    services.instance_changed(Instance.objects.select_related("host").get(pk=instance.pk))


@shared_task(soft_time_limit=120, time_limit=180, ignore_result=True)
def detach_volume(attachment_id, action_id=None):
    """On the instance's host: unplug the volume (waiting for a running
    guest to let go), then ``available``; on failure ``in-use`` again with
    the reason."""
    from storage import services as volumes
    from storage.models import VolumeAttachment
    from storage.states import AttachStatus

    attachment = VolumeAttachment.objects.select_related("volume", "instance").filter(
        pk=attachment_id, status=AttachStatus.DETACHING).first()
    if attachment is None:
        _close_action(action_id, error="The volume was no longer detaching.")
        return
    instance = attachment.instance
    try:
        get_driver().detach_disk(instance.pk, attachment.device.removeprefix("/dev/"))
    except (DriverError, SoftTimeLimitExceeded, Exception) as exc:  # noqa: BLE001 - reported on the volume
        logger.exception("detaching volume %s from %s", attachment.volume_id, instance.pk)
        reason = f"Detaching from instance {instance.pk} failed: {exc}"
        volumes.abort_detach(attachment, reason)
        _close_action(action_id, error=reason)
        return
    try:
        volumes.finish_detach(attachment)
    except Exception as exc:  # noqa: BLE001 - released meanwhile (the instance was deleted)
        logger.warning("volume %s moved while detaching from %s: %s", attachment.volume_id, instance.pk, exc)
    _close_action(action_id)
    services.instance_changed(Instance.objects.select_related("host").get(pk=instance.pk))


# --- Hosts ------------------------------------------------------------------------

@shared_task(soft_time_limit=120, ignore_result=True)
def reconcile_host(host_name):
    from .reconcile import reconcile

    host = Host.objects.filter(name=host_name).first()
    if host is not None:
        reconcile(host, get_driver(), get_storage())

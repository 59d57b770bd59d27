"""Compute state changes: flavors, key pairs, instances and server groups.
Views, the API and the admin call these and nothing lower."""

import base64
import binascii
import hashlib
import math
import re
import uuid
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import quotas
from billing.services import usage_changed
from core import events
from core.openstack.errors import BadRequest, Conflict, NotFound, OverQuota

from .models import Flavor, FlavorAccess, Instance, InstanceAction, InstanceFault, KeyPair, ServerGroup
from .states import ACTIONS, TaskState

MAX_NAME = 255
# Nova's limits (nova/db/constants.py): sizes are 32-bit signed integers,
# rxtx_factor a single-precision float.
MAX_INT = 2**31 - 1
MAX_FLOAT = 3.40282e38
# Nova's flavor id: letters, digits, '.', '_', '-' and inner spaces.
FLAVOR_ID_RE = re.compile(r"^(?! )[a-zA-Z0-9. _-]+(?<! )$")


def validate_name(name, what="name"):
    if not isinstance(name, str) or not name.strip():
        raise BadRequest(f"The {what} must be a non-blank string.")
    if len(name) > MAX_NAME:
        raise BadRequest(f"The {what} is longer than {MAX_NAME} characters.")
    if name != name.strip():
        raise BadRequest(f"The {what} must not start or end with white space.")
    return name


# --- Flavors --------------------------------------------------------------------

@transaction.atomic
def create_flavor(*, name, vcpus, ram, disk=0, id=None, ephemeral=0, swap=0, rxtx_factor=1.0, is_public=True,
                  description="", extra_specs=None):
    validate_name(name, "flavor name")
    for field, value, minimum in (("vcpus", vcpus, 1), ("ram", ram, 1), ("disk", disk, 0),
                                  ("ephemeral", ephemeral, 0), ("swap", swap, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_INT:
            raise BadRequest(f"Invalid {field} {value!r}: an integer from {minimum} to {MAX_INT} is required.")
    if (not isinstance(rxtx_factor, int | float) or isinstance(rxtx_factor, bool) or not math.isfinite(rxtx_factor)
            or not 0 < rxtx_factor <= MAX_FLOAT):
        raise BadRequest(f"rxtx_factor must be a positive number of at most {MAX_FLOAT}.")
    if id is None or id == "auto":
        id = str(uuid.uuid4())
    if not isinstance(id, str) or len(id) > 255 or not FLAVOR_ID_RE.match(id):
        raise BadRequest("A flavor id is at most 255 letters, digits, periods, dashes, underscores and inner "
                         "spaces.")
    if Flavor.objects.filter(pk=id).exists():
        raise Conflict(f"Flavor with ID {id} already exists.")
    if Flavor.objects.filter(name=name).exists():
        raise Conflict(f"Flavor with name {name} already exists.")
    return Flavor.objects.create(id=id, name=name, vcpus=vcpus, ram=ram, disk=disk, ephemeral=ephemeral, swap=swap,
                                 rxtx_factor=rxtx_factor, is_public=is_public, description=description or "",
                                 extra_specs=extra_specs or {})


def delete_flavor(flavor):
    # Instances keep a copy of their flavor's sizes, so a flavor can always go.
    flavor.delete()


def add_flavor_access(flavor, project):
    if flavor.is_public:
        raise Conflict("Can not add access to a public flavor.")
    _, created = FlavorAccess.objects.get_or_create(flavor=flavor, project=project)
    if not created:
        raise Conflict(f"Flavor access already exists for flavor {flavor.id} and project {project.id} combination.")


def remove_flavor_access(flavor, project):
    if not FlavorAccess.objects.filter(flavor=flavor, project=project).delete()[0]:
        # Nova answers FlavorAccessNotFound with 404.
        raise NotFound(f"Flavor access not found for {flavor.id} / {project.id} combination.")


# --- Key pairs ------------------------------------------------------------------

def fingerprint(public_key):
    """Nova's fingerprint: MD5 of the key blob in colon-separated hex."""
    blob = base64.b64decode(public_key.split()[1].encode())
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))


def parse_public_key(text):
    """The key normalised to ``type base64 [comment]``, or BadRequest."""
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("Keypair data is invalid: the public key is empty.")
    text = text.strip()
    if "\n" in text or len(text) > 16384:
        raise BadRequest("Keypair data is invalid: one OpenSSH public key line expected.")
    try:
        serialization.load_ssh_public_key(text.encode())
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:  # an unknown key type is UnsupportedAlgorithm
        raise BadRequest(f"Keypair data is invalid: failed to load the OpenSSH public key ({exc}).") from None
    return text


def generate_key():
    """A new key pair as ``(public_openssh, private_openssh_pem)``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return public, private


def create_keypair(*, user, project, name, public_key=None, key_type="ssh"):
    """Import ``public_key``, or generate one. Returns ``(keypair,
    private_key_or_None)``; a generated private key is never stored."""
    validate_name(name, "key pair name")
    if not all(c.isalnum() or c in "-_ ." for c in name):
        raise BadRequest("Keypair name contains unsafe characters (letters, digits, space, '-', '_', '.' only).")
    if key_type not in ("ssh", "x509"):
        raise BadRequest(f"Invalid key pair type {key_type!r}.")
    private_key = None
    if public_key is None:
        public_key, private_key = generate_key()
    else:
        public_key = parse_public_key(public_key)
    try:
        with transaction.atomic():
            quotas.reserve(project, {"key_pairs": 1}, user=user)
            if KeyPair.objects.filter(user=user, name=name).exists():
                raise Conflict(f"Key pair '{name}' already exists.")
            keypair = KeyPair.objects.create(user=user, name=name, type=key_type, public_key=public_key,
                                             fingerprint=fingerprint(public_key))
            usage_changed(project)
    except IntegrityError:
        raise Conflict(f"Key pair '{name}' already exists.") from None
    return keypair, private_key


def delete_keypair(keypair, project=None):
    with transaction.atomic():
        keypair.delete()
        if project is not None:
            usage_changed(project)



# --- Instances --------------------------------------------------------------------
#
# Every instance operation: validate, check quota, move the state with one
# compare-and-swap UPDATE, record an InstanceAction, and enqueue the task on
# commit. The tasks (compute/tasks.py) do the driver work on the host.


MAX_USER_DATA = 65535  # bytes of base64, as Nova


def hostname_for(name):
    """RFC 952/1123 hostname from a display name, lower-cased (Nova's sanitize_hostname)."""
    host = re.sub(r"[ _.]", "-", name.lower())
    host = re.sub(r"[^a-z0-9-]", "", host).strip("-")
    return host[:63].rstrip("-") or "server"


def check_user_data(user_data):
    if not user_data:
        return ""
    if not isinstance(user_data, str):
        raise BadRequest("user_data must be a base64-encoded string.")
    if len(user_data) > MAX_USER_DATA:
        raise BadRequest(f"user_data is larger than {MAX_USER_DATA} bytes.")
    try:
        base64.b64decode(user_data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("user_data is not valid base64.") from None
    return user_data


def check_metadata(metadata):
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise BadRequest("metadata must be an object of string keys and values.")
    if len(metadata) > 128:
        raise BadRequest("Quota exceeded: at most 128 metadata items.")
    for key, value in metadata.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 255 or not isinstance(value, str) or len(value) > 255:
            raise BadRequest("Metadata keys and values must be strings of 1-255 (keys) and 0-255 characters.")
    return metadata


def instance_deltas(vcpus, ram, count=1):
    return {"instances": count, "cores": vcpus * count, "ram": ram * count}


def _count_instances(project, user):
    return Instance.objects.for_project(project).live().count()


def _sum_instances(field):
    from django.db.models import Sum

    def counter(project, user):
        return Instance.objects.for_project(project).live().aggregate(n=Sum(field))["n"] or 0

    return counter


quotas.register_counter("instances", _count_instances)
quotas.register_counter("cores", _sum_instances("vcpus"))
quotas.register_counter("ram", _sum_instances("memory_mib"))
quotas.register_counter("server_groups", lambda project, user: ServerGroup.objects.for_project(project).count())


@dataclass(frozen=True)
class BlockDevice:
    """One ``block_device_mapping_v2`` entry with destination ``volume``,
    its source found in the caller's scope: an existing ``volume``, or a new
    volume made from an ``image``, a ``snapshot`` or nothing (``blank``).
    ``boot_index`` 0 is the root disk (``/dev/vda``); any other is a data
    disk at ``device`` or the next free name."""

    source: str  # volume | image | snapshot | blank
    boot_index: int | None = None
    size: int | None = None  # GiB of a new volume
    delete_on_termination: bool = False
    device: str | None = None
    volume_type: str | None = None
    volume: object = None
    image: object = None
    snapshot: object = None

    @property
    def is_root(self):
        return self.boot_index == 0


def check_block_devices(block_devices, max_count):
    """Nova's checks of a boot-from-volume request (400, InvalidBDM)."""
    roots = [bd for bd in block_devices if bd.is_root]
    if len(roots) > 1:
        raise BadRequest("Block Device Mapping is Invalid: Boot sequence for the instance and image/block device "
                         "mapping combination is not valid (more than one boot_index 0).")
    for bd in block_devices:
        if bd.source not in ("volume", "image", "snapshot", "blank"):
            raise BadRequest(f"Block Device Mapping is Invalid: unknown source_type {bd.source!r}.")
        if bd.source in ("image", "blank") and not bd.size:
            raise BadRequest(f"Block Device Mapping is Invalid: a volume from source_type {bd.source} needs a "
                             "volume_size.")
        if bd.source == "volume" and max_count > 1:
            raise BadRequest("Block Device Mapping is Invalid: an existing volume cannot be attached to more "
                             "than one instance.")
        if bd.source == "blank" and bd.is_root:
            raise BadRequest("Block Device Mapping is Invalid: a blank volume cannot be the boot disk.")
    return roots[0] if roots else None


def _bind_block_devices(instance, block_devices, user):
    """Create the volumes a launch asks for (through the volume services:
    their quotas, their tasks) and bind each to the new instance."""
    from storage import services as volumes

    for bd in sorted(block_devices, key=lambda bd: not bd.is_root):
        created = bd.source != "volume"
        if created:
            volume = volumes.create_volume(project=instance.project, user=user, size=bd.size, image=bd.image,
                                           snapshot=bd.snapshot, volume_type=bd.volume_type,
                                           description=f"Created for instance {instance.pk}")
        else:
            volume = bd.volume
        device = volumes.ROOT_DEVICE if bd.is_root else bd.device
        volumes.reserve_boot_volume(volume, instance, device=device, created=created,
                                    delete_on_termination=bd.delete_on_termination)


def launch(*, project, user, name, flavor, image, key_name=None, user_data=None, metadata=None,
           availability_zone=None, server_group=None, min_count=1, max_count=1, config_drive=True,
           request_id=None, networks=(), security_groups=None, block_devices=()):
    """Create ``min_count``..``max_count`` instances (as many as the quota
    allows, at least ``min_count``) and enqueue their builds. Returns them.

    ``networks`` are NIC requests checked by
    ``network.services.resolve_nic_requests``; each instance gets a port per
    NIC in the same transaction (an existing port only fits one instance).

    ``block_devices`` (``BlockDevice``) are volumes made or bound in the
    same transaction; with a root one (boot from volume) ``image`` is None,
    the instance has no image disk and boots from that volume."""
    from network import services as network_services

    validate_name(name, "server name")
    root_device = check_block_devices(block_devices, max_count)
    if root_device is not None:
        image = None
    elif image is None:
        raise BadRequest("An imageRef (or a bootable block device mapping) is required.")
    availability_zone = availability_zone or settings.DEFAULT_SCHEDULE_ZONE
    if flavor.disabled:
        raise BadRequest(f"Flavor {flavor.id} is disabled.")
    if image is not None:
        if image.status != "active":
            raise BadRequest(f"Image {image.id} is not active.")
        if image.min_ram and flavor.ram < image.min_ram:
            raise BadRequest(f"Flavor's memory is too small for requested image ({image.min_ram} MiB needed).")
        if image.min_disk and flavor.disk and flavor.disk < image.min_disk:
            raise BadRequest(f"Flavor's disk is too small for requested image ({image.min_disk} GB needed).")
    key_data = ""
    if key_name:
        keypair = KeyPair.objects.filter(user=user, name=key_name).first()
        if keypair is None:
            raise BadRequest(f"Invalid key_name provided: {key_name}.")
        key_data = keypair.public_key
    user_data = check_user_data(user_data)
    metadata = check_metadata(metadata)
    if not (isinstance(min_count, int) and isinstance(max_count, int) and 1 <= min_count <= max_count):
        raise BadRequest("min_count and max_count must be integers with 1 <= min_count <= max_count.")
    if server_group is not None and server_group.project_id != project.pk:
        raise BadRequest("Invalid server group.")
    if max_count > 1 and any("port" in nic for nic in networks):
        raise BadRequest("Unable to launch multiple instances with a single configured port ID.")
    reservation = uuid.uuid4().hex[:8]
    with transaction.atomic():
        count = _fit_count(project, flavor, min_count, max_count)
        instances = []
        for index in range(count):
            display = name if count == 1 else f"{name}-{index + 1}"
            instance = Instance.objects.create(
                project=project, user=user, name=display, hostname=hostname_for(display), flavor=flavor,
                flavor_ref=flavor.id, flavor_name=flavor.name, vcpus=flavor.vcpus, memory_mib=flavor.ram,
                # A boot volume has its own size (and quota): the flavor's disk is not used.
                root_gb=0 if root_device else flavor.disk, image_ref=image.id if image else "",
                key_name=key_name or "",
                key_data=key_data, user_data=user_data, metadata=metadata,
                availability_zone=availability_zone or "", server_group=server_group, config_drive=config_drive,
                launch_index=index, reservation_id=reservation,
            )
            _record_action(instance, "create", user, project, request_id)
            network_services.create_instance_ports(instance, networks, security_groups=security_groups)
            _bind_block_devices(instance, block_devices, user)
            instances.append(instance)
            _enqueue(instance, "build", None)
        usage_changed(project)
    for instance in instances:
        instance_changed(instance)
    return instances


def _fit_count(project, flavor, min_count, max_count):
    """The largest count in [min, max] the quota allows; OverQuota below min."""
    try:
        quotas.reserve(project, instance_deltas(flavor.vcpus, flavor.ram, max_count))
        return max_count
    except OverQuota as exc:
        if min_count == max_count:
            raise
        last = exc
    for count in range(max_count - 1, min_count - 1, -1):
        try:
            quotas.reserve(project, instance_deltas(flavor.vcpus, flavor.ram, count))
            return count
        except OverQuota as exc:
            last = exc
    raise last


def _record_action(instance, action, user, project, request_id):
    return InstanceAction.objects.create(instance=instance, action=action, user=user, project=project,
                                         request_id=request_id or "req-" + str(uuid.uuid4()))


def _enqueue(instance, action, action_id, **kwargs):
    """Send the task after commit: builds go to the scheduler (default queue),
    everything else to the instance's host queue."""
    from . import tasks

    instance_id = instance.pk

    def send():
        if action == "build":
            tasks.schedule_instance.apply_async(args=(instance_id,), queue="default")
        else:
            queue = instance.host.queue if instance.host_id else "default"
            tasks.run_action.apply_async(args=(instance_id, action, action_id), kwargs=kwargs, queue=queue)

    transaction.on_commit(send)


def instance_changed(instance):
    """Push the instance's new status to the project's browsers after commit."""
    from .events import instance_event

    events.publish(instance.project_id, instance_event(instance))


def begin_action(instance, action, *, user, request_id=None, **kwargs):
    """Start ``action`` if the instance's state allows it: one atomic
    compare-and-swap on (vm_state, task_state). 409 otherwise."""
    spec = ACTIONS[action]
    if instance.locked and not user.is_staff:
        raise Conflict(f"Instance {instance.pk} is locked.")
    with transaction.atomic():
        rows = Instance.objects.filter(pk=instance.pk, vm_state__in=spec.allowed)
        if spec.needs_idle:
            rows = rows.filter(task_state__isnull=True)
        else:
            rows = rows.exclude(task_state=TaskState.DELETING)
        if not rows.update(task_state=spec.task_state, updated_at=timezone.now()):
            instance.refresh_from_db()
            raise Conflict(
                f"Cannot '{action}' instance {instance.pk} while it is in vm_state {instance.vm_state}"
                + (f" and task_state {instance.task_state}" if instance.task_state else "") + "."
            )
        instance.refresh_from_db()
        record = _record_action(instance, action, user, instance.project, request_id)
        _enqueue(instance, action, record.pk, **kwargs)
    instance_changed(instance)
    return record


def delete_instance(instance, *, user, request_id=None):
    """Delete from any state. An instance that never reached a host is
    finished here; the others are destroyed by their host's task."""
    record = begin_action(instance, "delete", user=user, request_id=request_id)
    return record


def resize(instance, flavor, *, user, request_id=None):
    if flavor.pk == instance.flavor_ref:
        raise BadRequest("When resizing, instances must change flavor!")
    if flavor.disabled:
        raise BadRequest(f"Flavor {flavor.id} is disabled.")
    if flavor.disk and flavor.disk < instance.root_gb:
        raise BadRequest("Resize to a flavor with a smaller root disk is not allowed.")
    with transaction.atomic():
        quotas.reserve(instance.project, {"cores": flavor.vcpus - instance.vcpus,
                                          "ram": flavor.ram - instance.memory_mib})
        return begin_action(instance, "resize", user=user, request_id=request_id, flavor_id=flavor.pk)


def snapshot(instance, *, name, user, request_id=None, metadata=None):
    """Create a queued image now (its id goes back to the caller) and let
    the host fill it from the instance's disk."""
    from . import images

    validate_name(name, "image name")
    with transaction.atomic():
        image = images.create_image(project=instance.project, name=name, disk_format="qcow2",
                                    container_format="bare", visibility="private",
                                    properties={**(metadata or {}), "instance_uuid": instance.pk,
                                                "image_type": "snapshot"})
        begin_action(instance, "snapshot", user=user, request_id=request_id, image_id=image.pk)
    return image


def rebuild(instance, image, *, user, name=None, request_id=None):
    from storage.models import VolumeAttachment
    from storage.services import ROOT_DEVICE

    if image.status != "active":
        raise BadRequest(f"Image {image.id} is not active.")
    if VolumeAttachment.objects.filter(instance_id=instance.pk, device=ROOT_DEVICE).exists():
        raise BadRequest(f"Instance {instance.pk} boots from a volume: rebuilding it is not supported.")
    with transaction.atomic():
        if name:
            validate_name(name, "server name")
            Instance.objects.filter(pk=instance.pk).update(name=name, hostname=hostname_for(name))
        return begin_action(instance, "rebuild", user=user, request_id=request_id, image_id=image.pk)


def rename(instance, name):
    validate_name(name, "server name")
    Instance.objects.filter(pk=instance.pk).update(name=name, hostname=hostname_for(name), updated_at=timezone.now())
    instance.refresh_from_db()
    instance_changed(instance)
    return instance


def set_lock(instance, locked, *, user, reason=""):
    Instance.objects.filter(pk=instance.pk).update(locked=locked, locked_reason=reason if locked else "")
    instance.refresh_from_db()
    InstanceAction.objects.create(instance=instance, action="lock" if locked else "unlock", user=user,
                                  project=instance.project, request_id="req-" + str(uuid.uuid4()),
                                  finish_time=timezone.now(), result="Success")
    return instance


def set_metadata(instance, metadata, replace=False):
    metadata = check_metadata(metadata)
    new = dict(metadata) if replace else {**instance.metadata, **metadata}
    check_metadata(new)
    Instance.objects.filter(pk=instance.pk).update(metadata=new)
    instance.metadata = new
    return new


def delete_metadata_item(instance, key):
    if key not in instance.metadata:
        raise NotFound(f"Metadata item was not found: {key}.")
    instance.metadata.pop(key)
    Instance.objects.filter(pk=instance.pk).update(metadata=instance.metadata)


def record_fault(instance, message, code=500, details=""):
    InstanceFault.objects.create(instance=instance, code=code, message=str(message)[:255], details=details)


def create_server_group(*, project, user, name, policy):
    validate_name(name, "server group name")
    if policy not in dict(ServerGroup.POLICIES):
        raise BadRequest(f"Invalid policy {policy!r}.")
    with transaction.atomic():
        quotas.reserve(project, {"server_groups": 1})
        return ServerGroup.objects.create(project=project, user=user, name=name, policy=policy)


def delete_server_group(group):
    group.delete()

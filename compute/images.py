"""Image state changes, with Glance v2's rules: create, upload, download,
update by JSON patch, delete, tags, members, deactivate/reactivate, and what
compute's snapshot task reports (``mark_stored``/``mark_failed``).

The Glance API, the admin and the dashboard call these and nothing lower.
Status moves are compare-and-swap UPDATEs, so a concurrent upload, delete or
snapshot never leaves an image half in one state and half in another.

Upload statuses: ``queued`` → ``saving`` → ``active``. Bytes the user can fix
(wrong format, a backing file, too large, the client went away) put the image
back in ``queued`` with no data, so the upload can simply be retried, as
Glance v2 does; a failure of the store itself leaves it ``killed`` with the
reason in ``status_reason``.
"""

import logging
import re
import uuid

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import quotas
from billing.services import usage_changed
from core.openstack.errors import APIError, BadRequest, Conflict, Forbidden, NotFound, RequestTooLarge
from identity.models import Project
from storage.drivers import get_storage
from storage.drivers.base import ImageFormatError, StorageError
from storage.drivers.file import QEMU_FORMATS

from .models import Image, ImageMember
from .models.images import ContainerFormat, DiskFormat, ImageStatus, MemberStatus, Visibility

logger = logging.getLogger(__name__)

GiB = 1 << 30
# Largest image accepted (Glance's image_size_cap); larger uploads get 413.
MAX_IMAGE_SIZE = 20 * GiB
UPLOAD_CHUNK_SIZE = 1 << 20
# Glance's image_tag_quota, image_property_quota and image_member_quota.
MAX_TAGS = 128
MAX_PROPERTIES = 128
MAX_MEMBERS = 128
MAX_NAME = 255
MAX_INT = 2**31 - 1
MAX_PROPERTY_VALUE = 65535
HASH_ALGO = "sha512"
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# Attributes the user sets, by their API names, and the columns behind them.
MUTABLE = {"name": "name", "visibility": "visibility", "protected": "protected", "os_hidden": "hidden",
           "min_ram": "min_ram", "min_disk": "min_disk", "disk_format": "disk_format",
           "container_format": "container_format", "tags": "tags"}
# Attributes only Glance sets (403 when a user tries); never extra properties.
READ_ONLY = frozenset({"id", "status", "checksum", "os_hash_algo", "os_hash_value", "owner", "size", "virtual_size",
                       "created_at", "updated_at", "self", "file", "schema", "direct_url", "locations", "stores",
                       "deleted", "deleted_at"})
RESERVED_PREFIX = "os_glance"


class Gone(APIError):
    status_code = 410
    nova_key = "gone"
    title = "Gone"
    default_detail = "The image was deleted while its data was being uploaded."


class StoreUnavailable(APIError):
    status_code = 503
    nova_key = "serviceUnavailable"
    title = "Service Unavailable"
    default_detail = "The image store failed; try again later."


class ClientDisconnected(Exception):
    """The request body could not be read to its end."""


# --- Validation -------------------------------------------------------------------

def check_text(value, what):
    """PostgreSQL stores no NUL character, in text or in JSON."""
    if isinstance(value, str) and "\x00" in value:
        raise BadRequest(f"Invalid {what}: NUL characters are not allowed.")
    return value


def _check_name(value):
    if value is not None and (not isinstance(value, str) or len(value) > MAX_NAME):
        raise BadRequest(f"Invalid value for name: a string of at most {MAX_NAME} characters (or null) is required.")
    return check_text(value, "name")


def _check_bool(value, attr):
    if not isinstance(value, bool):
        raise BadRequest(f"Invalid value {value!r} for {attr}: a JSON boolean is required.")
    return value


def _check_int(value, attr):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise BadRequest(f"Invalid value {value!r} for {attr}: an integer from 0 to {MAX_INT} is required.")
    return value


def _check_choice(value, choices, attr, nullable=True):
    if value is None and nullable:
        return None
    if value not in choices.values:
        raise BadRequest(f"Invalid value {value!r} for {attr}: one of {', '.join(choices.values)} is required.")
    return value


def _check_tag(tag):
    if not isinstance(tag, str) or not tag or len(tag) > 255:
        raise BadRequest("A tag is a string of 1 to 255 characters.")
    return check_text(tag, "tag")


def _check_tags(tags):
    if not isinstance(tags, list | tuple):
        raise BadRequest("tags must be a list of strings.")
    tags = [_check_tag(t) for t in tags]
    if len(set(tags)) != len(tags):
        raise BadRequest("tags must not repeat.")
    if len(tags) > MAX_TAGS:
        raise RequestTooLarge(f"Maximum number of tags exceeded ({len(tags)} > {MAX_TAGS}).")
    return tags


def check_property_key(key):
    if not isinstance(key, str) or not 1 <= len(key) <= 255:
        raise BadRequest("A property name is a string of 1 to 255 characters.")
    check_text(key, "property name")
    if key in READ_ONLY:
        raise Forbidden(f"Attribute '{key}' is read-only.")
    if key.startswith(RESERVED_PREFIX):
        raise Forbidden(f"Attribute '{key}' is reserved.")
    return key


def _check_properties(properties):
    if not isinstance(properties, dict):
        raise BadRequest("Extra properties must be an object.")
    for key, value in properties.items():
        check_property_key(key)
        if key in MUTABLE:
            raise BadRequest(f"'{key}' is an image attribute, not an extra property.")
        if not isinstance(value, str) or len(value) > MAX_PROPERTY_VALUE:
            raise BadRequest(f"Invalid value for property {key}: a string is required.")
        check_text(value, f"value for property {key}")
    if len(properties) > MAX_PROPERTIES:
        raise RequestTooLarge(f"Maximum number of image properties exceeded ({len(properties)} > {MAX_PROPERTIES}).")
    return dict(properties)


def _check_visibility(value, *, staff, current=None):
    _check_choice(value, Visibility, "visibility", nullable=False)
    # Glance's publicize_image policy: only operators publish to everyone.
    if value == Visibility.PUBLIC and current != Visibility.PUBLIC and not staff:
        raise Forbidden("Only operators can make an image public.")
    return value


def ensure_owner(image, project, *, staff=False):
    """Only the image's owner (or an operator) changes it or its data."""
    if staff:
        return
    if image.owner_id is None or project is None or image.owner_id != project.pk:
        raise Forbidden(f"You are not permitted to modify image {image.pk}.")


# --- Create, update, delete ---------------------------------------------------------

def create_image(*, project, name=None, id=None, visibility=Visibility.SHARED, disk_format=None,
                 container_format=None, min_disk=0, min_ram=0, protected=False, hidden=False, tags=(),
                 properties=None, staff=False):
    """A queued image owned by ``project`` (None: a cloud-wide image, for
    operators only), counted against the project's ``images`` quota."""
    if project is None and not staff:
        raise Forbidden("Only operators create images without an owner.")
    if id is None:
        id = str(uuid.uuid4())
    elif not isinstance(id, str) or not UUID_RE.match(id):
        raise BadRequest(f"Invalid image id {id!r}: a UUID is required.")
    fields = {
        "name": _check_name(name),
        "visibility": _check_visibility(visibility, staff=staff),
        "disk_format": _check_choice(disk_format, DiskFormat, "disk_format"),
        "container_format": _check_choice(container_format, ContainerFormat, "container_format"),
        "min_disk": _check_int(min_disk, "min_disk"),
        "min_ram": _check_int(min_ram, "min_ram"),
        "protected": _check_bool(protected, "protected"),
        "hidden": _check_bool(hidden, "os_hidden"),
        "tags": _check_tags(() if tags is None else tags),
        "properties": _check_properties(properties or {}),
    }
    try:
        with transaction.atomic():
            if project is not None:
                quotas.reserve(project, {"images": 1})
            if Image.objects.filter(pk=id).exists():
                raise Conflict(f"Image with identifier {id} already exists!")
            image = Image.objects.create(id=id, owner=project, **fields)
            if project is not None:
                usage_changed(project)
    except IntegrityError:
        raise Conflict(f"Image with identifier {id} already exists!") from None
    return image


def _parse_change(change):
    """One JSON-patch operation as ``(op, attribute, value)``."""
    if not isinstance(change, dict):
        raise BadRequest("Each JSON-patch operation must be an object.")
    op, path = change.get("op"), change.get("path")
    if op not in ("add", "replace", "remove"):
        raise BadRequest(f"Invalid operation {op!r}: must be one of add, replace, remove.")
    allowed = {"op", "path"} if op == "remove" else {"op", "path", "value"}
    if set(change) - allowed:
        raise BadRequest(f"Unexpected keys in a {op} operation: {', '.join(sorted(set(change) - allowed))}.")
    if op != "remove" and "value" not in change:
        raise BadRequest(f"A {op} operation needs a value.")
    if not isinstance(path, str) or not path.startswith("/") or path.count("/") != 1 or len(path) < 2:
        raise BadRequest(f"Invalid JSON pointer for this resource: {path!r}.")
    # RFC 6901 unescaping: "~1" is "/" and "~0" is "~".
    attr = path[1:].replace("~1", "/").replace("~0", "~")
    return op, attr, change.get("value")


def update_image(image, changes, *, staff=False):
    """Apply a Glance JSON patch (``application/openstack-images-v2.1-json-patch``):
    ``add`` sets, ``replace`` sets what exists (409 otherwise), ``remove``
    drops an extra property (403 for attributes, 409 when missing)."""
    if not isinstance(changes, list):
        raise BadRequest("A JSON patch must be a list of operations.")
    with transaction.atomic():
        image = Image.objects.select_for_update().get(pk=image.pk)
        values = {attr: getattr(image, column) for attr, column in MUTABLE.items()}
        properties = dict(image.properties)
        for change in changes:
            op, attr, value = _parse_change(change)
            if attr in READ_ONLY:
                raise Forbidden(f"Attribute '{attr}' is read-only.")
            if attr.startswith(RESERVED_PREFIX):
                raise Forbidden(f"Attribute '{attr}' is reserved.")
            if op == "remove":
                if attr in MUTABLE:
                    raise Forbidden(f"Property {attr} may not be removed.")
                if attr not in properties:
                    raise Conflict(f"Property {attr} does not exist.")
                del properties[attr]
            elif attr in MUTABLE:
                values[attr] = value
            elif op == "replace" and attr not in properties:
                raise Conflict(f"Property {attr} does not exist.")
            else:
                check_property_key(attr)
                properties[attr] = value
        for attr in ("disk_format", "container_format"):
            if values[attr] != getattr(image, attr) and image.status != ImageStatus.QUEUED:
                raise Forbidden(f"Attribute {attr} can be only replaced for a queued image.")
        fields = {
            "name": _check_name(values["name"]),
            "visibility": _check_visibility(values["visibility"], staff=staff, current=image.visibility),
            "protected": _check_bool(values["protected"], "protected"),
            "hidden": _check_bool(values["os_hidden"], "os_hidden"),
            "min_ram": _check_int(values["min_ram"], "min_ram"),
            "min_disk": _check_int(values["min_disk"], "min_disk"),
            "disk_format": _check_choice(values["disk_format"], DiskFormat, "disk_format"),
            "container_format": _check_choice(values["container_format"], ContainerFormat, "container_format"),
            "tags": _check_tags(values["tags"]),
            "properties": _check_properties(properties),
        }
        for column, value in fields.items():
            setattr(image, column, value)
        image.save(update_fields=[*fields, "updated_at"])
    return image


def delete_image(image):
    """Remove the image and, once that is committed, its data. A protected
    image is refused (403); an upload still running finds it gone (410)."""
    if image.protected:
        raise Forbidden(f"Image {image.pk} is protected and cannot be deleted.")
    image_id = image.pk
    with transaction.atomic():
        deleted, _ = Image.objects.filter(pk=image_id, protected=False).delete()
        if not deleted:
            if Image.objects.filter(pk=image_id).exists():
                raise Forbidden(f"Image {image_id} is protected and cannot be deleted.")
            raise NotFound(f"No image found with ID {image_id}")
        if image.owner_id is not None:
            usage_changed(image.owner)
        transaction.on_commit(lambda: get_storage().delete_image(image_id))


def deactivate_image(image):
    """active → deactivated (data downloads refused to non-operators); a
    deactivated image stays so."""
    _set_status(image, ImageStatus.ACTIVE, ImageStatus.DEACTIVATED, "deactivate")


def reactivate_image(image):
    _set_status(image, ImageStatus.DEACTIVATED, ImageStatus.ACTIVE, "reactivate")


def _set_status(image, source, target, verb):
    if Image.objects.filter(pk=image.pk, status__in=(source, target)).update(status=target,
                                                                             updated_at=timezone.now()):
        image.refresh_from_db()
        return image
    image.refresh_from_db(fields=["status"])
    raise Forbidden(f"Not allowed to {verb} image in status '{image.status}'.")


# --- Tags -----------------------------------------------------------------------------

def add_tag(image, tag):
    """Idempotent: adding a tag the image has changes nothing."""
    _check_tag(tag)
    with transaction.atomic():
        image = Image.objects.select_for_update().get(pk=image.pk)
        if tag not in image.tags:
            if len(image.tags) >= MAX_TAGS:
                raise RequestTooLarge(f"Maximum number of tags exceeded ({MAX_TAGS}).")
            image.tags = [*image.tags, tag]
            image.save(update_fields=["tags", "updated_at"])
    return image


def remove_tag(image, tag):
    with transaction.atomic():
        image = Image.objects.select_for_update().get(pk=image.pk)
        if tag not in image.tags:
            raise NotFound(f"Tag {tag} not found.")
        image.tags = [t for t in image.tags if t != tag]
        image.save(update_fields=["tags", "updated_at"])
    return image


# --- Members ----------------------------------------------------------------------------

def add_member(image, project_id):
    """Offer a shared image to another project (status ``pending``)."""
    if image.visibility != Visibility.SHARED:
        raise Forbidden("Only shared images have members.")
    if not isinstance(project_id, str) or not project_id:
        raise BadRequest("'member' must be a project id.")
    check_text(project_id, "member")
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        raise BadRequest(f"Project {project_id} does not exist.")
    try:
        with transaction.atomic():
            Image.objects.select_for_update().filter(pk=image.pk).values_list("pk", flat=True).first()
            if ImageMember.objects.filter(image=image).count() >= MAX_MEMBERS:
                raise RequestTooLarge(f"Maximum number of image members exceeded ({MAX_MEMBERS}).")
            if ImageMember.objects.filter(image=image, project=project).exists():
                raise Conflict(f"Member {project_id} already exists for image {image.pk}.")
            return ImageMember.objects.create(image=image, project=project)
    except IntegrityError:
        raise Conflict(f"Member {project_id} already exists for image {image.pk}.") from None


def set_member_status(member, status):
    """The member project accepts or rejects (or reconsiders) the image."""
    _check_choice(status, MemberStatus, "status", nullable=False)
    member.status = status
    member.save(update_fields=["status", "updated_at"])
    return member


def remove_member(member):
    member.delete()


# --- Data -----------------------------------------------------------------------------

def _capped(chunks, limit):
    total = 0
    while True:
        try:
            chunk = next(chunks)
        except StopIteration:
            return
        except ClientDisconnected:
            raise
        except OSError as exc:
            raise ClientDisconnected(str(exc)) from None
        total += len(chunk)
        if total > limit:
            raise RequestTooLarge(f"Image data is larger than the limit of {limit} bytes.")
        yield chunk


def upload_image(image, chunks, *, size=None):
    """Stream ``chunks`` (an iterator of bytes; nothing is held in memory)
    into the store: queued → saving → active, with the size, the md5
    ``checksum``, the sha512 ``os_hash_value`` and the ``virtual_size`` that
    qemu-img reports. ``size`` is the announced length, refused early when
    over MAX_IMAGE_SIZE."""
    if not image.disk_format or not image.container_format:
        raise BadRequest("Properties disk_format, container_format must be set prior to saving data.")
    if size is not None and size > MAX_IMAGE_SIZE:
        raise RequestTooLarge(f"Image data is {size} bytes; the limit is {MAX_IMAGE_SIZE}.")
    if not Image.objects.filter(pk=image.pk, status=ImageStatus.QUEUED).update(
            status=ImageStatus.SAVING, status_reason="", updated_at=timezone.now()):
        current = Image.objects.filter(pk=image.pk).values_list("status", flat=True).first()
        if current is None:
            raise NotFound(f"No image found with ID {image.pk}")
        raise Conflict(f"Image status transition from {current} to saving is not allowed")
    try:
        stored = get_storage().store_image(image.pk, _capped(iter(chunks), MAX_IMAGE_SIZE), image.disk_format,
                                           max_size=MAX_IMAGE_SIZE)
    except ImageFormatError as exc:
        _requeue(image, str(exc))
        raise BadRequest(str(exc)) from None
    except RequestTooLarge as exc:
        _requeue(image, str(exc.detail))
        raise
    except ClientDisconnected as exc:
        _requeue(image, f"The upload was interrupted: {exc}")
        raise BadRequest(f"Error reading the image data from the request: {exc}") from None
    except StorageError as exc:
        mark_failed(image.pk, exc)
        raise StoreUnavailable(f"Storing the image failed: {exc}") from None
    except BaseException as exc:
        mark_failed(image.pk, f"Internal error while storing the image ({type(exc).__name__}).")
        raise
    if not mark_stored(image.pk, stored):
        raise Gone(f"Image {image.pk} was deleted while its data was being uploaded.")
    image.refresh_from_db()
    return image


def _requeue(image, reason):
    """Back to queued with no data, so the upload can be retried."""
    Image.objects.filter(pk=image.pk, status=ImageStatus.SAVING).update(
        status=ImageStatus.QUEUED, status_reason=reason[:2000], updated_at=timezone.now())


def mark_stored(image_id, stored):
    """The store holds the image's data (an upload or a snapshot finished):
    queued/saving → active. Returns False when the image was deleted (or
    killed) meanwhile, in which case the data is removed again.

    When the store converted the data (RBD keeps every image raw, so that it
    can be cloned), the record describes what is stored, as Glance's image
    conversion does: ``disk_format`` becomes ``raw``, and the size and
    checksums are those of the raw bytes a download returns."""
    changes = {"status": ImageStatus.ACTIVE, "status_reason": "", "size": stored.size,
               "virtual_size": stored.virtual_size, "checksum": stored.checksum,
               "os_hash_algo": HASH_ALGO if stored.os_hash_value else None,
               "os_hash_value": stored.os_hash_value, "updated_at": timezone.now()}
    declared = Image.objects.filter(pk=image_id).values_list("disk_format", flat=True).first()
    if stored.disk_format == DiskFormat.RAW and stored.disk_format not in QEMU_FORMATS.get(declared, ()):
        changes["disk_format"] = DiskFormat.RAW
    updated = Image.objects.filter(pk=image_id, status__in=(ImageStatus.QUEUED, ImageStatus.SAVING)).update(
        **changes)
    if not updated:
        logger.info("image %s went away while its data was stored; removing the data", image_id)
        get_storage().delete_image(image_id)
    return bool(updated)


def mark_saving(image_id):
    """A snapshot started filling a queued image."""
    return bool(Image.objects.filter(pk=image_id, status=ImageStatus.QUEUED).update(
        status=ImageStatus.SAVING, updated_at=timezone.now()))


def mark_failed(image_id, reason):
    """Storing the data failed for a reason the user cannot fix: killed."""
    Image.objects.filter(pk=image_id, status__in=(ImageStatus.QUEUED, ImageStatus.SAVING)).update(
        status=ImageStatus.KILLED, status_reason=str(reason)[:2000], updated_at=timezone.now())


def image_data(image, *, staff=False):
    """The image's bytes as an iterator of chunks, or None while it has none
    (Glance answers 204 then). Deactivated images are for operators only."""
    if image.status == ImageStatus.DEACTIVATED and not staff:
        raise Forbidden("The requested image has been deactivated. Image data download is forbidden.")
    if not image.has_data:
        return None
    try:
        return get_storage().read_image(image.pk)
    except StorageError:
        logger.warning("image %s is %s but the store has no data for it", image.pk, image.status)
        return None


# --- Seeding ------------------------------------------------------------------------------

TINY_LINUX = {
    "name": "tiny-linux", "disk_format": DiskFormat.QCOW2, "container_format": ContainerFormat.BARE,
    "min_ram": 96, "properties": {"default_user": "dream", "os_distro": "busybox"},
}


def seed_tiny_linux(path):
    """Register the tiny guest image that ``scripts/build-guest-image`` writes
    (var/images/tiny-linux.qcow2) as the public, cloud-wide image
    ``tiny-linux``. Idempotent: an active image of that name is kept, and a
    queued one left by an interrupted run is filled rather than duplicated."""
    name = TINY_LINUX["name"]
    existing = Image.objects.filter(name=name, owner=None, visibility=Visibility.PUBLIC)
    image = existing.filter(status=ImageStatus.ACTIVE).first()
    if image is not None:
        if get_storage().has_image(image.pk):
            return image
        # The cloud moved to another store (file → rbd): put the bytes there again.
        Image.objects.filter(pk=image.pk).update(status=ImageStatus.QUEUED, disk_format=TINY_LINUX["disk_format"])
    image = existing.filter(status=ImageStatus.QUEUED).first() or create_image(
        project=None, visibility=Visibility.PUBLIC, staff=True, **TINY_LINUX)
    with open(path, "rb") as handle:
        return upload_image(image, iter(lambda: handle.read(UPLOAD_CHUNK_SIZE), b""))

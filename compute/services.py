"""Compute state changes: flavors and key pairs (instances come with the
compute issue). Views, API and admin call these and nothing lower."""

import base64
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.db import IntegrityError, transaction

from billing import quotas
from billing.services import usage_changed
from core.openstack.errors import BadRequest, Conflict

from .models import Flavor, FlavorAccess, KeyPair

MAX_NAME = 255


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
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise BadRequest(f"Invalid {field} {value!r}: an integer >= {minimum} is required.")
    if not isinstance(rxtx_factor, int | float) or isinstance(rxtx_factor, bool) or rxtx_factor <= 0:
        raise BadRequest("rxtx_factor must be a positive number.")
    if id is None or id == "auto":
        import uuid

        id = str(uuid.uuid4())
    if not isinstance(id, str) or not id.strip() or len(id) > 255:
        raise BadRequest("A flavor id is a non-blank string of at most 255 characters.")
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
        raise BadRequest(f"Flavor access not found for {flavor.id} / {project.id} combination.")


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
    except (ValueError, TypeError) as exc:
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


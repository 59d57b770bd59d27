"""Every state change in identity is one function here; the dashboard, the
Keystone API and the admin all call these."""

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password, make_password
from django.db import IntegrityError, transaction

from core.openstack.errors import Conflict

from .choices import Role
from .models import ApplicationCredential, Membership, Project

User = get_user_model()
# A real hash of nothing: checked when the user is unknown so that a wrong
# name costs the same time as a wrong password.
_DUMMY_HASH = None


def _check_nothing(secret):
    """Spend one hash check, as a real failed check would."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = make_password(secrets.token_hex(8))
    check_password(secret or "", _DUMMY_HASH)


class VerifiedPasswords:
    """Remembers recent *successful* password checks for a few minutes, so a
    script running one CLI command after another does not pay a full
    Argon2 check (~23 ms on 2 cores) on every token request.

    Entries are HMAC-SHA256(SECRET_KEY, user id + stored hash + password):
    no password is kept, a password change (new stored hash) misses at once,
    and failed checks are never cached, so guessing still pays full price.
    """

    def __init__(self, ttl=300, size=4096):
        self.ttl, self.size = ttl, size
        self._entries = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(user, password):
        from django.conf import settings

        message = f"{user.pk}\0{user.password}\0{password}".encode()
        return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).digest()

    def seen(self, user, password):
        key = self._key(user, password)
        with self._lock:
            expires = self._entries.get(key)
            if expires is None or expires < time.monotonic():
                self._entries.pop(key, None)
                return False
            return True

    def remember(self, user, password):
        with self._lock:
            self._entries[self._key(user, password)] = time.monotonic() + self.ttl
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


verified_passwords = VerifiedPasswords()


def authenticate_password(*, password, user_id=None, username=None):
    """The active user with that password, or None. A wrong user name costs
    the same hash check as a wrong password."""
    user = None
    if user_id:
        user = User.objects.filter(pk=user_id, is_active=True).first()
    elif username:
        user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        _check_nothing(password)
        return None
    if verified_passwords.seen(user, password or ""):
        return user
    if not user.check_password(password or ""):
        return None
    verified_passwords.remember(user, password or "")
    return user


@transaction.atomic
def create_project(*, name, description=""):
    """A new tenant, with its ``default`` security group."""
    from network.services import default_security_group

    if Project.objects.filter(name=name).exists():
        raise Conflict(f"A project named {name!r} already exists.")
    with transaction.atomic():
        project = Project.objects.create(name=name, description=description)
        default_security_group(project)
    return project


def set_membership(*, user, project, role=Role.MEMBER):
    membership, _ = Membership.objects.update_or_create(user=user, project=project, defaults={"role": role})
    return membership


def remove_membership(*, user, project):
    return Membership.objects.filter(user=user, project=project).delete()[0] > 0


def create_application_credential(*, user, project, name, secret=None, description="", expires_at=None,
                                  role=None, unrestricted=False):
    """Returns ``(credential, secret)``; the secret is only ever returned here."""
    membership = Membership.objects.filter(user=user, project=project).first()
    if membership is None:
        raise Conflict("You have no role on that project.")
    secret = secret or secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            credential = ApplicationCredential.objects.create(
                user=user, project=project, name=name, description=description, expires_at=expires_at,
                secret_hash=make_password(secret), role=role or membership.role, unrestricted=unrestricted,
            )
    except IntegrityError:
        raise Conflict(f"An application credential named {name!r} already exists.") from None
    return credential, secret


def delete_application_credential(credential):
    """Deleting it cascades to the tokens issued from it: they stop working."""
    credential.delete()


def authenticate_application_credential(*, secret, credential_id=None, name=None, user=None):
    query = ApplicationCredential.objects.select_related("user", "project")
    if credential_id:
        credential = query.filter(pk=credential_id).first()
    elif name and user is not None:
        credential = query.filter(name=name, user=user).first()
    else:
        credential = None
    if credential is None or credential.expired or not credential.user.is_active:
        _check_nothing(secret)
        return None
    return credential if check_password(secret or "", credential.secret_hash) else None


def create_user(*, username, password, email="", is_staff=False):
    """A new active account. Operators are staff and superusers, as
    ``seed_demo`` makes them, so they can also run Django admin."""
    if User.objects.filter(username=username).exists():
        raise Conflict(f"A user named {username!r} already exists.")
    return User.objects.create_user(username=username, password=password, email=email,
                                    is_staff=is_staff, is_superuser=is_staff)


def set_staff(user, is_staff):
    """Make a user an operator or take it back (staff and superuser move together)."""
    user.is_staff = user.is_superuser = bool(is_staff)
    user.save(update_fields=["is_staff", "is_superuser"])
    return user

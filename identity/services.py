"""Every state change in identity is one function here; the dashboard, the
Keystone API and the admin all call these."""

import secrets

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


def authenticate_password(*, password, user_id=None, username=None):
    """The active user with that password, or None. Constant work either way."""
    user = None
    if user_id:
        user = User.objects.filter(pk=user_id, is_active=True).first()
    elif username:
        user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        _check_nothing(password)
        return None
    return user if user.check_password(password or "") else None


@transaction.atomic
def create_project(*, name, description=""):
    """A new tenant; other apps hook their per-project defaults (the default
    security group, …) onto ``project_created``."""
    if Project.objects.filter(name=name).exists():
        raise Conflict(f"A project named {name!r} already exists.")
    project = Project.objects.create(name=name, description=description)
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

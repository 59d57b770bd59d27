"""Issuing, validating and revoking Keystone tokens.

A token id is 32 random bytes; the database keeps only its SHA-256, so a
database leak hands out no usable token.
"""

import secrets
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from .choices import ROLE_RANK, Role
from .models import Membership, Token, hash_secret


def issue(user, project=None, methods=("password",), application_credential=None, expires_at=None):
    """Create a token; returns ``(key, token)``. The key is shown once.

    ``expires_at`` caps the lifetime: a token made from another token (a
    rescope) never outlives it, or rescoping would renew a token forever
    without proving the user's identity again (as in Keystone)."""
    key = "gAAAA" + secrets.token_urlsafe(32)  # a Fernet-like look the clients don't care about
    now = timezone.now()
    expires = now + timedelta(seconds=settings.TOKEN_TTL_SECONDS)
    if application_credential is not None and application_credential.expires_at:
        expires = min(expires, application_credential.expires_at)
    if expires_at is not None:
        expires = min(expires, expires_at)
    token = Token.objects.create(
        key_hash=hash_secret(key),
        user=user,
        project=project,
        application_credential=application_credential,
        methods=list(methods),
        issued_at=now,
        expires_at=expires,
    )
    attach_membership(token)
    return key, token


def validate(key):
    """The live token for ``key`` with ``.membership`` set, or None when the
    token is unknown, expired, revoked, or its user, project or role is gone."""
    if not key or len(key) > 256:
        return None
    token = (
        Token.objects.valid()
        .select_related("user", "project", "application_credential")
        .filter(key_hash=hash_secret(key), user__is_active=True)
        .first()
    )
    if token is None:
        return None
    if token.project_id and not token.project.enabled:
        return None
    attach_membership(token)
    if token.project_id and token.membership is None:
        return None  # role assignment removed since issue: the token dies with it
    return token


def attach_membership(token):
    """Set ``token.membership`` to the effective role on its project; an
    application credential never grants more than its own role."""
    token.membership = None
    if not token.project_id:
        return
    membership = Membership.objects.filter(user_id=token.user_id, project_id=token.project_id).first()
    if membership is not None and token.application_credential_id:
        cred_role = Role(token.application_credential.role)
        if ROLE_RANK[cred_role] < ROLE_RANK[Role(membership.role)]:
            membership.role = cred_role
    token.membership = membership


def revoke(key):
    """Revoke one token; returns whether it existed and was live."""
    return Token.objects.valid().filter(key_hash=hash_secret(key)).update(revoked=True) > 0


def purge_expired():
    """Delete tokens expired for a day (kept a while for audit)."""
    return Token.objects.filter(expires_at__lt=timezone.now() - timedelta(days=1)).delete()[0]

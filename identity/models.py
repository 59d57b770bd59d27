"""Keystone's data: users, projects, role memberships, tokens and
application credentials. Secrets (passwords, token ids, credential secrets)
are stored only as hashes."""

import hashlib
import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone

from .choices import ROLE_RANK, Role

DEFAULT_DOMAIN_ID = "default"
DEFAULT_DOMAIN_NAME = "Default"


def new_id():
    return uuid.uuid4().hex


def hash_secret(secret):
    """Token ids and similar high-entropy secrets: a fast hash is enough."""
    return hashlib.sha256(secret.encode()).hexdigest()


class User(AbstractUser):
    """A person or robot account. Operators are staff users."""

    id = models.CharField(primary_key=True, max_length=32, default=new_id, editable=False)
    default_project = models.ForeignKey(
        "identity.Project", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        ordering = ("username",)


class Project(models.Model):
    """A tenant: every cloud resource belongs to exactly one project."""

    id = models.CharField(primary_key=True, max_length=32, default=new_id, editable=False)
    name = models.CharField(max_length=64, unique=True)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name",)

    def __str__(self):
        return self.name


class MembershipQuerySet(models.QuerySet):
    def active(self):
        return self.filter(project__enabled=True, user__is_active=True)


class Membership(models.Model):
    """A user's role on a project (Keystone's role assignment)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        ordering = ("project__name", "user__username")
        constraints = [models.UniqueConstraint(fields=("user", "project"), name="membership_unique_user_project")]

    def __str__(self):
        return f"{self.user} is {self.role} of {self.project}"

    def allows(self, role):
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]


class ApplicationCredential(models.Model):
    """A secret a user hands to automation, bound to one project and the
    user's role there. Deleting it revokes every token issued from it."""

    id = models.CharField(primary_key=True, max_length=32, default=new_id, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="application_credentials")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="application_credentials")
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    secret_hash = models.CharField(max_length=255)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    unrestricted = models.BooleanField(default=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name",)
        constraints = [models.UniqueConstraint(fields=("user", "name"), name="appcred_unique_user_name")]

    def __str__(self):
        return self.name

    @property
    def expired(self):
        return self.expires_at is not None and self.expires_at <= timezone.now()


class TokenQuerySet(models.QuerySet):
    def valid(self):
        return self.filter(revoked=False, expires_at__gt=timezone.now())


class Token(models.Model):
    """An issued Keystone token. Only the SHA-256 of the token id is kept."""

    key_hash = models.CharField(max_length=64, unique=True)
    audit_id = models.CharField(max_length=32, default=new_id)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tokens")
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE, related_name="tokens")
    application_credential = models.ForeignKey(
        ApplicationCredential, null=True, blank=True, on_delete=models.CASCADE, related_name="tokens"
    )
    methods = models.JSONField(default=list)
    issued_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked = models.BooleanField(default=False)

    objects = TokenQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=("expires_at",), name="token_expires_idx")]

    def __str__(self):
        return f"token {self.audit_id} for {self.user}"

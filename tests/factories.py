"""Small factories: real rows through the real services."""

import itertools

from django.contrib.auth import get_user_model

from compute.catalog import seed_flavors
from identity import services, tokens
from identity.choices import Role

_seq = itertools.count(1)


def make_project(name=None):
    return services.create_project(name=name or f"project-{next(_seq)}")


def make_user(project=None, role=Role.MEMBER, *, username=None, password="secret-pass", staff=False):
    user = get_user_model().objects.create_user(
        username=username or f"user-{next(_seq)}", password=password, is_staff=staff, is_superuser=staff)
    if project is not None:
        services.set_membership(user=user, project=project, role=role)
    return user


def token_for(user, project):
    key, _ = tokens.issue(user, project)
    return key


def flavors():
    seed_flavors()

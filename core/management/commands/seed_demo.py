"""Seed what `make run` and `make allinone` show: the flavors, an operator
`admin`, a user `demo` who is a member of project `demo`. Idempotent."""

import os
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from compute.catalog import seed_flavors
from identity import services
from identity.choices import Role
from identity.models import Project


class Command(BaseCommand):
    help = "Create the demo users, project and DreamCompute's flavors (idempotent)."

    def handle(self, *args, **options):
        self.seed_identity()
        # After the transaction: storing the image writes files, which a
        # rollback could not take back.
        image = Path(settings.GUEST_IMAGE)
        if image.exists():
            from compute.images import seed_tiny_linux

            seed_tiny_linux(image)
            self.stdout.write("image tiny-linux ready")
        else:
            self.stdout.write("no guest image yet (make guest-image builds it)")

    @transaction.atomic
    def seed_identity(self):
        User = get_user_model()
        projects = {}
        for name, description in (("admin", "Operators' project"), ("demo", "Demo project")):
            projects[name] = Project.objects.filter(name=name).first() or services.create_project(
                name=name, description=description)
        for username, env_name, default, staff, project, role in (
            ("admin", "ADMIN_PASSWORD", "admin", True, "admin", Role.ADMIN),
            ("demo", "DEMO_PASSWORD", "demo", False, "demo", Role.MEMBER),
        ):
            user = User.objects.filter(username=username).first()
            password = os.environ.get(env_name)
            if user is None:
                user = User(username=username, is_staff=staff, is_superuser=staff)
                user.set_password(password or default)
                user.default_project = projects[project]
                user.save()
            elif password:
                user.set_password(password)
                user.save(update_fields=["password"])
            services.set_membership(user=user, project=projects[project], role=role)
        admin = User.objects.get(username="admin")
        services.set_membership(user=admin, project=projects["demo"], role=Role.ADMIN)
        created = seed_flavors()
        from network.services import seed_public_network

        seed_public_network(projects["admin"])
        self.stdout.write(f"demo data ready ({created} flavors created)")

"""Create the shared external network ``public`` (owned by project ``admin``)."""

from django.core.management.base import BaseCommand, CommandError

from identity.models import Project
from network.services import seed_public_network


class Command(BaseCommand):
    help = "Create the shared external network 'public' with its floating-IP pool (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--project", default="admin", help="Owner project (default: admin).")

    def handle(self, *args, **options):
        project = Project.objects.filter(name=options["project"]).first()
        if project is None:
            raise CommandError(f"No project named {options['project']!r}.")
        network = seed_public_network(project)
        self.stdout.write(f"network public ready ({network.pk})")

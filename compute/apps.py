from django.apps import AppConfig


class ComputeConfig(AppConfig):
    name = "compute"
    verbose_name = "Compute"

    def ready(self):
        from billing import quotas

        from .models import Image, KeyPair

        quotas.register_counter(
            "key_pairs", lambda project, user: KeyPair.objects.filter(user=user).count() if user else 0)
        quotas.register_counter("images", lambda project, user: Image.objects.for_project(project).count())
        from . import services, signals  # noqa: F401 - register quota counters and worker hooks

from django.apps import AppConfig


class ComputeConfig(AppConfig):
    name = "compute"
    verbose_name = "Compute"

    def ready(self):
        from billing import quotas

        from .models import KeyPair

        quotas.register_counter("key_pairs", lambda project, user: KeyPair.objects.filter(user=user).count() if user else 0)

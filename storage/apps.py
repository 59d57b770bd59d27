from django.apps import AppConfig


class StorageConfig(AppConfig):
    name = "storage"
    verbose_name = "Block storage"

    def ready(self):
        from . import services

        services.register_quota_counters()

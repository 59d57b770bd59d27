from django.db import transaction

from .tasks import publish_usage


def usage_changed(project):
    """Refresh the project's quota charts in open browsers once this
    transaction commits (rendered by a worker, pushed over the websocket)."""
    project_id = project.pk
    transaction.on_commit(lambda: publish_usage.delay(project_id))

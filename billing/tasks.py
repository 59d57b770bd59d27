from celery import shared_task
from django.template.loader import render_to_string

from core import events
from identity.models import Project

from . import quotas


@shared_task(soft_time_limit=30, ignore_result=True)
def publish_usage(project_id):
    """Push the Overview's usage data to the project's browsers."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return
    usage = quotas.summary(project)
    html = render_to_string("dashboard/partials/quota_usage.html", {"usage": usage})
    events.send_now(project_id, {"kind": "swap", "id": "quota-usage", "html": html})

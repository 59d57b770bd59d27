"""Server-rendered partials shared by the pages and the live-status socket.

A page includes the partial when it renders; the socket pushes the same
template when the data changes, so the two can never disagree.
"""

from django.template.loader import render_to_string

from billing import quotas
from identity.models import Project

QUOTA_USAGE = "dashboard/partials/quota_usage.html"


def quota_usage(project, user):
    """Limit and usage of every resource for the Overview: the project's,
    plus the user's own per-user ones (key pairs)."""
    return quotas.summary(project, user) if project is not None else []


def render_quota_usage(project_id, user):
    project = Project.objects.filter(pk=project_id).first()
    return render_to_string(QUOTA_USAGE, {"usage": quota_usage(project, user)})


# Partials whose content depends on who is looking, by element id. The worker
# renders them once per project and without a user (billing.tasks.publish_usage),
# so per-user numbers such as key pairs would be missing; the socket re-renders
# them for its own user instead of forwarding the project-wide HTML.
PER_USER = {"quota-usage": render_quota_usage}

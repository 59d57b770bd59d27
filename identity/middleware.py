"""Puts the caller's current project and role on every dashboard request."""

from .models import Membership

SESSION_KEY = "project_id"


def current_membership(request):
    """The membership of the session's current project, falling back to the
    user's first membership (and remembering it). None for anonymous users or
    users without any project."""
    user = request.user
    if not user.is_authenticated:
        return None
    memberships = Membership.objects.active().filter(user=user).select_related("project")
    wanted = request.session.get(SESSION_KEY)
    membership = None
    if wanted:
        membership = memberships.filter(project_id=wanted).first()
    if membership is None:
        membership = memberships.order_by("project__name").first()
        if membership is not None:
            request.session[SESSION_KEY] = membership.project_id
    return membership


class CurrentProjectMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.membership = current_membership(request)
        request.project = request.membership.project if request.membership else None
        return self.get_response(request)

from identity.models import Membership


def navigation(request):
    """The project switcher's choices for the layout (one query, only for
    signed-in dashboard pages)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or request.path.startswith(("/admin/", "/api/")):
        return {}
    memberships = Membership.objects.active().filter(user=user).select_related("project").order_by("project__name")
    return {"memberships": memberships, "current_project": getattr(request, "project", None)}

from rest_framework.permissions import SAFE_METHODS, BasePermission

from .choices import Role


class ProjectRolePermission(BasePermission):
    """Any role may read inside its project; changing needs member or admin.

    Views that are not project-scoped (identity, version documents) set
    ``project_scoped = False``; views for operators set ``admin_only``.
    """

    message = "You are not authorized to perform the requested action."

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return False
        if getattr(view, "admin_only", False) or (
            request.method not in SAFE_METHODS and getattr(view, "admin_only_writes", False)
        ):
            return request.user.is_staff
        if not getattr(view, "project_scoped", True):
            return True
        membership = getattr(request, "membership", None)
        if membership is None:
            return False
        if request.method in SAFE_METHODS:
            return True
        return membership.allows(Role.MEMBER)

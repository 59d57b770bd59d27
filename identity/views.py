from django.contrib.auth import logout
from django.contrib.auth.views import LoginView
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from .middleware import SESSION_KEY
from .models import Membership


class DashboardLoginView(LoginView):
    """Django's login: the session key is rotated on login, ``next=`` is
    honoured only for our own host, and an anonymous visit creates no
    server-side session (CSRF lives in its cookie)."""

    template_name = "identity/login.html"
    redirect_authenticated_user = True


@require_POST
def logout_view(request):
    logout(request)
    return redirect("login")


@require_POST
def switch_project(request):
    """Make another of the user's projects current. A project the user is
    not a member of is refused without saying whether it exists."""
    if not request.user.is_authenticated:
        return redirect("login")
    project_id = request.POST.get("project", "")
    if not Membership.objects.active().filter(user=request.user, project_id=project_id).exists():
        return HttpResponseBadRequest("You are not a member of that project.")
    request.session[SESSION_KEY] = project_id
    target = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        target = "/"
    return redirect(target)

"""The dashboard's pages.

Views read with the ORM (scoped to the current project or user) and change
things only through the apps' services. A service's user-readable refusal
(BadRequest, Conflict, OverQuota: every ``APIError``) becomes a form error,
never a 500. Project panels need the member role to change anything, as the
API's ProjectRolePermission does; the Admin and Identity panels are for
operators (staff) only.
"""

from contextlib import contextmanager
from functools import wraps

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_tables2 import RequestConfig

from billing import quotas
from billing.choices import QuotaResource
from billing.models import ProjectQuota
from billing.services import usage_changed
from compute import services as compute
from compute.models import Flavor, FlavorAccess, KeyPair
from core.openstack.errors import APIError
from identity import services as identity
from identity.choices import Role
from identity.models import Membership, Project

from . import forms, tables
from .partials import quota_usage

User = get_user_model()


# --- Helpers ----------------------------------------------------------------------

def member_required(view):
    """Changing a project's things needs the member role there; readers (and
    users without a project) get 403 for the form and for the POST alike."""

    @wraps(view)
    @login_required
    def wrapped(request, *args, **kwargs):
        if not can_change(request):
            raise PermissionDenied("Your role on this project does not allow changes.")
        return view(request, *args, **kwargs)

    return wrapped


def staff_required(view):
    """Operators only; everybody else gets 403 (the panels are not secret,
    their data is)."""

    @wraps(view)
    @login_required
    def wrapped(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("Only operators may use this panel.")
        return view(request, *args, **kwargs)

    return wrapped


def can_change(request):
    membership = request.membership
    return membership is not None and membership.allows(Role.MEMBER)


@contextmanager
def service_errors(form):
    """Attach a service's refusal to ``form`` as a non-field error. Code after
    the failing call inside the block does not run; the view then renders
    the form again."""
    try:
        yield
    except APIError as exc:
        form.add_error(None, str(exc.detail))


def attach_error(form, message, hints=()):
    """Put a service's refusal on the field it is about, else on the form.
    ``hints`` are ``(words, field)`` pairs, the first whose words the message
    contains wins; a quota refusal is about the whole request, never one field."""
    lowered = message.lower()
    if not lowered.startswith("quota exceeded"):
        for words, field in hints:
            if words in lowered and field in form.fields:
                form.add_error(field, message)
                return
    form.add_error(None, message)


def service_form_errors(form, call, hints=()):
    """Run ``call``; a service's refusal lands on ``form``, on the field it
    names (``attach_error``). Returns the call's result, or None when it was
    refused."""
    try:
        return call()
    except APIError as exc:
        attach_error(form, str(exc.detail), hints)
        return None


MAX_PER_PAGE = 200


def render_table(request, template, table, context=None):
    """The page, or only the table when htmx asks for it (sort and page links
    are boosted and target the table's element)."""
    RequestConfig(request).configure(table)
    if table.page and table.paginator.per_page > MAX_PER_PAGE:
        # ?per_page= comes from the request: never let it make a page unbounded.
        table.paginate(page=1, per_page=MAX_PER_PAGE)
    context = {**(context or {}), "table": table}
    htmx = request.htmx
    if htmx and htmx.target == table.dom_id and not htmx.history_restore_request:
        return render(request, "dashboard/partials/table.html", context)
    return render(request, template, context)


def confirm(request, *, title, message, action, cancel_url, next_url=None):
    """The confirmation page shown before a POST that destroys something."""
    return render(request, "dashboard/confirm.html", {
        "title": title, "message": message, "action": action, "cancel_url": cancel_url, "next_url": next_url})


def attempt(request, call, success):
    """Run ``call`` (one service call) and say how it went: ``success`` (a
    message, or a function of the call's result that makes one), or the
    service's refusal (an ``APIError``) as an error. Returns whether it worked."""
    try:
        result = call()
    except APIError as exc:
        messages.error(request, str(exc.detail))
        return False
    messages.success(request, success(result) if callable(success) else success)
    return True


def confirmed(request, *, title, message, back, call, success, refused=None):
    """A destructive action behind a confirmation page: GET shows the page
    (Cancel goes ``back``); POST ``attempt``s ``call`` and goes ``back``, or
    to ``refused`` (default ``back``) when the service refused."""
    if request.method != "POST":
        return confirm(request, title=title, message=message, action=request.path, cancel_url=back)
    if attempt(request, call, success):
        return redirect(back)
    return redirect(refused or back)


def safe_next(request, default):
    """The POSTed ``next`` when it points back into this site, else ``default``."""
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return default


# --- Project: Overview -----------------------------------------------------------

@login_required
@require_GET
def overview(request):
    return render(request, "dashboard/overview.html", {"usage": quota_usage(request.project, request.user)})


# --- Project: Flavors --------------------------------------------------------------

def project_flavors(request):
    """What this project may launch: public flavors and private ones shared
    with it, never the operators' view of everything, never disabled ones."""
    return Flavor.objects.visible_to(request.project).filter(disabled=False)


@login_required
@require_GET
def flavor_list(request):
    return render_table(request, "dashboard/flavors/list.html", tables.FlavorTable(project_flavors(request)))


@login_required
@require_GET
def flavor_detail(request, flavor_id):
    # A private flavor not shared with this project answers 404, not 403:
    # its existence is none of the project's business.
    flavor = get_object_or_404(Flavor.objects.visible_to(request.project), pk=flavor_id)
    return render(request, "dashboard/flavors/detail.html", {"flavor": flavor})


# --- Project: Key pairs ------------------------------------------------------------

@login_required
@require_GET
def keypair_list(request):
    table = tables.KeyPairTable(KeyPair.objects.filter(user=request.user),
                                exclude=() if can_change(request) else ("actions",))
    return render_table(request, "dashboard/keypairs/list.html", table, {"can_change": can_change(request)})


@never_cache
@member_required
@require_http_methods(["GET", "POST"])
def keypair_create(request):
    """Generate a key pair. The private key goes out once, in this response
    (never cached, never stored); the server keeps only the public half."""
    form = forms.KeyPairCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with service_errors(form):
            keypair, private_key = compute.create_keypair(
                user=request.user, project=request.project, name=form.cleaned_data["name"])
            return render(request, "dashboard/keypairs/created.html",
                          {"keypair": keypair, "private_key": private_key})
    return render(request, "dashboard/keypairs/form.html", {"form": form, "mode": "create"})


@member_required
@require_http_methods(["GET", "POST"])
def keypair_import(request):
    form = forms.KeyPairImportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with service_errors(form):
            keypair, _ = compute.create_keypair(user=request.user, project=request.project,
                                                name=form.cleaned_data["name"],
                                                public_key=form.cleaned_data["public_key"])
            messages.success(request, f"Key pair {keypair.name} imported.")
            return redirect("dashboard:keypairs")
    return render(request, "dashboard/keypairs/form.html", {"form": form, "mode": "import"})


@member_required
@require_http_methods(["GET", "POST"])
def keypair_delete(request, keypair_id):
    keypair = get_object_or_404(KeyPair, pk=keypair_id, user=request.user)
    return confirmed(request, title="Delete key pair", message=f"Delete the key pair {keypair.name}?",
                     back=reverse("dashboard:keypairs"), call=lambda: compute.delete_keypair(keypair, request.project),
                     success=f"Key pair {keypair.name} deleted.")


# --- Admin: Flavors ----------------------------------------------------------------

@staff_required
@require_GET
def admin_flavor_list(request):
    flavors = Flavor.objects.prefetch_related(
        Prefetch("access", queryset=FlavorAccess.objects.select_related("project").order_by("project__name")))
    return render_table(request, "dashboard/admin/flavor_list.html", tables.AdminFlavorTable(flavors))


@staff_required
@require_http_methods(["GET", "POST"])
def admin_flavor_create(request):
    form = forms.FlavorForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        with service_errors(form):
            flavor = compute.create_flavor(
                id=data["id"] or None, name=data["name"], description=data["description"], vcpus=data["vcpus"],
                ram=data["ram"], disk=data["disk"], ephemeral=data["ephemeral"], swap=data["swap"],
                rxtx_factor=data["rxtx_factor"], is_public=data["is_public"])
            messages.success(request, f"Flavor {flavor.name} created.")
            if not flavor.is_public:
                return redirect("dashboard:admin-flavor-access", flavor_id=flavor.pk)
            return redirect("dashboard:admin-flavors")
    return render(request, "dashboard/admin/flavor_form.html", {"form": form})


@staff_required
@require_http_methods(["GET", "POST"])
def admin_flavor_delete(request, flavor_id):
    flavor = get_object_or_404(Flavor, pk=flavor_id)
    return confirmed(request, title="Delete flavor",
                     message=f"Delete the flavor {flavor.name}? Running instances keep their sizes.",
                     back=reverse("dashboard:admin-flavors"), call=lambda: compute.delete_flavor(flavor),
                     success=f"Flavor {flavor.name} deleted.")


@staff_required
@require_http_methods(["GET", "POST"])
def admin_flavor_access(request, flavor_id):
    """The projects a private flavor is shared with; POST adds one."""
    flavor = get_object_or_404(Flavor, pk=flavor_id)
    form = forms.FlavorAccessForm(request.POST or None, flavor=flavor)
    if request.method == "POST" and form.is_valid():
        project = form.cleaned_data["project"]
        with service_errors(form):
            compute.add_flavor_access(flavor, project)
            messages.success(request, f"Project {project.name} may now use {flavor.name}.")
            return redirect("dashboard:admin-flavor-access", flavor_id=flavor.pk)
    access = flavor.access.select_related("project").order_by("project__name")
    return render(request, "dashboard/admin/flavor_access.html", {"flavor": flavor, "access": access, "form": form})


@staff_required
@require_http_methods(["GET", "POST"])
def admin_flavor_access_remove(request, flavor_id, project_id):
    flavor = get_object_or_404(Flavor, pk=flavor_id)
    project = get_object_or_404(Project, pk=project_id)
    return confirmed(request, title="Remove flavor access",
                     message=f"Stop offering {flavor.name} to project {project.name}?",
                     back=reverse("dashboard:admin-flavor-access", kwargs={"flavor_id": flavor.pk}),
                     call=lambda: compute.remove_flavor_access(flavor, project),
                     success=f"Project {project.name} may no longer use {flavor.name}.")


# --- Identity: Projects ------------------------------------------------------------

@staff_required
@require_GET
def project_list(request):
    projects = Project.objects.annotate(member_count=Count("memberships"))
    return render_table(request, "dashboard/identity/project_list.html", tables.ProjectTable(projects))


@staff_required
@require_http_methods(["GET", "POST"])
def project_create(request):
    form = forms.ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with service_errors(form):
            project = identity.create_project(**form.cleaned_data)
            messages.success(request, f"Project {project.name} created.")
            return redirect("dashboard:project-detail", project_id=project.pk)
    return render(request, "dashboard/identity/project_form.html", {"form": form})


@staff_required
@require_http_methods(["GET", "POST"])
def project_detail(request, project_id):
    """A project's members, with a form to add one (POST)."""
    project = get_object_or_404(Project, pk=project_id)
    form = forms.ProjectMemberForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.cleaned_data["user"]
        identity.set_membership(user=user, project=project, role=form.cleaned_data["role"])
        messages.success(request, f"{user.username} is now {form.cleaned_data['role']} of {project.name}.")
        return redirect("dashboard:project-detail", project_id=project.pk)
    memberships = project.memberships.select_related("user").order_by("user__username")
    return render(request, "dashboard/identity/project_detail.html",
                  {"project": project, "memberships": memberships, "form": form, "roles": Role.choices})


# --- Identity: Users ---------------------------------------------------------------

@staff_required
@require_GET
def user_list(request):
    users = User.objects.prefetch_related(
        Prefetch("memberships", queryset=Membership.objects.select_related("project").order_by("project__name")))
    return render_table(request, "dashboard/identity/user_list.html", tables.UserTable(users))


@staff_required
@require_http_methods(["GET", "POST"])
def user_create(request):
    form = forms.UserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        with service_errors(form):
            user = identity.create_user(username=data["username"], password=data["password"],
                                        email=data["email"], is_staff=data["is_staff"])
            messages.success(request, f"User {user.username} created.")
            return redirect("dashboard:users")
    return render(request, "dashboard/identity/user_form.html", {"form": form})


@staff_required
@require_POST
def user_staff(request, user_id):
    user = get_object_or_404(User, pk=user_id)
    make_staff = request.POST.get("is_staff") == "1"
    if user == request.user and not make_staff:
        # Otherwise the last operator could lock everybody out of these panels.
        messages.error(request, "You cannot take your own operator rights away.")
    else:
        identity.set_staff(user, make_staff)
        messages.success(request, f"{user.username} is {'now' if make_staff else 'no longer'} an operator.")
    return redirect("dashboard:users")


# --- Identity: Memberships ---------------------------------------------------------

@staff_required
@require_http_methods(["GET", "POST"])
def membership_list(request):
    """Every role assignment; POST adds (or changes) one."""
    form = forms.MembershipForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        identity.set_membership(user=data["user"], project=data["project"], role=data["role"])
        messages.success(request, f"{data['user'].username} is now {data['role']} of {data['project'].name}.")
        return redirect("dashboard:memberships")
    table = tables.MembershipTable(Membership.objects.select_related("user", "project"))
    return render_table(request, "dashboard/identity/membership_list.html", table,
                        {"form": form, "roles": Role.choices})


@staff_required
@require_POST
def membership_role(request, membership_id):
    membership = get_object_or_404(Membership.objects.select_related("user", "project"), pk=membership_id)
    form = forms.RoleForm(request.POST)
    if form.is_valid():
        identity.set_membership(user=membership.user, project=membership.project, role=form.cleaned_data["role"])
        messages.success(request, f"{membership.user.username} is now {form.cleaned_data['role']} "
                                  f"of {membership.project.name}.")
    else:
        messages.error(request, "Choose one of the roles reader, member or admin.")
    return redirect(safe_next(request, reverse("dashboard:memberships")))


@staff_required
@require_http_methods(["GET", "POST"])
def membership_remove(request, membership_id):
    membership = get_object_or_404(Membership.objects.select_related("user", "project"), pk=membership_id)
    back = request.GET.get("next") or reverse("dashboard:memberships")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse("dashboard:memberships")
    if request.method == "POST":
        identity.remove_membership(user=membership.user, project=membership.project)
        messages.success(request, f"{membership.user.username} was removed from {membership.project.name}.")
        return redirect(safe_next(request, reverse("dashboard:memberships")))
    return confirm(request, title="Remove member",
                   message=f"Remove {membership.user.username} from project {membership.project.name}?",
                   action=request.path, cancel_url=back, next_url=back)


# --- Identity: Quotas --------------------------------------------------------------

@staff_required
@require_http_methods(["GET", "POST"])
def quota_defaults(request):
    """The default limits (POST changes them) and the projects to pick from."""
    form = forms.QuotaLimitsForm(request.POST or None, limits=quotas.defaults())
    if request.method == "POST" and form.is_valid():
        changed = form.changed_limits()
        with transaction.atomic():
            for resource, limit in changed.items():
                quotas.set_limit(None, resource, limit)
        messages.success(request, f"{len(changed)} default limit(s) changed." if changed else "Nothing changed.")
        return redirect("dashboard:quotas")
    projects = Project.objects.annotate(override_count=Count("quotas"))
    return render(request, "dashboard/identity/quota_defaults.html", {"form": form, "projects": projects})


@staff_required
@require_http_methods(["GET", "POST"])
def quota_project(request, project_id):
    """One project's limits (POST sets overrides) beside its usage."""
    project = get_object_or_404(Project, pk=project_id)
    defaults = quotas.defaults()
    form = forms.QuotaLimitsForm(request.POST or None, limits=quotas.limits_for(project))
    if request.method == "POST" and form.is_valid():
        changed = form.changed_limits()
        with transaction.atomic():
            for resource, limit in changed.items():
                quotas.set_limit(project, resource, limit)
            if changed:
                usage_changed(project)  # the project's open Overviews redraw their charts
        messages.success(request, f"{len(changed)} limit(s) of {project.name} changed." if changed
                         else "Nothing changed.")
        return redirect("dashboard:quota-project", project_id=project.pk)
    # Per-user resources (key pairs) have a per-project limit but no project-wide usage.
    resources = [r for r in QuotaResource if r not in quotas.PER_USER]
    used = quotas.usage_for(project, resources=resources)
    overrides = set(ProjectQuota.objects.filter(project=project).values_list("resource", flat=True))
    rows = [{"resource": r, "field": form[r.value], "default": defaults[r], "override": r.value in overrides,
             "usage": quotas.QuotaUsage(r, form.limits[r], used[r]) if r in used else None}
            for r in QuotaResource]
    return render(request, "dashboard/identity/quota_project.html", {"project": project, "form": form, "rows": rows})

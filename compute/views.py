"""Compute's dashboard panels: Instances, Images, and the operators'
Hypervisors and All Instances.

As everywhere in the dashboard (dashboard/views.py), views read with the ORM
scoped to the current project and change things only through the services
(compute/services.py, compute/images.py, compute/hosts.py). A service's
refusal (every ``APIError``) becomes a form error or a message, never a 500.
Another project's instance or image answers 404: its existence is none of
this project's business.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, OuterRef, Q, Subquery, Sum
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from billing import quotas
from billing.choices import QuotaResource
from core.openstack.errors import APIError
from dashboard.views import (
    attempt,
    can_change,
    confirmed,
    member_required,
    render_table,
    safe_next,
    service_errors,
    staff_required,
)

from . import forms, hosts, images, services, tables
from .console import console_output
from .models import Host, Image, Instance
from .models.images import ImageStatus
from .states import ACTIONS, VMState


def instance_interfaces(instance):
    """The instance's ports with their network, addresses, floating IPs and
    groups, in a fixed number of queries. Only ports of the instance's own
    project count (device_id is writable through the port API)."""
    from network.models import Port

    return list(Port.objects.filter(project=instance.project_id, device_owner=Port.COMPUTE, device_id=instance.pk)
                .select_related("network").prefetch_related("fixed_ips", "floating_ips", "security_groups")
                .order_by("created_at", "pk"))

def attached_volumes(instance):
    """The instance's volume attachments with their volumes, in device order
    (one query). Only volumes of the instance's own project can be attached."""
    from storage.models import VolumeAttachment

    return list(VolumeAttachment.objects.filter(instance=instance, volume__project=instance.project_id)
                .select_related("volume").order_by("device"))


# Console lines the page shows before the websocket takes over (and without JavaScript).
CONSOLE_LINES = 200
# The quotas the launch dialog draws, with what one instance of a flavor adds.
LAUNCH_QUOTAS = ((QuotaResource.INSTANCES, None), (QuotaResource.CORES, "vcpus"), (QuotaResource.RAM, "ram"))


def text_param(request, name):
    # PostgreSQL refuses NUL characters even in a comparison: drop them.
    return request.GET.get(name, "").replace("\x00", "").strip()


def id_list(values, limit):
    return [value for value in values[:limit] if "\x00" not in value]


def redirect_after(request, to):
    """Where a successful POST goes: a full redirect, or htmx's client-side
    one when the form was posted by htmx (the launch dialog, the uploads)."""
    if request.htmx:
        return HttpResponseClientRedirect(to)
    return redirect(to)


def is_partial(request):
    """htmx asked for the form alone (the dialog), not the whole page."""
    return bool(request.htmx) and not request.htmx.boosted and not request.htmx.history_restore_request


# --- Instances --------------------------------------------------------------------

def with_image_name(queryset):
    # The image is kept by id (it may be deleted while its instances live),
    # so its name comes with one correlated subquery, not one query per row.
    return queryset.annotate(image_name=Subquery(Image.objects.filter(pk=OuterRef("image_ref")).values("name")[:1]))


def project_instances(request):
    return Instance.objects.for_project(request.project).live()


def get_instance(request, instance_id):
    return get_object_or_404(project_instances(request), pk=instance_id)


@login_required
@require_GET
def instance_list(request):
    instances = with_image_name(project_instances(request))
    query = text_param(request, "q")
    if query:
        instances = instances.filter(name__icontains=query)
    editable = can_change(request)
    table = tables.InstanceTable(instances, exclude=() if editable else ("select", "actions"))
    return render_table(request, "compute/instances/list.html", table, {"can_change": editable, "query": query})


@login_required
@require_GET
def instance_actions(request, instance_id):
    """The actions of one instance, as the row and the detail page show
    them: instances.js fetches it when a pushed status swap changes the
    instance's state (a reaction to the push, never a poll)."""
    instance = get_instance(request, instance_id)
    compact = request.GET.get("compact") == "1"
    actions = tables.allowed_actions(instance, request.user) if can_change(request) else []
    # The row's actions come back to the list, the detail page's to the detail page.
    back = reverse("compute:instances") if compact else reverse("compute:instance-detail", args=[instance.pk])
    return render(request, "compute/instances/actions.html",
                  {"instance": instance, "actions": actions, "compact": compact, "next": back,
                   "can_change": can_change(request)})


MAX_STATUS_IDS = 200


@login_required
@require_GET
def instance_statuses(request):
    """Fresh status partials of the given instances (?id=…&id=…). A page
    asks once each time its socket (re)opens, because events published
    before it joined the project's group never reached it: a build can
    finish between rendering the page and opening the socket. Deleted
    instances are included, so their rows can show DELETED."""
    ids = id_list(request.GET.getlist("id"), MAX_STATUS_IDS)
    instances = Instance.objects.for_project(request.project).filter(pk__in=ids)
    return render(request, "compute/instances/statuses.html", {"instances": instances})


def quota_bars(request, flavor, count):
    """Usage before and after launching ``count`` × ``flavor`` for the
    dialog's bars (launch.js redraws "after" when the choice changes)."""
    usage = {q.resource: q for q in quotas.summary(request.project)}
    bars = []
    for resource, size in LAUNCH_QUOTAS:
        q = usage[resource]
        per_instance = 1 if size is None else (getattr(flavor, size) if flavor else 0)
        after = q.used + per_instance * count
        bars.append({"resource": resource.value, "label": resource.label, "used": q.used, "limit": q.limit,
                     "unlimited": q.unlimited, "after": after, "size": size or "",
                     "over": not q.unlimited and after > q.limit})
    return bars


@member_required
@require_http_methods(["GET", "POST"])
def instance_launch(request):
    form = forms.LaunchForm(request.POST or None, project=request.project, user=request.user)
    if request.method == "POST" and form.is_valid():
        requested = form.cleaned_data["count"]
        with service_errors(form):
            launched = services.launch(project=request.project, user=request.user, **form.launch_arguments())
            names = ", ".join(i.name for i in launched)
            if len(launched) < requested:
                messages.warning(request, f"Launched {len(launched)} of {requested} instances (the quota allows "
                                          f"no more): {names}.")
            else:
                messages.success(request, f"Launched {names}.")
            return redirect_after(request, reverse("compute:instances"))
    context = {"form": form, "bars": quota_bars(request, form.selected_flavor(), form.selected_count()),
               "in_modal": is_partial(request)}
    if is_partial(request):
        return render(request, "compute/instances/launch_form.html", context)
    return render(request, "compute/instances/launch.html", context)


@login_required
@require_GET
def instance_detail(request, instance_id):
    instance = get_object_or_404(project_instances(request).select_related("host", "user"), pk=instance_id)
    image = Image.objects.filter(pk=instance.image_ref).only("id", "name").first() if instance.image_ref else None
    fault = instance.faults.first() if instance.vm_state == VMState.ERROR else None
    tab = request.GET.get("tab")
    editable = can_change(request)
    return render(request, "compute/instances/detail.html", {
        "instance": instance, "image": image, "fault": fault, "interfaces": instance_interfaces(instance),
        "attachments": attached_volumes(instance),
        "tab": tab if tab in ("console", "log") else "overview",
        "actions": tables.allowed_actions(instance, request.user) if editable else [],
        "action_log": instance.actions.select_related("user"),
        "console": console_output(instance, CONSOLE_LINES), "console_lines": CONSOLE_LINES,
        "can_change": editable,
    })


@member_required
@require_POST
def instance_action(request, instance_id, action):
    """Start, stop, reboot, pause … one instance: one service call."""
    if action not in tables.POST_ACTIONS:
        raise Http404("No such action.")
    instance = get_instance(request, instance_id)
    attempt(request, lambda: services.begin_action(instance, action, user=request.user),
            f"{ACTIONS[action].label}: {instance.name}.")
    return redirect(safe_next(request, reverse("compute:instances")))


@member_required
@require_http_methods(["GET", "POST"])
def instance_snapshot(request, instance_id):
    instance = get_instance(request, instance_id)
    form = forms.SnapshotForm(request.POST or None, initial={"name": f"{instance.name}-snapshot"})
    if request.method == "POST" and form.is_valid():
        with service_errors(form):
            image = services.snapshot(instance, name=form.cleaned_data["name"], user=request.user)
            messages.success(request, f"Snapshot {image.name} of {instance.name} is being created.")
            return redirect("compute:images")
    return render(request, "compute/instances/snapshot.html", {"form": form, "instance": instance})


@member_required
@require_http_methods(["GET", "POST"])
def instance_delete(request, instance_id):
    instance = get_instance(request, instance_id)
    return confirmed(request, title="Delete instance",
                     message=f"Delete the instance {instance.name}? Its disk is destroyed and cannot be recovered.",
                     back=reverse("compute:instances"),
                     call=lambda: services.delete_instance(instance, user=request.user),
                     success=f"Deleting {instance.name}.")


BULK_ACTIONS = {"stop": "Stop", "delete": "Delete"}
MAX_BULK = 200


@member_required
@require_POST
def instance_bulk(request):
    """Stop or delete the checked rows, each through the service; one
    instance's refusal does not stop the others and is reported by name.
    Delete asks for confirmation first."""
    action = request.POST.get("action")
    back = reverse("compute:instances")
    if action not in BULK_ACTIONS:
        messages.error(request, "Choose Stop or Delete.")
        return redirect(back)
    chosen = list(project_instances(request).filter(pk__in=id_list(request.POST.getlist("select"), MAX_BULK)))
    if not chosen:
        messages.warning(request, "No instances were selected.")
        return redirect(back)
    if action == "delete" and request.POST.get("confirmed") != "1":
        return render(request, "compute/instances/bulk_confirm.html",
                      {"instances": chosen, "action": action, "label": BULK_ACTIONS[action], "cancel_url": back})
    done = []
    for instance in chosen:
        try:
            if action == "delete":
                services.delete_instance(instance, user=request.user)
            else:
                services.begin_action(instance, action, user=request.user)
            done.append(instance.name)
        except APIError as exc:
            messages.error(request, f"{instance.name}: {exc.detail}")
    if done:
        verb = "Deleting" if action == "delete" else "Stopping"
        messages.success(request, f"{verb} {', '.join(done)}.")
    return redirect(back)


# --- Images --------------------------------------------------------------------------

def visible_images(request):
    project = request.project
    hidden_elsewhere = Q(hidden=True) & ~Q(owner=project) if project is not None else Q(hidden=True)
    return Image.objects.visible_to(project).exclude(hidden_elsewhere)


def may_manage(request, image):
    """Members change their project's images; operators any image."""
    if request.user.is_staff:
        return True
    return can_change(request) and image.owner_id is not None and image.owner_id == request.project.pk


def managed_image(request, image_id):
    image = get_object_or_404(visible_images(request).select_related("owner"), pk=image_id)
    if not may_manage(request, image):
        raise PermissionDenied("You may not change this image.")
    return image


@login_required
@require_GET
def image_list(request):
    table = tables.ImageTable(visible_images(request).select_related("owner"),
                              exclude=() if can_change(request) else ("actions",))
    return render_table(request, "compute/images/list.html", table, {"can_change": can_change(request)})


def store_upload(request, image, upload):
    """Stream the uploaded file into the image store (Django has already
    spooled a large upload to a temporary file; it is read in chunks)."""
    try:
        images.upload_image(image, upload.chunks(images.UPLOAD_CHUNK_SIZE), size=upload.size)
    except APIError as exc:
        messages.error(request, f"The upload of {image} failed: {exc.detail} The image is kept; upload again.")
        return False
    messages.success(request, f"Image {image} uploaded ({upload.size} bytes).")
    return True


@member_required
@require_http_methods(["GET", "POST"])
def image_create(request):
    form = forms.ImageCreateForm(request.POST or None, request.FILES or None, staff=request.user.is_staff)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        with service_errors(form):
            image = images.create_image(
                project=request.project, name=data["name"], visibility=data["visibility"],
                disk_format=data["disk_format"], container_format=data["container_format"],
                min_disk=data["min_disk"], min_ram=data["min_ram"], staff=request.user.is_staff)
            if data["file"] is not None:
                store_upload(request, image, data["file"])
            else:
                messages.success(request, f"Image {image} created; upload its file next.")
            return redirect_after(request, reverse("compute:images"))
    template = "compute/images/upload_form.html" if is_partial(request) else "compute/images/form.html"
    return render(request, template, {"form": form, "mode": "create"})


@member_required
@require_http_methods(["GET", "POST"])
def image_upload(request, image_id):
    image = managed_image(request, image_id)
    if image.status != ImageStatus.QUEUED:
        messages.error(request, f"Image {image} is {image.status}: only a queued image takes an upload.")
        return redirect_after(request, reverse("compute:images"))
    form = forms.ImageUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        store_upload(request, image, form.cleaned_data["file"])
        return redirect_after(request, reverse("compute:images"))
    template = "compute/images/upload_form.html" if is_partial(request) else "compute/images/form.html"
    return render(request, template, {"form": form, "mode": "upload", "image": image})


@member_required
@require_http_methods(["GET", "POST"])
def image_delete(request, image_id):
    image = managed_image(request, image_id)
    return confirmed(request, title="Delete image", message=f"Delete the image {image}? Its data is removed.",
                     back=reverse("compute:images"), call=lambda: images.delete_image(image),
                     success=f"Image {image} deleted.")


# --- Admin: Hypervisors and All Instances ------------------------------------------------

@staff_required
@require_GET
def hypervisor_list(request):
    live = Q(instances__vm_state__in=[s for s in VMState if s != VMState.DELETED])
    # Usage is summed in the same query as the hosts (one join), for any number of hosts.
    with_usage = Host.objects.annotate(
        vcpus_used=Sum("instances__vcpus", filter=live), memory_used=Sum("instances__memory_mib", filter=live),
        disk_used=Sum("instances__root_gb", filter=live), instance_count=Count("instances", filter=live))
    return render_table(request, "compute/admin/hypervisors.html", tables.HypervisorTable(with_usage))


@staff_required
@require_POST
def hypervisor_set_enabled(request, host_id, enable):
    """Take a host out of scheduling (with a reason) or put it back."""
    host = get_object_or_404(Host, pk=host_id)
    form = forms.HostDisableForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    hosts.set_enabled(host, enable, reason)
    messages.success(request, f"Host {host.name} is {'enabled' if enable else 'disabled'}.")
    return redirect("compute:admin-hypervisors")


@staff_required
@require_GET
def admin_instance_list(request):
    instances = with_image_name(Instance.objects.live().select_related("project", "user", "host"))
    query = text_param(request, "q")
    if query:
        instances = instances.filter(Q(name__icontains=query) | Q(project__name__icontains=query))
    return render_table(request, "compute/admin/instances.html", tables.AdminInstanceTable(instances),
                        {"query": query})

"""The Volumes panels: Volumes, Volume Snapshots, and the operators'
Storage (capacity per backend).

As everywhere in the dashboard (dashboard/views.py), views read with the ORM
scoped to the current project and change things only through
storage/services.py. A service's refusal (every ``APIError``: a bad size, a
status that does not allow the step, a dependency, over quota) becomes a
form error or a message, never a 500. Another project's volume, snapshot or
instance answers 404.

Statuses are live: the status cells are the partials storage/events.py
pushes; volumes.js fetches a row's actions again when a push changes its
status, and asks for fresh statuses each time the socket (re)opens.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Sum
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from billing import quotas
from billing.choices import QuotaResource
from dashboard.views import can_change, confirmed, member_required, render_table, service_form_errors, staff_required

from . import forms, services, tables
from .drivers import get_storage
from .drivers.base import StorageError
from .models import Volume, VolumeSnapshot, VolumeType
from .states import VolumeStatus


def page_context(request, **extra):
    return {"can_change": can_change(request), **extra}


def quota_bars(project, adds):
    """Usage before and after a change for the forms' quota panel; ``adds``
    is ``{resource: amount}`` (volumes.js redraws it as the size changes)."""
    usage = {q.resource: q for q in quotas.summary(project)} if project is not None else {}
    bars = []
    for resource, amount in adds.items():
        q = usage.get(resource)
        if q is None:
            continue
        after = q.used + amount
        bars.append({"resource": resource.value, "label": resource.label, "used": q.used, "limit": q.limit,
                     "unlimited": q.unlimited, "after": after, "per": "size" if resource == QuotaResource.GIGABYTES
                     else "one", "over": not q.unlimited and after > q.limit})
    return bars


# --- Volumes ---------------------------------------------------------------------------

def project_volumes(request):
    return (Volume.objects.for_project(request.project)
            .select_related("volume_type", "attachment__instance"))


def project_volume(request, volume_id):
    return get_object_or_404(project_volumes(request), pk=volume_id)


@login_required
@require_GET
def volume_list(request):
    table = tables.VolumeTable(project_volumes(request), exclude=() if can_change(request) else ("actions",))
    return render_table(request, "storage/volumes/list.html", table, page_context(request))


@login_required
@require_GET
def volume_detail(request, volume_id):
    volume = project_volume(request, volume_id)
    snapshots = volume.snapshots.annotate(dependents=Count("dependent_volumes")).order_by("-created_at")
    source = None
    if volume.depends_on_id or volume.snapshot_id:
        source = VolumeSnapshot.objects.for_project(request.project).filter(pk=volume.snapshot_id).first()
    return render(request, "storage/volumes/detail.html", page_context(
        request, volume=volume, snapshots=snapshots, source_snapshot=source,
        actions=tables.volume_actions(volume) if can_change(request) else []))


@login_required
@require_GET
def volume_actions(request, volume_id):
    """A volume's actions cell and its "attached to" cell (out of band), as
    the list shows them: volumes.js fetches it when a pushed status swap
    changes the volume's status (a reaction to the push, never a poll)."""
    volume = project_volume(request, volume_id)
    return render(request, "storage/volumes/row_update.html", page_context(
        request, record=volume, actions=tables.volume_actions(volume) if can_change(request) else []))


MAX_STATUS_IDS = 200


def id_list(values):
    return [value for value in values[:MAX_STATUS_IDS] if "\x00" not in value]


@login_required
@require_GET
def statuses(request):
    """Fresh status partials of the given volumes and snapshots
    (?volume=…&snapshot=…). A page asks once each time its socket
    (re)opens: events published before it joined the project's group never
    reached it. Ids that are not (or no longer) the project's come back
    as deleted, which tells nothing about another project's rows."""
    volume_ids = id_list(request.GET.getlist("volume"))
    snapshot_ids = id_list(request.GET.getlist("snapshot"))
    volumes = {v.pk: v for v in Volume.objects.for_project(request.project).filter(pk__in=volume_ids)}
    snapshots = {s.pk: s for s in VolumeSnapshot.objects.for_project(request.project).filter(pk__in=snapshot_ids)}
    return render(request, "storage/statuses.html", {
        "volumes": [volumes.get(pk) or Volume(pk=pk) for pk in dict.fromkeys(volume_ids)],
        "gone_volumes": {pk for pk in volume_ids if pk not in volumes},
        "snapshots": [snapshots.get(pk) or VolumeSnapshot(pk=pk) for pk in dict.fromkeys(snapshot_ids)],
        "gone_snapshots": {pk for pk in snapshot_ids if pk not in snapshots},
    })


@member_required
@require_http_methods(["GET", "POST"])
def volume_create(request):
    """From nothing, an image, a snapshot or another volume; the quota cost
    (volumes and gigabytes, before and after) beside the form. GET
    ?source_type=snapshot&snapshot=<id> (the snapshot row's "Create volume")
    preselects the source."""
    initial = {k: v for k, v in request.GET.items() if k in ("source_type", "image", "snapshot", "source_volume")}
    form = forms.VolumeCreateForm(request.POST or None, initial=initial, project=request.project,
                                  staff=request.user.is_staff)
    if request.method == "POST" and form.is_valid():
        volume = service_form_errors(form, lambda: services.create_volume(
            project=request.project, user=request.user, staff=request.user.is_staff, **form.create_arguments()),
            forms.FIELD_HINTS)
        if volume is not None:
            messages.success(request, f"Volume {volume} is being created.")
            return redirect("storage:volumes")
    bars = quota_bars(request.project, {QuotaResource.VOLUMES: 1, QuotaResource.GIGABYTES: form.selected_size()})
    return render(request, "storage/volumes/form.html", page_context(request, form=form, bars=bars))


def submitted(request, form, call, success):
    """On a valid POST, call the service: a redirect to the list with
    ``success(result)`` as the message, or None when there was nothing to
    do or the service refused (its refusal is then on ``form``)."""
    if request.method == "POST" and form.is_valid():
        result = service_form_errors(form, call, forms.FIELD_HINTS)
        if result is not None:
            messages.success(request, success(result))
            return redirect("storage:volumes")
    return None


def int_or_zero(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


@member_required
@require_http_methods(["GET", "POST"])
def volume_extend(request, volume_id):
    volume = project_volume(request, volume_id)
    form = forms.VolumeExtendForm(request.POST or None, initial={"new_size": volume.size + 1})
    done = submitted(request, form, lambda: services.extend_volume(volume, form.cleaned_data["new_size"]),
                     lambda _: f"Volume {volume} is being extended to {form.cleaned_data['new_size']} GiB.")
    if done:
        return done
    grow = max(0, int_or_zero(form["new_size"].value()) - volume.size)
    return render(request, "storage/volumes/extend.html", page_context(
        request, form=form, volume=volume, bars=quota_bars(request.project, {QuotaResource.GIGABYTES: grow})))


@member_required
@require_http_methods(["GET", "POST"])
def volume_attach(request, volume_id):
    volume = project_volume(request, volume_id)
    form = forms.VolumeAttachForm(request.POST or None, project=request.project)
    done = submitted(request, form, lambda: services.attach_volume(
        project=request.project, volume=volume, instance=form.cleaned_data["instance"],
        device=form.cleaned_data["device"] or None, user=request.user),
        lambda _: f"Attaching volume {volume} to {form.cleaned_data['instance'].name}.")
    return done or render(request, "storage/volumes/attach.html", page_context(request, form=form, volume=volume))


@member_required
@require_http_methods(["GET", "POST"])
def volume_detach(request, volume_id):
    volume = project_volume(request, volume_id)
    back = reverse("storage:volumes")
    attachment = getattr(volume, "attachment", None)
    if attachment is None:
        messages.error(request, f"Volume {volume} is not attached to an instance.")
        return redirect(back)
    instance = attachment.instance
    return confirmed(request, title="Detach volume",
                     message=f"Detach the volume {volume} from {instance.name} ({attachment.device})? "
                             "Unmount it in the guest first.", back=back,
                     call=lambda: services.detach_volume(project=request.project, volume=volume, instance=instance,
                                                         user=request.user),
                     success=f"Detaching volume {volume} from {instance.name}.")


@member_required
@require_http_methods(["GET", "POST"])
def volume_snapshot(request, volume_id):
    """A snapshot of an available volume or, forced as Horizon does, of one in use."""
    volume = project_volume(request, volume_id)
    form = forms.VolumeSnapshotForm(request.POST or None, initial={"name": f"{volume.name or volume.pk}-snapshot"})
    done = submitted(request, form, lambda: services.create_snapshot(
        volume, user=request.user, name=form.cleaned_data["name"], description=form.cleaned_data["description"],
        force=volume.status == VolumeStatus.IN_USE),
        lambda snapshot: f"Snapshot {snapshot} of volume {volume} is being created.")
    if done:
        return done
    bars = quota_bars(request.project, {QuotaResource.SNAPSHOTS: 1, QuotaResource.GIGABYTES: volume.size})
    return render(request, "storage/volumes/snapshot.html", page_context(
        request, form=form, volume=volume, bars=bars))


@member_required
@require_http_methods(["GET", "POST"])
def volume_upload(request, volume_id):
    volume = project_volume(request, volume_id)
    form = forms.VolumeUploadForm(request.POST or None, initial={"image_name": f"{volume.name or volume.pk}-image"})
    done = submitted(request, form, lambda: services.upload_to_image(
        volume, image_name=form.cleaned_data["image_name"], disk_format=form.cleaned_data["disk_format"],
        force=volume.status == VolumeStatus.IN_USE),
        lambda result: f"Volume {volume} is being uploaded to the image {result[1]}.")
    return done or render(request, "storage/volumes/upload.html", page_context(request, form=form, volume=volume))


@member_required
@require_http_methods(["GET", "POST"])
def volume_delete(request, volume_id):
    volume = project_volume(request, volume_id)
    return confirmed(request, title="Delete volume",
                     message=f"Delete the volume {volume}? Its data is destroyed and cannot be recovered.",
                     back=reverse("storage:volumes"), call=lambda: services.delete_volume(volume),
                     success=f"Deleting volume {volume}.")


# --- Volume snapshots ------------------------------------------------------------------

def project_snapshots(request):
    return VolumeSnapshot.objects.for_project(request.project).select_related("volume")


@login_required
@require_GET
def snapshot_list(request):
    snapshots = project_snapshots(request).annotate(dependents=Count("dependent_volumes"))
    table = tables.SnapshotTable(snapshots, exclude=() if can_change(request) else ("actions",))
    return render_table(request, "storage/snapshots/list.html", table, page_context(request))


@login_required
@require_GET
def snapshot_actions(request, snapshot_id):
    snapshot = get_object_or_404(project_snapshots(request).annotate(dependents=Count("dependent_volumes")),
                                 pk=snapshot_id)
    return render(request, "storage/snapshots/actions_cell.html", page_context(
        request, record=snapshot, actions=tables.snapshot_actions(snapshot) if can_change(request) else []))


@member_required
@require_http_methods(["GET", "POST"])
def snapshot_delete(request, snapshot_id):
    snapshot = get_object_or_404(project_snapshots(request), pk=snapshot_id)
    return confirmed(request, title="Delete volume snapshot", message=f"Delete the volume snapshot {snapshot}?",
                     back=reverse("storage:snapshots"), call=lambda: services.delete_snapshot(snapshot),
                     success=f"Deleting snapshot {snapshot}.")


# --- Admin: Storage ---------------------------------------------------------------------

@staff_required
@require_GET
def admin_storage(request):
    """Each backend the volume types name, with the driver's capacity report
    and what the volumes of its types hold. Only ``default`` (the configured
    STORAGE_BACKEND) has a driver here; a report that fails is shown, not
    raised."""
    types = list(VolumeType.objects.annotate(volume_count=Count("volumes"), allocated=Sum("volumes__size"))
                 .order_by("name"))
    backends = {"default": []}
    for volume_type in types:
        backends.setdefault(volume_type.backend_name, []).append(volume_type)
    rows = []
    for name, members in backends.items():
        row = {"name": name, "types": members, "volumes": sum(t.volume_count for t in members),
               "allocated": sum(t.allocated or 0 for t in members), "capacity": None, "error": ""}
        if name == "default":
            try:
                row["capacity"] = get_storage().capacity()
            except (StorageError, OSError) as exc:
                row["error"] = str(exc) or type(exc).__name__
        else:
            row["error"] = "No driver is configured for this backend."
        rows.append(row)
    return render(request, "storage/admin/storage.html", {"backends": rows})

"""Live events for volumes and snapshots: the status partials the pages
render, swapped in place (and, when the row is gone, a ``deleted`` flag)."""

from django.template.loader import render_to_string


def volume_event(volume, deleted=False):
    html = render_to_string("storage/partials/volume_status.html", {"volume": volume, "deleted": deleted})
    return {"kind": "swap", "id": f"volume-status-{volume.pk}", "html": html,
            "volume": {"id": volume.pk, "status": "deleted" if deleted else volume.status, "size": volume.size,
                       "reason": volume.status_reason}}


def snapshot_event(snapshot, deleted=False):
    html = render_to_string("storage/partials/snapshot_status.html", {"snapshot": snapshot, "deleted": deleted})
    return {"kind": "swap", "id": f"snapshot-status-{snapshot.pk}", "html": html,
            "snapshot": {"id": snapshot.pk, "status": "deleted" if deleted else snapshot.status,
                         "reason": snapshot.status_reason}}

"""The Volumes panels' django-tables2 tables: volumes and volume snapshots.

The status cells are exactly the partials storage/events.py pushes
(storage/partials/*_status.html), so a pushed swap lands on their element.
Row actions are offered only where the status allows them, by the same
tables the services check (storage.states): Horizon's ``allowed()``, as
data. The views hand the tables querysets that already carry what the rows
show (type, attachment and instance joined), so a page costs the same
queries for ten rows as for a thousand.
"""

import django_tables2 as tables

from dashboard.tables import Table

from .states import CLONE_SOURCE, SNAPSHOT_DELETABLE, SNAPSHOT_SOURCE_FORCE, VOLUME_ACTIONS, SnapshotStatus

EMPTY = "—"
ACTIONS = {"td": {"class": "text-end text-nowrap"}}


def volume_actions(volume):
    """The names of the row actions ``volume``'s status allows now (the
    services refuse the others with a message anyway)."""
    status = volume.status
    # A reverse one-to-one: the views join it (select_related), so this costs no query.
    attached = getattr(volume, "attachment", None) is not None
    allowed = []
    if status in VOLUME_ACTIONS["extend"].allowed:
        allowed.append("extend")
    if status in VOLUME_ACTIONS["reserve"].allowed and not attached:
        allowed.append("attach")
    if status in VOLUME_ACTIONS["begin_detach"].allowed:
        allowed.append("detach")
    if status in SNAPSHOT_SOURCE_FORCE:
        allowed.append("snapshot")
    if status in CLONE_SOURCE:
        allowed.append("clone")
    if status in VOLUME_ACTIONS["upload_force"].allowed:
        allowed.append("upload")
    if status in VOLUME_ACTIONS["delete"].allowed and not attached:
        allowed.append("delete")
    return allowed


def snapshot_actions(snapshot):
    allowed = []
    if snapshot.status == SnapshotStatus.AVAILABLE:
        allowed.append("create_volume")
    if snapshot.status in SNAPSHOT_DELETABLE:
        allowed.append("delete")
    return allowed


class VolumeTable(Table):
    dom_id = "volume-table"
    name = tables.TemplateColumn(template_name="storage/volumes/name_cell.html", order_by=("name", "id"))
    description = tables.Column(default=EMPTY, orderable=False)
    size = tables.Column(verbose_name="Size", attrs={"td": {"class": "text-end text-nowrap"},
                                                       "th": {"class": "text-end"}})
    status = tables.TemplateColumn(template_name="storage/volumes/status_cell.html")
    volume_type = tables.Column(verbose_name="Type", order_by=("volume_type__name",))
    attached = tables.TemplateColumn(template_name="storage/volumes/attachment_cell.html",
                                     verbose_name="Attached to", orderable=False)
    bootable = tables.BooleanColumn()
    actions = tables.TemplateColumn(
        template_name="storage/volumes/actions_cell.html", verbose_name="", orderable=False, attrs=ACTIONS,
        extra_context=lambda record, table: {"actions": volume_actions(record)})

    class Meta(Table.Meta):
        per_page = 20
        empty_text = "No volumes. Create one, then attach it to an instance."
        row_attrs = {"data-volume-id": lambda record: record.pk}

    def render_size(self, value):
        return f"{value} GiB"


class SnapshotTable(Table):
    dom_id = "snapshot-table"
    name = tables.TemplateColumn(template_name="storage/snapshots/name_cell.html", order_by=("name", "id"))
    description = tables.Column(default=EMPTY, orderable=False)
    size = tables.Column(verbose_name="Size", attrs={"td": {"class": "text-end text-nowrap"},
                                                       "th": {"class": "text-end"}})
    status = tables.TemplateColumn(template_name="storage/snapshots/status_cell.html")
    volume = tables.TemplateColumn(template_name="storage/snapshots/volume_cell.html", verbose_name="Volume",
                                   order_by=("volume__name",))
    dependents = tables.Column(verbose_name="Volumes from it", attrs={"td": {"class": "text-end"}},
                               orderable=False)
    actions = tables.TemplateColumn(
        template_name="storage/snapshots/actions_cell.html", verbose_name="", orderable=False, attrs=ACTIONS,
        extra_context=lambda record, table: {"actions": snapshot_actions(record)})

    class Meta(Table.Meta):
        per_page = 20
        empty_text = "No volume snapshots. Take one from the Volumes panel."
        row_attrs = {"data-snapshot-id": lambda record: record.pk}

    def render_size(self, value):
        return f"{value} GiB"

"""Compute's django-tables2 tables: instances, images, hypervisors.

The status cell is exactly compute/partials/instance_status.html, the
partial compute/events.py pushes, so a pushed swap lands on its element.
Row actions come from compute.states.ACTIONS: an action is offered only
where the instance's state allows it (Horizon's ``allowed()``, as data).
"""

import django_tables2 as tables
from django.template.defaultfilters import filesizeformat
from django.utils.timesince import timesince

from dashboard.tables import Table, mebibytes

from .states import ACTIONS

# The row actions, in menu order; each is a POST to the instance-action view
# except snapshot and delete, which ask first (a name, a confirmation).
ROW_ACTIONS = ("start", "stop", "reboot", "reboot_hard", "pause", "unpause", "suspend", "resume",
               "confirm_resize", "revert_resize", "snapshot", "delete")
POST_ACTIONS = frozenset(ROW_ACTIONS) - {"snapshot", "delete"}
# Actions that destroy or interrupt: drawn in red.
DANGER_ACTIONS = frozenset({"reboot_hard", "delete"})


def allowed_actions(instance, user):
    """The row actions ``user`` may start on ``instance`` in its state now."""
    if instance.locked and not user.is_staff:
        return []
    allowed = []
    for name in ROW_ACTIONS:
        spec = ACTIONS[name]
        if instance.vm_state in spec.allowed and (not spec.needs_idle or instance.task_state is None):
            if name == "delete" and instance.task_state == "deleting":
                continue
            allowed.append(spec)
    return allowed


STATUS_CELL = "compute/instances/status_cell.html"
EMPTY = "—"


class InstanceTable(Table):
    dom_id = "instance-table"
    select = tables.CheckBoxColumn(
        accessor="pk", attrs={"input": {"form": "instance-bulk-form", "class": "form-check-input",
                                        "aria-label": "Select"},
                              "th__input": {"class": "form-check-input", "data-select-all": "instance-bulk-form",
                                            "aria-label": "Select all"}})
    name = tables.TemplateColumn(template_name="compute/instances/name_cell.html", order_by=("name",))
    image_name = tables.Column(verbose_name="Image", default=EMPTY, orderable=False)
    addresses = tables.Column(verbose_name="IP addresses", empty_values=(), orderable=False)
    flavor_name = tables.Column(verbose_name="Flavor")
    status = tables.TemplateColumn(template_name=STATUS_CELL, order_by=("vm_state", "task_state"))
    created_at = tables.Column(verbose_name="Age", order_by=("-created_at",))
    actions = tables.TemplateColumn(
        template_name="compute/instances/actions_cell.html", verbose_name="", orderable=False,
        attrs={"td": {"class": "text-end text-nowrap"}},
        extra_context=lambda record, table: {"actions": allowed_actions(record, table.request.user)})

    class Meta(Table.Meta):
        per_page = 20
        empty_text = "No instances. Launch one to get started."
        row_attrs = {"data-instance-id": lambda record: record.pk}

    def render_addresses(self, record):
        addresses = self._page_addresses().get(record.pk)
        if not addresses:
            return EMPTY
        return ", ".join(entry["addr"] for entries in addresses.values() for entry in entries)

    def _page_addresses(self):
        """Every address of the page's instances, in one query for the page."""
        if getattr(self, "_addresses", None) is None:
            from network.services import addresses_for

            rows = [row.record for row in self.page.object_list] if hasattr(self, "page") else list(self.data)
            self._addresses = addresses_for(rows)
        return self._addresses

    def render_created_at(self, value):
        return timesince(value)


class AdminInstanceTable(Table):
    dom_id = "admin-instance-table"
    project = tables.Column(order_by=("project__name",))
    name = tables.Column()
    user = tables.Column(verbose_name="Owner", order_by=("user__username",))
    host = tables.Column(default=EMPTY, order_by=("host__name",))
    image_name = tables.Column(verbose_name="Image", default=EMPTY, orderable=False)
    flavor_name = tables.Column(verbose_name="Flavor")
    status = tables.TemplateColumn(template_name=STATUS_CELL, order_by=("vm_state", "task_state"))
    created_at = tables.Column(verbose_name="Age", order_by=("-created_at",))

    class Meta(Table.Meta):
        per_page = 50
        empty_text = "No instances in any project."

    def render_created_at(self, value):
        return timesince(value)


class ImageTable(Table):
    dom_id = "image-table"
    name = tables.Column(default=EMPTY)
    status = tables.TemplateColumn(template_name="compute/images/status_cell.html")
    visibility = tables.Column()
    disk_format = tables.Column(verbose_name="Format", default=EMPTY)
    size = tables.Column(default=EMPTY, attrs={"td": {"class": "text-end"}, "th": {"class": "text-end"}})
    owner = tables.Column(verbose_name="Owner", default="(cloud)", order_by=("owner__name",))
    actions = tables.TemplateColumn(template_name="compute/images/actions_cell.html", verbose_name="",
                                    orderable=False, attrs={"td": {"class": "text-end text-nowrap"}})

    class Meta(Table.Meta):
        empty_text = "No images."

    def render_size(self, value):
        return filesizeformat(value)


class HypervisorTable(Table):
    dom_id = "hypervisor-table"
    name = tables.Column()
    state = tables.TemplateColumn(template_name="compute/admin/host_state_cell.html", orderable=False)
    enabled = tables.TemplateColumn(template_name="compute/admin/host_enabled_cell.html")
    availability_zone = tables.Column(verbose_name="Zone")
    vcpus = tables.Column(verbose_name="vCPUs used / total", attrs={"td": {"class": "text-end"}})
    memory_mib = tables.Column(verbose_name="RAM used / total", attrs={"td": {"class": "text-end"}})
    disk_gb = tables.Column(verbose_name="Disk used / total", attrs={"td": {"class": "text-end"}})
    instance_count = tables.Column(verbose_name="Instances", attrs={"td": {"class": "text-end"}})
    actions = tables.TemplateColumn(template_name="compute/admin/host_actions_cell.html", verbose_name="",
                                    orderable=False, attrs={"td": {"class": "text-end text-nowrap"}})

    class Meta(Table.Meta):
        empty_text = "No hypervisor has registered yet: start a compute worker."

    def render_vcpus(self, value, record):
        return f"{record.vcpus_used or 0} / {value}"

    def render_memory_mib(self, value, record):
        return f"{mebibytes(record.memory_used or 0)} / {mebibytes(value)}"

    def render_disk_gb(self, value, record):
        return f"{record.disk_used or 0} GB / {value} GB"

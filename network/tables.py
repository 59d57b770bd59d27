"""The Network panels' django-tables2 tables: networks, routers, security
groups and floating IPs. The views hand them querysets that already carry
what the rows show (counts annotated, subnets prefetched), so a page costs
the same queries for ten rows as for a thousand."""

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html

from dashboard.tables import Table

EMPTY = "—"
ACTIONS = {"td": {"class": "text-end text-nowrap"}}


class NetworkTable(Table):
    dom_id = "network-table"
    name = tables.TemplateColumn(template_name="network/networks/name_cell.html", order_by=("name",))
    subnets = tables.TemplateColumn(template_name="network/networks/subnets_cell.html", verbose_name="Subnets",
                                    orderable=False)
    subnet_count = tables.Column(verbose_name="Subnet count", attrs={"td": {"class": "text-end"}})
    shared = tables.BooleanColumn()
    router_external = tables.BooleanColumn(verbose_name="External")
    admin_state_up = tables.BooleanColumn(verbose_name="Admin state")
    status = tables.TemplateColumn(template_name="network/status_cell.html")
    actions = tables.TemplateColumn(template_name="network/networks/actions_cell.html", verbose_name="",
                                    orderable=False, attrs=ACTIONS)

    class Meta(Table.Meta):
        empty_text = "No networks. Create one, or launch instances straight onto public."
        row_attrs = {"data-network-id": lambda record: record.pk}


class RouterTable(Table):
    dom_id = "router-table"
    name = tables.TemplateColumn(template_name="network/routers/name_cell.html", order_by=("name",))
    status = tables.TemplateColumn(template_name="network/status_cell.html")
    gateway_network = tables.Column(verbose_name="External network", default=EMPTY,
                                    order_by=("gateway_network__name",))
    interface_count = tables.Column(verbose_name="Interfaces", attrs={"td": {"class": "text-end"}})
    admin_state_up = tables.BooleanColumn(verbose_name="Admin state")
    actions = tables.TemplateColumn(template_name="network/routers/actions_cell.html", verbose_name="",
                                    orderable=False, attrs=ACTIONS)

    class Meta(Table.Meta):
        empty_text = "No routers. A router connects your networks to each other and to public."
        row_attrs = {"data-router-id": lambda record: record.pk}


class SecurityGroupTable(Table):
    dom_id = "security-group-table"
    name = tables.TemplateColumn(template_name="network/security_groups/name_cell.html", order_by=("name",))
    description = tables.Column(default=EMPTY)
    rule_count = tables.Column(verbose_name="Rules", attrs={"td": {"class": "text-end"}})
    actions = tables.TemplateColumn(template_name="network/security_groups/actions_cell.html", verbose_name="",
                                    orderable=False, attrs=ACTIONS)

    class Meta(Table.Meta):
        empty_text = "No security groups."
        row_attrs = {"data-security-group-id": lambda record: record.pk}


class FloatingIPTable(Table):
    dom_id = "floating-ip-table"
    floating_ip_address = tables.Column(verbose_name="IP address")
    floating_network = tables.Column(verbose_name="Pool", order_by=("floating_network__name",))
    mapped = tables.Column(verbose_name="Mapped fixed IP", empty_values=(), orderable=False)
    status = tables.TemplateColumn(template_name="network/status_cell.html")
    description = tables.Column(default=EMPTY)
    actions = tables.TemplateColumn(template_name="network/floating_ips/actions_cell.html", verbose_name="",
                                    orderable=False, attrs=ACTIONS)

    class Meta(Table.Meta):
        empty_text = "No floating IPs. Allocate one from an external network."
        row_attrs = {"data-floating-ip-id": lambda record: record.pk,
                     "data-floating-ip": lambda record: record.floating_ip_address}

    def __init__(self, *args, instance_names=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance_names = instance_names or {}

    def render_mapped(self, record):
        if record.port_id is None:
            return EMPTY
        owner = self.instance_names.get(record.port.device_id)
        if owner is None:
            return record.fixed_ip_address
        url = reverse("compute:instance-detail", args=[record.port.device_id])
        return format_html('<a href="{}">{}</a> {}', url, owner, record.fixed_ip_address)

"""django-tables2 tables. Sorting and paging links are htmx-boosted: the view
answers them with just the table (dashboard/partials/table.html)."""

import django_tables2 as tables
from django.template.defaultfilters import filesizeformat


def mebibytes(value):
    return filesizeformat(value * 1024 * 1024)


class Table(tables.Table):
    # The id of the element htmx swaps when a sort or page link is followed.
    dom_id = "table"

    class Meta:
        template_name = "dashboard/tables/table.html"
        attrs = {"class": "table table-hover align-middle mb-0"}
        per_page = 50


class FlavorTable(Table):
    dom_id = "flavor-table"
    name = tables.Column(linkify=("dashboard:flavor-detail", {"flavor_id": tables.A("pk")}))
    vcpus = tables.Column(verbose_name="vCPUs", attrs={"td": {"class": "text-end"}, "th": {"class": "text-end"}})
    ram = tables.Column(verbose_name="RAM", attrs={"td": {"class": "text-end"}, "th": {"class": "text-end"}})
    disk = tables.Column(verbose_name="Root disk", attrs={"td": {"class": "text-end"}, "th": {"class": "text-end"}})
    is_public = tables.BooleanColumn(verbose_name="Public")

    class Meta(Table.Meta):
        empty_text = "No flavors are offered to this project."

    def render_ram(self, value):
        return mebibytes(value)

    def render_disk(self, value):
        return f"{value} GB"


class KeyPairTable(Table):
    dom_id = "keypair-table"
    name = tables.Column()
    type = tables.Column()
    fingerprint = tables.Column(attrs={"td": {"class": "font-monospace small"}})
    created_at = tables.DateTimeColumn(verbose_name="Created", format="Y-m-d H:i")
    actions = tables.TemplateColumn(template_name="dashboard/keypairs/actions.html", verbose_name="",
                                    orderable=False, attrs={"td": {"class": "text-end"}})

    class Meta(Table.Meta):
        empty_text = "You have no key pairs yet."


class AdminFlavorTable(FlavorTable):
    dom_id = "admin-flavor-table"
    id = tables.Column(verbose_name="ID")
    name = tables.Column()
    disabled = tables.BooleanColumn()
    access = tables.TemplateColumn(template_name="dashboard/admin/flavor_access_cell.html",
                                   verbose_name="Projects", orderable=False)
    actions = tables.TemplateColumn(template_name="dashboard/admin/flavor_actions.html", verbose_name="",
                                    orderable=False, attrs={"td": {"class": "text-end text-nowrap"}})

    class Meta(FlavorTable.Meta):
        sequence = ("id", "name", "vcpus", "ram", "disk", "is_public", "disabled", "access", "actions")
        empty_text = "No flavors yet."


class ProjectTable(Table):
    dom_id = "project-table"
    name = tables.Column(linkify=("dashboard:project-detail", {"project_id": tables.A("pk")}))
    description = tables.Column()
    enabled = tables.BooleanColumn()
    member_count = tables.Column(verbose_name="Members", attrs={"td": {"class": "text-end"}})
    created_at = tables.DateTimeColumn(verbose_name="Created", format="Y-m-d")

    class Meta(Table.Meta):
        empty_text = "No projects yet."


class UserTable(Table):
    dom_id = "user-table"
    username = tables.Column(verbose_name="User name")
    email = tables.EmailColumn()
    is_staff = tables.BooleanColumn(verbose_name="Operator")
    is_active = tables.BooleanColumn(verbose_name="Active")
    projects = tables.TemplateColumn(template_name="dashboard/identity/user_projects_cell.html",
                                     verbose_name="Projects", orderable=False)
    last_login = tables.DateTimeColumn(format="Y-m-d H:i")
    actions = tables.TemplateColumn(template_name="dashboard/identity/user_actions.html", verbose_name="",
                                    orderable=False, attrs={"td": {"class": "text-end"}})

    class Meta(Table.Meta):
        empty_text = "No users yet."


class MembershipTable(Table):
    dom_id = "membership-table"
    user = tables.Column(order_by=("user__username",))
    project = tables.Column(linkify=("dashboard:project-detail", {"project_id": tables.A("project_id")}),
                            order_by=("project__name",))
    role = tables.TemplateColumn(template_name="dashboard/identity/membership_role_cell.html", order_by=("role",))
    actions = tables.TemplateColumn(template_name="dashboard/identity/membership_actions.html", verbose_name="",
                                    orderable=False, attrs={"td": {"class": "text-end"}})

    class Meta(Table.Meta):
        empty_text = "No memberships yet."

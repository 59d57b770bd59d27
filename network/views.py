"""The Network panels: Networks, Routers, Security Groups, Floating IPs and
the Network Topology.

As everywhere in the dashboard (dashboard/views.py), views read with the ORM
scoped to the current project and change things only through
network/services.py. A service's refusal (every ``APIError``) becomes a form
error or a message, never a 500. Another project's network, router, group or
floating IP answers 404; the shared and external networks (``public``) are
visible to everyone but changed only by their owners (the operators).
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Count, OuterRef, Prefetch, Subquery
from django.db.models.functions import Coalesce
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from compute.models import Instance
from dashboard.views import attempt, can_change, confirmed, member_required, render_table, service_form_errors

from . import forms, services, tables
from .models import FixedIP, FloatingIP, Network, Port, Router, SecurityGroup, SecurityGroupRule, Subnet


def page_context(request, **extra):
    """What every Network page shows besides its own data: whether the user
    may change things, and whether there is a dataplane at all."""
    return {"can_change": can_change(request), "no_dataplane": settings.NETWORK_DRIVER == "none", **extra}


# --- Networks --------------------------------------------------------------------------

def visible_networks(request):
    return services.networks_visible(request.project)


def own_network(request, network_id):
    """The project's own network (another project's, or public, is 404 here)."""
    return get_object_or_404(Network.objects.for_project(request.project), pk=network_id)


@login_required
@require_GET
def network_list(request):
    networks = (visible_networks(request)
                .annotate(subnet_count=Count("subnets"))
                .prefetch_related(Prefetch("subnets", queryset=Subnet.objects.order_by("ip_version", "cidr")))
                .order_by("-router_external", "name"))
    table = tables.NetworkTable(networks, exclude=() if can_change(request) else ("actions",))
    return render_table(request, "network/networks/list.html", table, page_context(request))


@login_required
@require_GET
def network_detail(request, network_id):
    network = get_object_or_404(visible_networks(request), pk=network_id)
    subnets = network.subnets.order_by("ip_version", "cidr")
    # On a shared network only this project's ports are any of its business.
    ports = (network.ports.filter(project=request.project).prefetch_related("fixed_ips")
             .order_by("device_owner", "created_at"))
    instance_names = dict(Instance.objects.for_project(request.project)
                          .filter(pk__in=[p.device_id for p in ports if p.device_owner == Port.COMPUTE])
                          .values_list("pk", "name"))
    router_names = dict(Router.objects.for_project(request.project)
                        .filter(pk__in=[p.device_id for p in ports if p.device_owner == Port.ROUTER_INTERFACE])
                        .values_list("pk", "name"))
    rows = [{"port": port, "device": instance_names.get(port.device_id) or router_names.get(port.device_id) or "",
             "device_url": device_url(port, instance_names, router_names)} for port in ports]
    own = network.project_id == getattr(request.project, "pk", None)
    return render(request, "network/networks/detail.html", page_context(
        request, network=network, subnets=subnets, ports=rows, own=own))


def device_url(port, instance_names, router_names):
    if port.device_id in instance_names:
        return reverse("compute:instance-detail", args=[port.device_id])
    if port.device_id in router_names:
        return reverse("network:router-detail", args=[port.device_id])
    return ""


@member_required
@require_http_methods(["GET", "POST"])
def network_create(request):
    """The network and its first subnet in one step: both or neither."""
    form = forms.NetworkCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data

        def create():
            with transaction.atomic():
                network = services.create_network(project=request.project, name=data["name"],
                                                  admin_state_up=data["admin_state_up"])
                if data["with_subnet"]:
                    services.create_subnet(project=request.project, network_id=network.pk,
                                           **form.subnet_arguments())
                return network

        network = service_form_errors(form, create, forms.FIELD_HINTS)
        if network is not None:
            messages.success(request, f"Network {network} created.")
            return redirect("network:network-detail", network_id=network.pk)
    return render(request, "network/networks/form.html", page_context(request, form=form))


@member_required
@require_http_methods(["GET", "POST"])
def network_delete(request, network_id):
    network = own_network(request, network_id)
    return confirmed(request, title="Delete network", message=f"Delete the network {network} and its subnets?",
                     back=reverse("network:networks"), call=lambda: services.delete_network(network),
                     success=f"Network {network} deleted.",
                     refused=reverse("network:network-detail", args=[network.pk]))


@member_required
@require_http_methods(["GET", "POST"])
def subnet_create(request, network_id):
    network = own_network(request, network_id)
    form = forms.SubnetForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        subnet = service_form_errors(form, lambda: services.create_subnet(
            project=request.project, network_id=network.pk, **form.subnet_arguments()), forms.FIELD_HINTS)
        if subnet is not None:
            messages.success(request, f"Subnet {subnet.cidr} added to {network}.")
            return redirect("network:network-detail", network_id=network.pk)
    return render(request, "network/networks/subnet_form.html", page_context(request, form=form, network=network))


@member_required
@require_http_methods(["GET", "POST"])
def subnet_delete(request, network_id, subnet_id):
    network = own_network(request, network_id)
    subnet = get_object_or_404(network.subnets.filter(project=request.project), pk=subnet_id)
    return confirmed(request, title="Delete subnet", message=f"Delete the subnet {subnet.cidr} of {network}?",
                     back=reverse("network:network-detail", args=[network.pk]),
                     call=lambda: services.delete_subnet(subnet), success=f"Subnet {subnet.cidr} deleted.")


# --- Routers ---------------------------------------------------------------------------

def project_router(request, router_id):
    return get_object_or_404(Router.objects.for_project(request.project).select_related("gateway_network"),
                             pk=router_id)


@login_required
@require_GET
def router_list(request):
    # Interfaces are ports whose device_id names the router (no foreign key):
    # counted by one correlated subquery, not one query per row.
    interfaces = (Port.objects.filter(project=OuterRef("project"), device_owner=Port.ROUTER_INTERFACE,
                                      device_id=OuterRef("pk"))
                  .order_by().values("device_id").annotate(n=Count("pk")).values("n")[:1])
    routers = (Router.objects.for_project(request.project).select_related("gateway_network")
               .annotate(interface_count=Coalesce(Subquery(interfaces), 0)).order_by("name"))
    table = tables.RouterTable(routers, exclude=() if can_change(request) else ("actions",))
    return render_table(request, "network/routers/list.html", table, page_context(request))


@login_required
@require_GET
def router_detail(request, router_id):
    router = project_router(request, router_id)
    interfaces = (services.router_interfaces(router).select_related("network")
                  .prefetch_related(Prefetch("fixed_ips", queryset=FixedIP.objects.select_related("subnet")))
                  .order_by("created_at"))
    gateway = services.gateway_port(router)
    context = page_context(request, router=router, interfaces=interfaces, gateway=gateway,
                           gateway_ips=list(gateway.fixed_ips.values_list("ip_address", flat=True)) if gateway else [])
    if context["can_change"]:
        context["gateway_form"] = forms.GatewayForm(project=request.project, initial={
            "external_network": router.gateway_network_id, "enable_snat": router.enable_snat})
        context["interface_form"] = forms.InterfaceForm(project=request.project, router=router)
    return render(request, "network/routers/detail.html", context)


@member_required
@require_http_methods(["GET", "POST"])
def router_create(request):
    form = forms.RouterCreateForm(request.POST or None, project=request.project)
    if request.method == "POST" and form.is_valid():
        external = form.cleaned_data["external_network"]
        router = service_form_errors(form, lambda: services.create_router(
            project=request.project, name=form.cleaned_data["name"],
            external_gateway_info={"network_id": external.pk} if external else None), forms.FIELD_HINTS)
        if router is not None:
            messages.success(request, f"Router {router} created.")
            return redirect("network:router-detail", router_id=router.pk)
    return render(request, "network/routers/form.html", page_context(request, form=form))


@member_required
@require_http_methods(["GET", "POST"])
def router_delete(request, router_id):
    router = project_router(request, router_id)
    return confirmed(request, title="Delete router", message=f"Delete the router {router}?",
                     back=reverse("network:routers"), call=lambda: services.delete_router(router),
                     success=f"Router {router} deleted.", refused=reverse("network:router-detail", args=[router.pk]))


@member_required
@require_POST
def router_gateway_set(request, router_id):
    router = project_router(request, router_id)
    form = forms.GatewayForm(request.POST, project=request.project)
    if form.is_valid():
        network = form.cleaned_data["external_network"]
        attempt(request, lambda: services.set_gateway(router, project=request.project, info={
            "network_id": network.pk, "enable_snat": form.cleaned_data["enable_snat"]}),
            f"Router {router} now has its gateway on {network}.")
    else:
        messages.error(request, "Choose an external network.")
    return redirect("network:router-detail", router_id=router.pk)


@member_required
@require_POST
def router_gateway_clear(request, router_id):
    router = project_router(request, router_id)
    attempt(request, lambda: services.clear_gateway(router), f"The gateway of {router} is cleared.")
    return redirect("network:router-detail", router_id=router.pk)


@member_required
@require_POST
def router_interface_add(request, router_id):
    router = project_router(request, router_id)
    form = forms.InterfaceForm(request.POST, project=request.project, router=router)
    if form.is_valid():
        subnet = form.cleaned_data["subnet"]
        attempt(request, lambda: services.add_router_interface(router, project=request.project, subnet_id=subnet.pk),
                f"Router {router} is now on {subnet.cidr}.")
    else:
        messages.error(request, "Choose one of the project's subnets that the router is not on yet.")
    return redirect("network:router-detail", router_id=router.pk)


@member_required
@require_POST
def router_interface_remove(request, router_id, port_id):
    router = project_router(request, router_id)
    attempt(request, lambda: services.remove_router_interface(router, project=request.project, port_id=port_id),
            f"Interface removed from {router}.")
    return redirect("network:router-detail", router_id=router.pk)


# --- Security groups -------------------------------------------------------------------

def project_group(request, group_id):
    return get_object_or_404(SecurityGroup.objects.for_project(request.project), pk=group_id)


@login_required
@require_GET
def security_group_list(request):
    if request.project is not None:
        services.default_security_group(request.project)  # Neutron's: it exists once anyone looks
    groups = SecurityGroup.objects.for_project(request.project).annotate(rule_count=Count("rules")).order_by("name")
    table = tables.SecurityGroupTable(groups, exclude=() if can_change(request) else ("actions",))
    return render_table(request, "network/security_groups/list.html", table, page_context(request))


def render_group(request, group, rule_form=None, status=200):
    rules = (group.rules.select_related("remote_group")
             .order_by("direction", "ethertype", "protocol", "port_range_min", "created_at"))
    context = page_context(request, group=group, rules=rules, presets=forms.RULE_PRESETS)
    if context["can_change"]:
        context["rule_form"] = rule_form or forms.RuleForm(project=request.project)
    return render(request, "network/security_groups/detail.html", context, status=status)


@login_required
@require_GET
def security_group_detail(request, group_id):
    return render_group(request, project_group(request, group_id))


@member_required
@require_http_methods(["GET", "POST"])
def security_group_create(request):
    form = forms.SecurityGroupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        group = service_form_errors(form, lambda: services.create_security_group(
            project=request.project, name=form.cleaned_data["name"], description=form.cleaned_data["description"]),
            forms.FIELD_HINTS)
        if group is not None:
            messages.success(request, f"Security group {group} created.")
            return redirect("network:security-group-detail", group_id=group.pk)
    return render(request, "network/security_groups/form.html", page_context(request, form=form))


@member_required
@require_http_methods(["GET", "POST"])
def security_group_delete(request, group_id):
    group = project_group(request, group_id)
    return confirmed(request, title="Delete security group", message=f"Delete the security group {group}?",
                     back=reverse("network:security-groups"), call=lambda: services.delete_security_group(group),
                     success=f"Security group {group} deleted.")


@member_required
@require_POST
def rule_create(request, group_id):
    """The rule editor's form, or one preset button (SSH, HTTP, HTTPS, ICMP:
    ingress from anywhere over IPv4)."""
    group = project_group(request, group_id)
    preset = forms.RULE_PRESETS.get(request.POST.get("preset", ""))
    if request.POST.get("preset"):
        if preset is None:
            messages.error(request, "No such preset.")
            return redirect("network:security-group-detail", group_id=group.pk)
        arguments = {"direction": "ingress", "ethertype": "IPv4", "remote_ip_prefix": "0.0.0.0/0",
                     **{k: v for k, v in preset.items() if k != "label"}}
        attempt(request, lambda: services.create_security_group_rule(
            project=request.project, security_group_id=group.pk, **arguments),
            f"Rule {preset['label']} added to {group}.")
        return redirect("network:security-group-detail", group_id=group.pk)
    form = forms.RuleForm(request.POST, project=request.project)
    if form.is_valid():
        rule = service_form_errors(form, lambda: services.create_security_group_rule(
            project=request.project, security_group_id=group.pk, **form.rule_arguments()), forms.FIELD_HINTS)
        if rule is not None:
            messages.success(request, f"Rule added to {group}.")
            return redirect("network:security-group-detail", group_id=group.pk)
    return render_group(request, group, rule_form=form)


@member_required
@require_POST
def rule_delete(request, group_id, rule_id):
    group = project_group(request, group_id)
    rule = get_object_or_404(SecurityGroupRule.objects.filter(group=group), pk=rule_id)
    services.delete_security_group_rule(rule)
    messages.success(request, f"Rule deleted from {group}.")
    return redirect("network:security-group-detail", group_id=group.pk)


# --- Floating IPs ----------------------------------------------------------------------

def project_floating_ip(request, fip_id):
    return get_object_or_404(FloatingIP.objects.for_project(request.project), pk=fip_id)


def instance_names(request):
    return dict(Instance.objects.for_project(request.project).live().values_list("pk", "name"))


@login_required
@require_GET
def floating_ip_list(request):
    fips = (FloatingIP.objects.for_project(request.project).select_related("floating_network", "port")
            .order_by("floating_ip_address"))
    names = dict(Instance.objects.for_project(request.project)
                 .filter(pk__in=fips.filter(port__isnull=False).values("port__device_id")).values_list("pk", "name"))
    table = tables.FloatingIPTable(fips, exclude=() if can_change(request) else ("actions",), instance_names=names)
    return render_table(request, "network/floating_ips/list.html", table, page_context(request))


@member_required
@require_http_methods(["GET", "POST"])
def floating_ip_allocate(request):
    form = forms.FloatingIPAllocateForm(request.POST or None, project=request.project)
    if request.method == "POST" and form.is_valid():
        fip = service_form_errors(form, lambda: services.create_floating_ip(
            project=request.project, floating_network_id=form.cleaned_data["pool"].pk,
            description=form.cleaned_data["description"]), forms.FIELD_HINTS)
        if fip is not None:
            messages.success(request, f"Floating IP {fip} allocated.")
            return redirect("network:floating-ips")
    return render(request, "network/floating_ips/form.html", page_context(request, form=form, mode="allocate"))


@member_required
@require_http_methods(["GET", "POST"])
def floating_ip_associate(request, fip_id):
    fip = project_floating_ip(request, fip_id)
    form = forms.FloatingIPAssociateForm(request.POST or None, project=request.project,
                                         instance_names=instance_names(request))
    if request.method == "POST" and form.is_valid():
        done = service_form_errors(form, lambda: services.associate_floating_ip(
            fip, project=request.project, port_id=form.cleaned_data["port"].pk), forms.FIELD_HINTS)
        if done is not None:
            messages.success(request, f"Floating IP {fip} now points at {fip.fixed_ip_address}.")
            return redirect("network:floating-ips")
    return render(request, "network/floating_ips/form.html",
                  page_context(request, form=form, mode="associate", fip=fip))


@member_required
@require_POST
def floating_ip_disassociate(request, fip_id):
    fip = project_floating_ip(request, fip_id)
    services.disassociate_floating_ip(fip)
    messages.success(request, f"Floating IP {fip} disassociated.")
    return redirect("network:floating-ips")


@member_required
@require_http_methods(["GET", "POST"])
def floating_ip_release(request, fip_id):
    fip = project_floating_ip(request, fip_id)
    return confirmed(request, title="Release floating IP",
                     message=f"Release the floating IP {fip}? The address goes back to the pool.",
                     back=reverse("network:floating-ips"), call=lambda: services.delete_floating_ip(fip),
                     success=f"Floating IP {fip} released.")


# --- Network Topology ------------------------------------------------------------------

@login_required
@require_GET
def topology(request):
    return render(request, "network/topology.html", page_context(request))


@login_required
@require_GET
def topology_data(request):
    """The project's graph as Cytoscape elements: its networks and the shared
    ones, its routers and live instances; edges for router interfaces,
    router gateways and instance ports (with their addresses)."""
    return JsonResponse(topology_elements(request.project))


def topology_elements(project):
    if project is None:
        return {"nodes": [], "edges": []}
    networks = list(services.networks_visible(project)
                    .prefetch_related(Prefetch("subnets", queryset=Subnet.objects.order_by("ip_version", "cidr")))
                    .order_by("name"))
    routers = list(Router.objects.for_project(project).order_by("name"))
    instances = list(Instance.objects.for_project(project).live().order_by("name"))
    shown = {n.pk for n in networks}
    nodes, edges = [], []
    for network in networks:
        nodes.append({"data": {
            "id": f"network-{network.pk}", "kind": "network", "object_id": network.pk,
            "label": network.name or network.pk, "status": network.status,
            "external": network.router_external, "shared": network.shared,
            "cidrs": [s.cidr for s in network.subnets.all()],
            "url": reverse("network:network-detail", args=[network.pk])}})
    for router in routers:
        nodes.append({"data": {"id": f"router-{router.pk}", "kind": "router", "object_id": router.pk,
                               "label": router.name or router.pk, "status": router.status,
                               "external_network": router.gateway_network_id,
                               "url": reverse("network:router-detail", args=[router.pk])}})
        if router.gateway_network_id in shown:
            edges.append({"data": {"id": f"gateway-{router.pk}", "kind": "gateway",
                                   "source": f"router-{router.pk}",
                                   "target": f"network-{router.gateway_network_id}", "label": ""}})
    for instance in instances:
        nodes.append({"data": {"id": f"instance-{instance.pk}", "kind": "instance", "object_id": instance.pk,
                               "label": instance.name, "status": instance.status,
                               "url": reverse("compute:instance-detail", args=[instance.pk])}})
    device_nodes = {**{r.pk: f"router-{r.pk}" for r in routers}, **{i.pk: f"instance-{i.pk}" for i in instances}}
    ports = (Port.objects.for_project(project)
             .filter(device_owner__in=(Port.ROUTER_INTERFACE, Port.COMPUTE), device_id__in=list(device_nodes))
             .prefetch_related("fixed_ips", "floating_ips").order_by("created_at"))
    for port in ports:
        if port.network_id not in shown:
            continue
        addresses = [f.ip_address for f in port.fixed_ips.all()]
        floating = [f.floating_ip_address for f in port.floating_ips.all()]
        edges.append({"data": {"id": f"port-{port.pk}", "kind": "interface" if port.device_owner ==
                               Port.ROUTER_INTERFACE else "port",
                               "source": device_nodes[port.device_id], "target": f"network-{port.network_id}",
                               "label": ", ".join(addresses + floating), "addresses": addresses,
                               "floating": floating}})
    return {"nodes": nodes, "edges": edges}

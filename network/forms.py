"""The Network panels' forms. They check shapes (required fields, one
address per line); every rule that matters (CIDR, overlap, gateway inside
the subnet, pools, rule validity, quotas) lives in network/services.py, whose
refusals the views attach to the form, on the field they name when they name
one (``FIELD_HINTS``)."""

import re

from django import forms
from django.db.models import Q

from dashboard.forms import Form

from .models import Network, Port, SecurityGroup, Subnet

PROTOCOL_CHOICES = [("any", "Any"), ("tcp", "TCP"), ("udp", "UDP"), ("icmp", "ICMP"), ("ipv6-icmp", "ICMPv6"),
                    ("sctp", "SCTP")]
# The rule editor's presets: what each button creates (Horizon's "Rule" menu).
RULE_PRESETS = {
    "ssh": {"label": "SSH", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22},
    "http": {"label": "HTTP", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80},
    "https": {"label": "HTTPS", "protocol": "tcp", "port_range_min": 443, "port_range_max": 443},
    "icmp": {"label": "ICMP", "protocol": "icmp"},
}

# A service message that names one of these inputs is shown beside the field.
FIELD_HINTS = (
    ("allocation_pools", "allocation_pools"), ("allocation pool", "allocation_pools"),
    ("gateway", "gateway_ip"), ("dns_nameservers", "dns_nameservers"), ("nameserver", "dns_nameservers"),
    ("cidr", "cidr"), ("port_range", "port_range_min"), ("port value", "port_range_min"),
    ("ports must", "port_range_min"), ("icmp", "port_range_min"), ("protocol", "protocol"),
    ("remote_ip_prefix", "remote_ip_prefix"), ("ethertype", "ethertype"),
)


def lines(text):
    """Entries one per line (commas also separate), blanks dropped."""
    return [item.strip() for item in text.replace(",", "\n").splitlines() if item.strip()]


class NetworkChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, network):
        return network.name or network.pk


class NetworkMultipleChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, network):
        flags = [word for flag, word in ((network.shared, "shared"), (network.router_external, "external")) if flag]
        return f"{network.name or network.pk}" + (f" ({', '.join(flags)})" if flags else "")


class SubnetChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, subnet):
        name = subnet.name or subnet.pk
        return f"{subnet.network.name or subnet.network_id}: {name} {subnet.cidr}"


class GroupMultipleChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, group):
        return group.name or group.pk


class SubnetForm(Form):
    """A subnet's fields, alone (Add subnet) or after the network's."""

    subnet_name = forms.CharField(label="Subnet name", max_length=255, required=False)
    cidr = forms.CharField(label="Network address (CIDR)", max_length=64, required=False,
                           widget=forms.TextInput(attrs={"placeholder": "10.0.0.0/24"}))
    ip_version = forms.TypedChoiceField(label="IP version", choices=[(4, "IPv4"), (6, "IPv6")], coerce=int,
                                        initial=4, required=False, empty_value=4)
    gateway_ip = forms.CharField(label="Gateway IP", max_length=64, required=False,
                                 help_text="Empty: the first address of the subnet.")
    no_gateway = forms.BooleanField(label="No gateway", required=False)
    enable_dhcp = forms.BooleanField(label="Enable DHCP", required=False, initial=True)
    dns_nameservers = forms.CharField(label="DNS name servers", required=False,
                                      widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
                                      help_text="One address per line.")
    allocation_pools = forms.CharField(
        label="Allocation pools", required=False, widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
        help_text="Optional: one range per line as start - end, e.g. 10.0.0.10 - 10.0.0.200. "
                  "Empty: the whole subnet but the gateway.")

    subnet_required = True

    def clean(self):
        data = super().clean()
        if self.subnet_required and not data.get("cidr"):
            self.add_error("cidr", "This field is required.")
        return data

    def clean_allocation_pools(self):
        pools = []
        for line in self.cleaned_data["allocation_pools"].splitlines():
            if not line.strip():
                continue
            parts = [p for p in re.split(r"[\s,-]+", line.strip()) if p]  # IPv6 addresses hold no "-"
            if len(parts) != 2:
                raise forms.ValidationError(f"'{line.strip()}' is not a range of the form start - end.")
            pools.append({"start": parts[0], "end": parts[1]})
        return pools

    def clean_dns_nameservers(self):
        return lines(self.cleaned_data["dns_nameservers"])

    def subnet_arguments(self):
        """The keyword arguments of network.services.create_subnet."""
        data = self.cleaned_data
        return {
            "name": data["subnet_name"], "cidr": data["cidr"], "ip_version": data["ip_version"],
            "gateway_ip": None if data["no_gateway"] else (data["gateway_ip"].strip() or "auto"),
            "enable_dhcp": data["enable_dhcp"], "dns_nameservers": data["dns_nameservers"],
            "allocation_pools": data["allocation_pools"] or None,
        }


class NetworkCreateForm(SubnetForm):
    """Create network, with its first subnet in the same step (optional)."""

    name = forms.CharField(label="Network name", max_length=255)
    admin_state_up = forms.BooleanField(label="Admin state up", required=False, initial=True)
    with_subnet = forms.BooleanField(label="Create a subnet", required=False, initial=True,
                                     help_text="Uncheck to create the network alone and add subnets later.")

    field_order = ["name", "admin_state_up", "with_subnet", "subnet_name", "cidr", "ip_version", "gateway_ip",
                   "no_gateway", "enable_dhcp", "dns_nameservers", "allocation_pools"]

    def clean(self):
        self.subnet_required = bool(self.cleaned_data.get("with_subnet"))
        return super().clean()


class RouterCreateForm(Form):
    name = forms.CharField(max_length=255)
    external_network = NetworkChoiceField(label="External network", queryset=Network.objects.none(), required=False,
                                          empty_label="No gateway",
                                          help_text="The router's gateway: SNAT to the outside and floating IPs.")

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["external_network"].queryset = external_networks(project)


class GatewayForm(Form):
    external_network = NetworkChoiceField(label="External network", queryset=Network.objects.none(),
                                          empty_label=None)
    enable_snat = forms.BooleanField(label="Enable SNAT", required=False, initial=True)

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["external_network"].queryset = external_networks(project)


class InterfaceForm(Form):
    subnet = SubnetChoiceField(queryset=Subnet.objects.none(), empty_label=None,
                               help_text="The router takes the subnet's gateway address.")

    def __init__(self, *args, project, router, **kwargs):
        super().__init__(*args, **kwargs)
        attached = Port.objects.filter(project=project, device_owner=Port.ROUTER_INTERFACE,
                                       device_id=router.pk).values("fixed_ips__subnet_id")
        self.fields["subnet"].queryset = (
            Subnet.objects.for_project(project).filter(network__router_external=False)
            .exclude(pk__in=attached).select_related("network").order_by("network__name", "name", "cidr"))


class SecurityGroupForm(Form):
    name = forms.CharField(max_length=255)
    description = forms.CharField(max_length=255, required=False)


class RuleForm(Form):
    direction = forms.ChoiceField(choices=[("ingress", "Ingress"), ("egress", "Egress")], initial="ingress")
    ethertype = forms.ChoiceField(choices=[("IPv4", "IPv4"), ("IPv6", "IPv6")], initial="IPv4")
    protocol = forms.ChoiceField(choices=PROTOCOL_CHOICES, initial="tcp")
    port_range_min = forms.IntegerField(label="Port from (ICMP type)", required=False)
    port_range_max = forms.IntegerField(label="Port to (ICMP code)", required=False,
                                        help_text="Empty: the same as the first port.")
    remote = forms.ChoiceField(choices=[("cidr", "CIDR"), ("group", "Security group")], initial="cidr")
    remote_ip_prefix = forms.CharField(label="Remote CIDR", max_length=64, required=False, initial="0.0.0.0/0")
    remote_group = forms.ModelChoiceField(label="Remote security group", queryset=SecurityGroup.objects.none(),
                                          required=False)
    description = forms.CharField(max_length=255, required=False)

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["remote_group"].queryset = SecurityGroup.objects.for_project(project).order_by("name")

    def clean(self):
        data = super().clean()
        if data.get("remote") == "group" and not data.get("remote_group"):
            self.add_error("remote_group", "Choose the security group the traffic comes from.")
        return data

    def rule_arguments(self):
        """The keyword arguments of network.services.create_security_group_rule."""
        data = self.cleaned_data
        low, high = data["port_range_min"], data["port_range_max"]
        if high is None and low is not None and data["protocol"] in ("tcp", "udp", "sctp"):
            high = low
        by_group = data["remote"] == "group"
        return {
            "direction": data["direction"], "ethertype": data["ethertype"], "protocol": data["protocol"],
            "port_range_min": low, "port_range_max": high,
            "remote_ip_prefix": None if by_group else (data["remote_ip_prefix"].strip() or None),
            "remote_group_id": data["remote_group"].pk if by_group else None,
            "description": data["description"],
        }


class FloatingIPAllocateForm(Form):
    pool = NetworkChoiceField(label="Pool", queryset=Network.objects.none(), empty_label=None,
                              help_text="The external network the address comes from.")
    description = forms.CharField(max_length=255, required=False)

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["pool"].queryset = external_networks(project)


class PortChoiceField(forms.ModelChoiceField):
    """An instance's port, labelled with the instance's name and addresses."""

    def __init__(self, *args, names=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.names = names or {}

    def label_from_instance(self, port):
        addresses = ", ".join(f.ip_address for f in port.fixed_ips.all())
        owner = self.names.get(port.device_id, port.device_id)
        return f"{owner}: {addresses or 'no address'} ({port.network.name or port.network_id})"


class FloatingIPAssociateForm(Form):
    port = PortChoiceField(label="Instance port", queryset=Port.objects.none(), empty_label=None,
                           help_text="Its network needs a router with a gateway on the floating IP's network.")

    def __init__(self, *args, project, instance_names, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["port"]
        field.names = instance_names
        field.queryset = (Port.objects.for_project(project)
                          .filter(device_owner=Port.COMPUTE, device_id__in=list(instance_names))
                          .select_related("network").prefetch_related("fixed_ips").order_by("created_at"))


def external_networks(project):
    """The external networks, which every project may use for gateways and
    floating IPs (network.services.networks_visible)."""
    return Network.objects.filter(router_external=True).order_by("name")


def launch_networks(project):
    """What an instance may be launched on: the project's networks and shared ones."""
    return Network.objects.filter(Q(project=project) | Q(shared=True)).order_by("-shared", "name")

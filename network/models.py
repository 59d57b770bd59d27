"""Neutron's resources: networks, subnets, ports with their fixed IPs,
routers, floating IPs and security groups. Validation and IPAM live in
services.py; the database holds the invariants it can (one address per
subnet, one MAC, one VNI, one ``default`` group per project)."""

import uuid

from django.db import models

from core.models import ProjectScopedModel


def new_uuid():
    return str(uuid.uuid4())


class NeutronModel(ProjectScopedModel):
    id = models.CharField(primary_key=True, max_length=36, default=new_uuid, editable=False)
    name = models.CharField(max_length=255, blank=True)
    description = models.CharField(max_length=255, blank=True)
    revision_number = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True

    def __str__(self):
        return self.name or self.id


class Network(NeutronModel):
    admin_state_up = models.BooleanField(default=True)
    shared = models.BooleanField(default=False)
    router_external = models.BooleanField(default=False)
    mtu = models.PositiveIntegerField(default=1450)
    status = models.CharField(max_length=16, default="ACTIVE")
    segmentation_id = models.PositiveIntegerField(unique=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(segmentation_id__gte=1, segmentation_id__lte=16777215), name="network_vni_range"
            )
        ]


class Subnet(NeutronModel):
    network = models.ForeignKey(Network, on_delete=models.CASCADE, related_name="subnets")
    ip_version = models.PositiveSmallIntegerField(default=4)
    cidr = models.CharField(max_length=64)
    gateway_ip = models.GenericIPAddressField(null=True, blank=True)
    allocation_pools = models.JSONField(default=list, blank=True)
    dns_nameservers = models.JSONField(default=list, blank=True)
    host_routes = models.JSONField(default=list, blank=True)
    enable_dhcp = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["network", "cidr"], name="subnet_unique_cidr_per_network")]


class SecurityGroup(NeutronModel):
    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project"], condition=models.Q(name="default"), name="one_default_security_group_per_project"
            )
        ]


class SecurityGroupRule(models.Model):
    id = models.CharField(primary_key=True, max_length=36, default=new_uuid, editable=False)
    group = models.ForeignKey(SecurityGroup, on_delete=models.CASCADE, related_name="rules")
    direction = models.CharField(max_length=8)
    ethertype = models.CharField(max_length=8, default="IPv4")
    protocol = models.CharField(max_length=16, null=True, blank=True)
    port_range_min = models.PositiveIntegerField(null=True, blank=True)
    port_range_max = models.PositiveIntegerField(null=True, blank=True)
    remote_ip_prefix = models.CharField(max_length=64, null=True, blank=True)
    remote_group = models.ForeignKey(SecurityGroup, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    description = models.CharField(max_length=255, blank=True)
    revision_number = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.direction} {self.ethertype} {self.protocol or 'any'}"


class Port(NeutronModel):
    ROUTER_INTERFACE = "network:router_interface"
    ROUTER_GATEWAY = "network:router_gateway"
    FLOATING_IP = "network:floatingip"
    DHCP = "network:dhcp"
    COMPUTE = "compute:nova"
    INTERNAL_OWNERS = (ROUTER_INTERFACE, ROUTER_GATEWAY, FLOATING_IP, DHCP)

    network = models.ForeignKey(Network, on_delete=models.PROTECT, related_name="ports")
    mac_address = models.CharField(max_length=17, unique=True)
    device_owner = models.CharField(max_length=255, blank=True)
    device_id = models.CharField(max_length=255, blank=True, db_index=True)
    admin_state_up = models.BooleanField(default=True)
    status = models.CharField(max_length=16, default="DOWN")
    port_security_enabled = models.BooleanField(default=True)
    allowed_address_pairs = models.JSONField(default=list, blank=True)
    security_groups = models.ManyToManyField(SecurityGroup, blank=True, related_name="ports")
    binding_host = models.CharField(max_length=255, blank=True)
    # Ports a server launch created are deleted with the server; ports the
    # user made and passed in are only unbound (Nova's preserve_on_delete).
    preserve_on_delete = models.BooleanField(default=True)


class FixedIP(models.Model):
    port = models.ForeignKey(Port, on_delete=models.CASCADE, related_name="fixed_ips")
    subnet = models.ForeignKey(Subnet, on_delete=models.PROTECT, related_name="fixed_ips")
    ip_address = models.GenericIPAddressField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["subnet", "ip_address"], name="fixed_ip_unique_per_subnet")]

    def __str__(self):
        return self.ip_address


class Router(NeutronModel):
    admin_state_up = models.BooleanField(default=True)
    status = models.CharField(max_length=16, default="ACTIVE")
    gateway_network = models.ForeignKey(
        Network, null=True, blank=True, on_delete=models.PROTECT, related_name="gateway_routers"
    )
    enable_snat = models.BooleanField(default=True)
    routes = models.JSONField(default=list, blank=True)


class FloatingIP(ProjectScopedModel):
    id = models.CharField(primary_key=True, max_length=36, default=new_uuid, editable=False)
    description = models.CharField(max_length=255, blank=True)
    revision_number = models.PositiveIntegerField(default=0)
    floating_network = models.ForeignKey(Network, on_delete=models.PROTECT, related_name="floating_ips")
    # The address is held by a port of the external network (device_owner
    # network:floatingip), so IPAM has one allocator for every address.
    holder = models.OneToOneField(Port, on_delete=models.PROTECT, related_name="floating_ip")
    floating_ip_address = models.GenericIPAddressField()
    port = models.ForeignKey(Port, null=True, blank=True, on_delete=models.SET_NULL, related_name="floating_ips")
    fixed_ip_address = models.GenericIPAddressField(null=True, blank=True)
    router = models.ForeignKey(Router, null=True, blank=True, on_delete=models.PROTECT, related_name="floating_ips")
    status = models.CharField(max_length=16, default="DOWN")

    def __str__(self):
        return self.floating_ip_address

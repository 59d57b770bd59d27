"""Neutron v2.0 bodies, as in the Neutron API reference."""


def ts(value):
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _common(row, project_id):
    return {
        "id": row.pk,
        "tenant_id": project_id,
        "project_id": project_id,
        "created_at": ts(row.created_at),
        "updated_at": ts(row.updated_at),
        "revision_number": row.revision_number,
        "tags": [],
        "description": row.description,
    }


def network_body(network):
    return {
        **_common(network, network.project_id),
        "name": network.name,
        "status": network.status,
        "admin_state_up": network.admin_state_up,
        "shared": network.shared,
        "router:external": network.router_external,
        "mtu": network.mtu,
        "subnets": [s.pk for s in network.subnets.all()],
        "availability_zones": ["nova"],
        "availability_zone_hints": [],
        "ipv4_address_scope": None,
        "ipv6_address_scope": None,
        "port_security_enabled": True,
        "is_default": network.router_external and network.name == "public",
        "l2_adjacency": True,
        "provider:network_type": "vxlan",
        "provider:segmentation_id": network.segmentation_id,
        "provider:physical_network": None,
    }


def subnet_body(subnet):
    return {
        **_common(subnet, subnet.project_id),
        "name": subnet.name,
        "network_id": subnet.network_id,
        "ip_version": subnet.ip_version,
        "cidr": subnet.cidr,
        "gateway_ip": subnet.gateway_ip,
        "allocation_pools": subnet.allocation_pools,
        "dns_nameservers": subnet.dns_nameservers,
        "host_routes": subnet.host_routes,
        "enable_dhcp": subnet.enable_dhcp,
        "ipv6_ra_mode": None,
        "ipv6_address_mode": None,
        "subnetpool_id": None,
        "service_types": [],
        "segment_id": None,
        "dns_publish_fixed_ip": False,
    }


# What port_body() reads of a port: a list page reads just these columns.
PORT_COLUMNS = (
    "pk",
    "project_id",
    "created_at",
    "updated_at",
    "revision_number",
    "description",
    "name",
    "network_id",
    "mac_address",
    "admin_state_up",
    "status",
    "device_owner",
    "device_id",
    "port_security_enabled",
    "allowed_address_pairs",
    "binding_host",
)


def port_body(port, fixed_ips, group_ids):
    """A Port, or a row of its PORT_COLUMNS; ``fixed_ips`` as
    [{subnet_id, ip_address}] and the security group ids are read for a
    whole page of ports at once (PortResource.prepare)."""
    return {
        **_common(port, port.project_id),
        "name": port.name,
        "network_id": port.network_id,
        "mac_address": port.mac_address,
        "admin_state_up": port.admin_state_up,
        "status": port.status,
        "device_owner": port.device_owner,
        "device_id": port.device_id,
        "fixed_ips": fixed_ips,
        "security_groups": group_ids,
        "port_security_enabled": port.port_security_enabled,
        "allowed_address_pairs": [
            {"ip_address": p["ip_address"], "mac_address": p.get("mac_address") or port.mac_address}
            for p in port.allowed_address_pairs
        ],
        "binding:host_id": port.binding_host,
        "binding:vif_type": "bridge" if port.binding_host else "unbound",
        "binding:vnic_type": "normal",
        "binding:vif_details": {},
        "binding:profile": {},
        "extra_dhcp_opts": [],
        "dns_name": "",
        "dns_assignment": [],
        "propagate_uplink_status": False,
    }


def router_body(router, gateway=None):
    info = None
    if router.gateway_network_id:
        info = {
            "network_id": router.gateway_network_id,
            "enable_snat": router.enable_snat,
            "external_fixed_ips": [
                {"subnet_id": f.subnet_id, "ip_address": f.ip_address}
                for f in (gateway.fixed_ips.all() if gateway else [])
            ],
        }
    return {
        **_common(router, router.project_id),
        "name": router.name,
        "status": router.status,
        "admin_state_up": router.admin_state_up,
        "external_gateway_info": info,
        "routes": router.routes,
        "distributed": False,
        "ha": False,
        "availability_zones": ["nova"],
        "availability_zone_hints": [],
        "flavor_id": None,
    }


def floating_ip_body(fip):
    return {
        **_common(fip, fip.project_id),
        "floating_network_id": fip.floating_network_id,
        "floating_ip_address": fip.floating_ip_address,
        "fixed_ip_address": fip.fixed_ip_address,
        "port_id": fip.port_id,
        "router_id": fip.router_id,
        "status": fip.status,
        "port_details": None,
        "dns_domain": "",
        "dns_name": "",
        "port_forwardings": [],
        "qos_policy_id": None,
    }


def rule_body(rule, project_id=None):
    project_id = project_id or rule.group.project_id
    return {
        "id": rule.pk,
        "tenant_id": project_id,
        "project_id": project_id,
        "security_group_id": rule.group_id,
        "direction": rule.direction,
        "ethertype": rule.ethertype,
        "protocol": rule.protocol,
        "port_range_min": rule.port_range_min,
        "port_range_max": rule.port_range_max,
        "remote_ip_prefix": rule.remote_ip_prefix,
        "remote_group_id": rule.remote_group_id,
        "remote_address_group_id": None,
        "normalized_cidr": rule.remote_ip_prefix,
        "description": rule.description,
        "created_at": ts(rule.created_at),
        "updated_at": ts(rule.updated_at),
        "revision_number": rule.revision_number,
        "belongs_to_default_sg": rule.group.name == "default",
    }


def security_group_body(group):
    return {
        **_common(group, group.project_id),
        "name": group.name,
        "stateful": True,
        "shared": False,
        "security_group_rules": [rule_body(r, group.project_id) for r in group.rules.all()],
    }

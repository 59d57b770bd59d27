"""The embedded default: IPAM and the API work, no dataplane."""

from network.drivers.base import NetworkDriver


class NoneDriver(NetworkDriver):
    """Does nothing and records nothing; every call succeeds."""

    name = "none"

    def ensure_network(self, net, local_ip=None, remote_ips=()):
        pass

    def delete_network(self, network_id):
        pass

    def ensure_dhcp(self, net, subnets, hosts):
        pass

    def delete_dhcp(self, network_id):
        pass

    def ensure_router(self, router):
        pass

    def delete_router(self, router_id):
        pass

    def ensure_uplink(self, net, uplink, addresses=()):
        pass

    def delete_uplink(self, network_id):
        pass

    def ensure_port_security(self, port):
        pass

    def delete_port_security(self, port_id):
        pass

    def ensure_group_members(self, group_id, addresses):
        pass

    def delete_group_members(self, group_id):
        pass

    def plug_tap(self, tap, network_id):
        return False

    def inventory(self, kind):
        return set()

    def list_resources(self):
        return []

    def cleanup_all(self):
        pass

"""Network agent tasks: each takes an id and reconciles that object on the
dataplane of the host whose worker consumes ``network.<host>``
(:mod:`network.agent`).

Routing: routers live on the network node (``NETWORK_NODE``); networks,
ports and security groups go to every network host that is up (each agent
touches only what belongs on it: bridges of networks with guests there, the
filters of ports bound there; DHCP and uplinks on the node).  A host that was
down catches up with :func:`network.agent.sync_host` when it comes back."""

import logging

from celery import shared_task
from django.conf import settings

from . import agent

logger = logging.getLogger(__name__)


def node_queue() -> str:
    return f"network.{settings.NETWORK_NODE}"


def agent_queues() -> list[str]:
    """``network.<host>`` of every network host that is up, the node always."""
    from compute.models import Host

    hosts = set(Host.objects.up().filter(network_agent=True).values_list("name", flat=True))
    hosts.add(settings.NETWORK_NODE)
    return [f"network.{name}" for name in sorted(hosts)]


@shared_task(soft_time_limit=60, time_limit=90, ignore_result=True)
def sync_network(network_id):
    agent.sync_network(network_id)


@shared_task(soft_time_limit=60, time_limit=90, ignore_result=True)
def sync_router(router_id):
    agent.sync_router(router_id)


@shared_task(soft_time_limit=60, time_limit=90, ignore_result=True)
def sync_port(port_id):
    """The port's filter, then its network (DHCP leases on the node) and the
    member sets of its groups (remote-group rules elsewhere match them)."""
    from .models import Port

    agent.sync_port(port_id)
    port = Port.objects.filter(pk=port_id).first()
    if port is not None:
        agent.sync_network(port.network_id)
        for group_id in port.security_groups.values_list("pk", flat=True):
            agent.sync_group_members(group_id)


@shared_task(soft_time_limit=120, time_limit=150, ignore_result=True)
def sync_security_group(group_id):
    agent.sync_security_group(group_id)


@shared_task(soft_time_limit=60, time_limit=90, ignore_result=True)
def sync_group_members(group_id):
    agent.sync_group_members(group_id)


@shared_task(soft_time_limit=300, time_limit=330, ignore_result=True)
def sync_host():
    agent.sync_host()


TASKS = {
    "network": sync_network,
    "router": sync_router,
    "port": sync_port,
    "security_group": sync_security_group,
    "group_members": sync_group_members,
}


def enqueue(changes) -> None:
    """Queue the sync of each ``(kind, object_id)``: routers on the network
    node, the rest on every network host that is up."""
    everywhere = None
    for kind, object_id in changes:
        if kind == "router":
            queues = [node_queue()]
        else:
            everywhere = everywhere or agent_queues()
            queues = everywhere
        for queue in queues:
            TASKS[kind].apply_async(args=(object_id,), queue=queue)

"""Network agent tasks: each takes an id and reconciles that object on the
host's dataplane (:mod:`network.agent`).  They run on ``network.<host>``;
for now every object is routed to ``network.<COMPUTE_HOST>`` (the
all-in-one layout: one host runs compute and the network agent)."""

import logging

from celery import shared_task
from django.conf import settings

from . import agent

logger = logging.getLogger(__name__)


def agent_queue() -> str:
    return f"network.{settings.COMPUTE_HOST}"


@shared_task(soft_time_limit=60, time_limit=90, ignore_result=True)
def sync_network(network_id):
    agent.sync_network(network_id)


@shared_task(soft_time_limit=60, time_limit=90, ignore_result=True)
def sync_router(router_id):
    agent.sync_router(router_id)


@shared_task(soft_time_limit=60, time_limit=90, ignore_result=True)
def sync_port(port_id):
    """The port's filter, then its network's DHCP leases and the filters of
    ports whose remote-group rules name one of its groups."""
    from .models import Port

    agent.sync_port(port_id)
    port = Port.objects.filter(pk=port_id).first()
    if port is not None:
        agent.sync_network(port.network_id)
        for group_id in port.security_groups.values_list("pk", flat=True):
            agent.sync_security_group(group_id)


@shared_task(soft_time_limit=120, time_limit=150, ignore_result=True)
def sync_security_group(group_id):
    agent.sync_security_group(group_id)


TASKS = {
    "network": sync_network,
    "router": sync_router,
    "port": sync_port,
    "security_group": sync_security_group,
}


def enqueue(kind: str, object_id: str) -> None:
    TASKS[kind].apply_async(args=(object_id,), queue=agent_queue())

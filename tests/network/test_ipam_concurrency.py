"""50 parallel port creations on a /26 whose pool holds 40 addresses: each
address is handed out once, exactly 40 succeed and the other 10 answer
409 IpAddressGenerationFailure."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections

from billing import quotas
from network.models import FixedIP

from .conftest import N, make_net


@pytest.mark.django_db(transaction=True)
def test_parallel_port_creation_never_duplicates_an_address(tenant_a):
    quotas.set_limit(tenant_a.project, "ports", -1)
    net, sub = make_net(
        tenant_a.api, cidr="10.20.0.0/26", allocation_pools=[{"start": "10.20.0.10", "end": "10.20.0.49"}]
    )
    barrier = threading.Barrier(50)

    def create(_):
        from tests.conftest import api_client

        client = api_client(tenant_a.member, tenant_a.project)
        try:
            barrier.wait()
            response = client.post(f"{N}/ports", {"port": {"network_id": net["id"]}}, format="json")
            return response.status_code, response.json()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(create, range(50)))
    created = [body["port"] for status, body in results if status == 201]
    failed = [body for status, body in results if status != 201]
    addresses = [p["fixed_ips"][0]["ip_address"] for p in created]
    assert len(created) == 40
    assert len(set(addresses)) == 40
    assert sorted(addresses, key=lambda a: int(a.rsplit(".", 1)[1])) == [f"10.20.0.{i}" for i in range(10, 50)]
    assert len(failed) == 10
    for body in failed:
        assert body["NeutronError"]["type"] == "IpAddressGenerationFailure"
        assert "No more IP addresses available on network" in body["NeutronError"]["message"]
    assert FixedIP.objects.filter(subnet_id=sub["id"]).count() == 40

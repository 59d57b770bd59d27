import pytest

from network.services import seed_public_network

N = "/network/v2.0"


@pytest.fixture
def public(operator):
    return seed_public_network(operator.memberships.first().project)


def post(client, collection, key, expect=201, **body):
    response = client.post(f"{N}/{collection}", {key: body}, format="json")
    assert response.status_code == expect, response.content
    return response.json()[key] if expect == 201 else response.json()["NeutronError"]


def make_net(client, name="net", cidr="10.0.0.0/24", **subnet):
    net = post(client, "networks", "network", name=name)
    sub = post(client, "subnets", "subnet", network_id=net["id"], cidr=cidr, ip_version=4, name=f"{name}-sub", **subnet)
    return net, sub

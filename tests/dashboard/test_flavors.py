import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from compute import services
from compute.models import Flavor

from .conftest import signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def private_for_a(tenant_a):
    flavor = services.create_flavor(id="alpha-only", name="alpha.private", vcpus=2, ram=2048, is_public=False)
    services.add_flavor_access(flavor, tenant_a.project)
    return flavor


def test_flavor_list_shows_public_and_shared_private(flavors, private_for_a, member_a, member_b):
    page = member_a.get("/flavors/").content.decode()
    assert "gp1.semisonic" in page
    assert "alpha.private" in page
    other = member_b.get("/flavors/").content.decode()
    assert "gp1.semisonic" in other
    assert "alpha.private" not in other


def test_private_flavor_detail_is_404_for_another_project(private_for_a, member_a, member_b):
    assert member_a.get("/flavors/alpha-only/").status_code == 200
    response = member_b.get("/flavors/alpha-only/")
    assert response.status_code == 404
    assert "alpha.private" not in response.content.decode()


def test_operator_gets_the_project_view_in_the_project_panel(private_for_a, operator_client):
    # Operators see every flavor in the Admin panel; the Project panel shows
    # what their current project may launch.
    assert operator_client.get("/flavors/alpha-only/").status_code == 404
    assert operator_client.get("/operator/flavors/").content.decode().count("alpha.private") == 1


def test_disabled_flavors_are_not_offered(flavors, member_a):
    Flavor.objects.filter(pk="50").update(disabled=True)
    assert "gp1.semisonic" not in member_a.get("/flavors/").content.decode()


def test_flavor_list_sorts_and_answers_htmx_with_the_table_only(flavors, member_a):
    page = member_a.get("/flavors/", {"sort": "-ram"}).content.decode()
    assert page.index("gp1.hyperspeed") < page.index("gp1.semisonic")
    partial = member_a.get("/flavors/", {"sort": "name"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="flavor-table")
    body = partial.content.decode()
    assert body.lstrip().startswith('<div id="flavor-table"')
    assert "<nav" not in body and "project-switcher" not in body


def make_flavors(count, start=0):
    for i in range(start, start + count):
        Flavor.objects.create(id=f"f{i}", name=f"size-{i:03d}", vcpus=1 + i % 8, ram=512 * (1 + i), disk=10)


def count_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.parametrize("url", ["/flavors/", "/operator/flavors/"])
def test_flavor_lists_cost_the_same_queries_for_10_and_100_flavors(tenant_a, operator, url):
    client = signed_in(operator)
    for flavor_id in ("f-private-1", "f-private-2"):  # private flavors with access rows to prefetch
        flavor = services.create_flavor(id=flavor_id, name=flavor_id, vcpus=1, ram=1, is_public=False)
        services.add_flavor_access(flavor, tenant_a.project)
    make_flavors(10)
    client.get(url)  # warm up the session and content-type caches
    with_10 = count_queries(client, url)
    make_flavors(90, start=10)
    with_100 = count_queries(client, url + "?per_page=100")
    assert with_100 == with_10, f"{url}: {with_10} queries for 10 flavors, {with_100} for 100"

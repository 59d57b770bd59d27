"""Nova 2.1 flavors, os-flavor-access and os-extra_specs: tenant scoping,
operator-only writes, pagination, filters and microversion headers."""

import pytest

from compute import services
from compute.catalog import DREAMCOMPUTE_FLAVORS

pytestmark = pytest.mark.django_db

FLAVORS = "/compute/v2.1/flavors"


@pytest.fixture
def private_flavor(flavors, tenant_a):
    """A private flavor shared with project alpha only."""
    flavor = services.create_flavor(id="priv-1", name="gp1.private", vcpus=2, ram=3072, disk=40, is_public=False)
    services.add_flavor_access(flavor, tenant_a.project)
    return flavor


def ids(response, key="flavors"):
    assert response.status_code == 200, response.content
    return [f["id"] for f in response.json()[key]]


def new_flavor(**overrides):
    body = {"name": "gp1.test", "ram": 256, "vcpus": 1, "disk": 10, "id": "t-1"}
    body.update(overrides)
    return {"flavor": body}


# --- Tenant scoping ---------------------------------------------------------------

def test_project_sharing_the_private_flavor_sees_it(private_flavor, tenant_a):
    assert "priv-1" in ids(tenant_a.api.get(FLAVORS))
    assert "priv-1" in ids(tenant_a.api.get(FLAVORS + "/detail"))
    # The CLI's `flavor list` asks with is_public=None; the private flavor is still there.
    assert "priv-1" in ids(tenant_a.api.get(FLAVORS + "/detail", {"is_public": "None"}))
    shown = tenant_a.api.get(f"{FLAVORS}/priv-1")
    assert shown.status_code == 200
    flavor = shown.json()["flavor"]
    assert (flavor["name"], flavor["vcpus"], flavor["ram"], flavor["disk"]) == ("gp1.private", 2, 3072, 40)
    assert flavor["os-flavor-access:is_public"] is False


def test_other_project_gets_404_never_the_flavor(private_flavor, tenant_b):
    shown = tenant_b.api.get(f"{FLAVORS}/priv-1")
    assert shown.status_code == 404
    body = shown.json()
    assert body == {"itemNotFound": {"code": 404, "message": "Flavor priv-1 could not be found."}}
    assert "gp1.private" not in shown.content.decode()
    for path in (FLAVORS, FLAVORS + "/detail"):
        for params in ({}, {"is_public": "None"}, {"is_public": "false"}):
            listed = tenant_b.api.get(path, params)
            assert "priv-1" not in ids(listed)
            assert len(ids(listed)) == len(DREAMCOMPUTE_FLAVORS)
    assert tenant_b.api.get(f"{FLAVORS}/priv-1/os-extra_specs").status_code == 404


def test_reader_lists_flavors_but_cannot_create_a_key_pair(flavors, tenant_a):
    assert len(ids(tenant_a.reader_api.get(FLAVORS + "/detail"))) == len(DREAMCOMPUTE_FLAVORS)
    assert tenant_a.reader_api.get(f"{FLAVORS}/50").status_code == 200
    refused = tenant_a.reader_api.post("/compute/v2.1/os-keypairs", {"keypair": {"name": "r"}}, format="json")
    assert refused.status_code == 403
    assert refused.json()["forbidden"]["code"] == 403
    assert tenant_a.reader_api.get("/compute/v2.1/os-keypairs").json() == {"keypairs": []}


def test_members_cannot_manage_flavors(private_flavor, tenant_a):
    api = tenant_a.api
    attempts = [
        api.post(FLAVORS, new_flavor(), format="json"),
        api.delete(f"{FLAVORS}/50"),
        api.get(f"{FLAVORS}/priv-1/os-flavor-access"),
        api.post(f"{FLAVORS}/priv-1/action", {"addTenantAccess": {"tenant": tenant_a.project.pk}}, format="json"),
        api.post(f"{FLAVORS}/priv-1/action", {"removeTenantAccess": {"tenant": tenant_a.project.pk}}, format="json"),
        api.post(f"{FLAVORS}/50/os-extra_specs", {"extra_specs": {"k": "v"}}, format="json"),
        api.put(f"{FLAVORS}/50/os-extra_specs/k", {"k": "v"}, format="json"),
        api.delete(f"{FLAVORS}/50/os-extra_specs/k"),
    ]
    for response in attempts:
        assert response.status_code == 403, (response.request["PATH_INFO"], response.content)
        assert "forbidden" in response.json()
    assert tenant_a.api.get(f"{FLAVORS}/50").status_code == 200  # not deleted
    assert not services.Flavor.objects.filter(pk="t-1").exists()


# --- Operator writes --------------------------------------------------------------

def test_operator_creates_and_deletes_a_flavor(flavors, operator, tenant_a):
    created = operator.api.post(FLAVORS, new_flavor(swap=512, **{"OS-FLV-EXT-DATA:ephemeral": 5}), format="json")
    assert created.status_code == 200, created.content  # Nova 2.1 answers 200, not 201
    flavor = created.json()["flavor"]
    assert flavor["id"] == "t-1" and flavor["name"] == "gp1.test"
    assert (flavor["ram"], flavor["vcpus"], flavor["disk"], flavor["swap"]) == (256, 1, 10, 512)
    assert flavor["OS-FLV-EXT-DATA:ephemeral"] == 5
    assert flavor["os-flavor-access:is_public"] is True
    assert {link["rel"] for link in flavor["links"]} == {"self", "bookmark"}
    assert "t-1" in ids(tenant_a.api.get(FLAVORS))

    deleted = operator.api.delete(f"{FLAVORS}/t-1")
    assert deleted.status_code == 202
    assert tenant_a.api.get(f"{FLAVORS}/t-1").status_code == 404
    assert operator.api.delete(f"{FLAVORS}/t-1").status_code == 404


def test_operator_flavor_id_is_generated_when_absent(operator):
    created = operator.api.post(FLAVORS, {"flavor": {"name": "auto", "ram": 64, "vcpus": 1, "disk": 0}},
                                format="json")
    assert created.status_code == 200
    flavor_id = created.json()["flavor"]["id"]
    assert len(flavor_id) == 36  # a UUID, as Nova generates
    assert operator.api.get(f"{FLAVORS}/{flavor_id}").json()["flavor"]["name"] == "auto"


@pytest.mark.parametrize("overrides,message", [
    ({"id": "50", "name": "another"}, "Flavor with ID 50 already exists."),
    ({"id": "new-id", "name": "gp1.semisonic"}, "Flavor with name gp1.semisonic already exists."),
])
def test_duplicate_flavor_is_409(flavors, operator, overrides, message):
    response = operator.api.post(FLAVORS, new_flavor(**overrides), format="json")
    assert response.status_code == 409
    assert response.json() == {"conflictingRequest": {"code": 409, "message": message}}


def test_flavor_access_add_list_remove(operator, tenant_a, tenant_b):
    created = operator.api.post(FLAVORS, new_flavor(id="p-2", **{"os-flavor-access:is_public": False}),
                                format="json")
    assert created.json()["flavor"]["os-flavor-access:is_public"] is False
    access = f"{FLAVORS}/p-2/os-flavor-access"
    action = f"{FLAVORS}/p-2/action"
    assert operator.api.get(access).json() == {"flavor_access": []}
    assert tenant_a.api.get(f"{FLAVORS}/p-2").status_code == 404

    added = operator.api.post(action, {"addTenantAccess": {"tenant": tenant_a.project.pk}}, format="json")
    assert added.status_code == 200
    assert added.json() == {"flavor_access": [{"flavor_id": "p-2", "tenant_id": tenant_a.project.pk}]}
    assert operator.api.get(access).json() == added.json()
    assert tenant_a.api.get(f"{FLAVORS}/p-2").status_code == 200
    assert tenant_b.api.get(f"{FLAVORS}/p-2").status_code == 404

    again = operator.api.post(action, {"addTenantAccess": {"tenant": tenant_a.project.pk}}, format="json")
    assert again.status_code == 409
    unknown = operator.api.post(action, {"addTenantAccess": {"tenant": "no-such-project"}}, format="json")
    assert unknown.status_code == 400

    removed = operator.api.post(action, {"removeTenantAccess": {"tenant": tenant_a.project.pk}}, format="json")
    assert removed.status_code == 200
    assert removed.json() == {"flavor_access": []}
    assert tenant_a.api.get(f"{FLAVORS}/p-2").status_code == 404
    # Nova: removing access that is not there is FlavorAccessNotFound, a 404.
    missing = operator.api.post(action, {"removeTenantAccess": {"tenant": tenant_a.project.pk}}, format="json")
    assert missing.status_code == 404
    assert "itemNotFound" in missing.json()


def test_public_flavor_has_no_access_list(flavors, operator):
    response = operator.api.get(f"{FLAVORS}/50/os-flavor-access")
    assert response.status_code == 404
    assert response.json()["itemNotFound"]["message"] == "Access list not available for public flavors."


def test_extra_specs(flavors, operator, tenant_a):
    specs = f"{FLAVORS}/50/os-extra_specs"
    assert tenant_a.api.get(specs).json() == {"extra_specs": {}}
    set_ = operator.api.post(specs, {"extra_specs": {"hw:cpu_policy": "shared", "quota:disk_read_iops_sec": 500}},
                             format="json")
    assert set_.status_code == 200
    assert set_.json() == {"extra_specs": {"hw:cpu_policy": "shared", "quota:disk_read_iops_sec": "500"}}
    assert tenant_a.api.get(specs).json()["extra_specs"]["hw:cpu_policy"] == "shared"
    assert tenant_a.api.get(f"{specs}/hw:cpu_policy").json() == {"hw:cpu_policy": "shared"}
    missing = tenant_a.api.get(f"{specs}/hw:nothing")
    assert missing.status_code == 404 and "itemNotFound" in missing.json()
    assert operator.api.delete(f"{specs}/hw:cpu_policy").status_code == 202
    assert tenant_a.api.get(f"{specs}/hw:cpu_policy").status_code == 404
    assert tenant_a.api.get(f"{FLAVORS}/nope/os-extra_specs").status_code == 404


# --- Listing ----------------------------------------------------------------------

def test_pagination_follows_next_links(flavors, tenant_a):
    expected = sorted(f[0] for f in DREAMCOMPUTE_FLAVORS)  # Nova sorts by flavorid, a string
    seen = []
    response = tenant_a.api.get(FLAVORS + "/detail", {"limit": 4})
    pages = 0
    while True:
        pages += 1
        body = response.json()
        assert len(body["flavors"]) <= 4
        seen += [f["id"] for f in body["flavors"]]
        nexts = [link["href"] for link in body.get("flavors_links", []) if link["rel"] == "next"]
        if not nexts:
            break
        assert "limit=4" in nexts[0] and f"marker={body['flavors'][-1]['id']}" in nexts[0]
        response = tenant_a.api.get(nexts[0])
        assert pages < 5
    assert seen == expected
    assert pages == 2


def test_marker_starts_after_the_marked_flavor(flavors, tenant_a):
    first = ids(tenant_a.api.get(FLAVORS, {"limit": 2}))
    assert first == ["100", "200"]
    assert ids(tenant_a.api.get(FLAVORS, {"limit": 2, "marker": "200"})) == ["300", "400"]


@pytest.mark.parametrize("params", [{"marker": "does-not-exist"}, {"limit": "-1"}, {"limit": "many"},
                                    {"minRam": "abc"}, {"minDisk": "-5"}, {"sort_key": "password"},
                                    {"sort_dir": "sideways"}, {"is_public": "maybe"}])
def test_bad_list_parameters_are_400(flavors, tenant_a, params):
    response = tenant_a.api.get(FLAVORS, params)
    assert response.status_code == 400
    assert response.json()["badRequest"]["code"] == 400


def test_marker_of_a_hidden_flavor_is_400(private_flavor, tenant_b):
    assert tenant_b.api.get(FLAVORS, {"marker": "priv-1"}).status_code == 400


def test_min_ram_and_min_disk_filters(flavors, operator, tenant_a):
    services.create_flavor(id="big-disk", name="big-disk", vcpus=1, ram=512, disk=200)
    assert ids(tenant_a.api.get(FLAVORS, {"minRam": 4096})) == ["300", "400", "500"]
    assert ids(tenant_a.api.get(FLAVORS + "/detail", {"minDisk": 100})) == ["big-disk"]
    assert ids(tenant_a.api.get(FLAVORS, {"minRam": 8192, "minDisk": 80})) == ["400", "500"]
    assert ids(tenant_a.api.get(FLAVORS, {"minRam": 10**6})) == []


# --- Headers and unknown paths ----------------------------------------------------

def test_microversion_is_echoed(flavors, tenant_a):
    response = tenant_a.api.get(FLAVORS, HTTP_X_OPENSTACK_NOVA_API_VERSION="2.1")
    assert response.status_code == 200
    assert response["X-OpenStack-Nova-API-Version"] == "2.1"
    assert response["OpenStack-API-Version"] == "compute 2.1"
    assert "OpenStack-API-Version" in response["Vary"] and "X-OpenStack-Nova-API-Version" in response["Vary"]


def test_no_microversion_means_the_minimum(flavors, tenant_a):
    assert tenant_a.api.get(FLAVORS)["OpenStack-API-Version"] == "compute 2.1"


def test_latest_is_the_maximum(flavors, tenant_a):
    response = tenant_a.api.get(FLAVORS, HTTP_OPENSTACK_API_VERSION="compute latest")
    assert response.status_code == 200
    assert response["OpenStack-API-Version"] == "compute 2.1"
    assert response["X-OpenStack-Nova-API-Version"] == "2.1"


@pytest.mark.parametrize("header,version", [({"HTTP_OPENSTACK_API_VERSION": "compute 2.99"}, "2.99"),
                                            ({"HTTP_X_OPENSTACK_NOVA_API_VERSION": "2.99"}, "2.99"),
                                            ({"HTTP_OPENSTACK_API_VERSION": "compute 1.0"}, "1.0")])
def test_unsupported_microversion_is_406(flavors, tenant_a, header, version):
    response = tenant_a.api.get(FLAVORS, **header)
    assert response.status_code == 406
    error = response.json()["notAcceptable"]
    assert error["code"] == 406
    assert error["message"].startswith(f"Version {version} is not supported by the API.")


def test_malformed_microversion_is_400(flavors, tenant_a):
    response = tenant_a.api.get(FLAVORS, HTTP_OPENSTACK_API_VERSION="compute two")
    assert response.status_code == 400


def test_other_service_versions_are_ignored(flavors, tenant_a):
    response = tenant_a.api.get(FLAVORS, HTTP_OPENSTACK_API_VERSION="volume 3.70")
    assert response.status_code == 200
    assert response["OpenStack-API-Version"] == "compute 2.1"


def test_request_id_on_every_response(flavors, tenant_a):
    ok = tenant_a.api.get(FLAVORS)
    missing = tenant_a.api.get(f"{FLAVORS}/none")
    for response in (ok, missing):
        assert response["x-compute-request-id"].startswith("req-")
        assert response["x-openstack-request-id"] == response["x-compute-request-id"]
    assert ok["x-compute-request-id"] != missing["x-compute-request-id"]


@pytest.mark.parametrize("path", ["/compute/v2.1/no-such-thing", "/compute/v2.1/flavors/50/nothing",
                                  "/compute/v2.1/servers-ish/1/2"])
def test_unknown_compute_path_is_nova_style_404(tenant_a, path):
    response = tenant_a.api.get(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["itemNotFound"]
    assert body["itemNotFound"]["code"] == 404 and body["itemNotFound"]["message"]


def test_without_a_token_is_401(flavors):
    from rest_framework.test import APIClient

    response = APIClient().get(FLAVORS)
    assert response.status_code == 401
    assert response.json()["unauthorized"]["code"] == 401
    assert response["WWW-Authenticate"].startswith("Keystone uri=")

"""Instance lifecycle through the Nova API, on libvirt's test driver.

Tasks run eagerly in the test process (CELERY_TASK_ALWAYS_EAGER) so each
request's on-commit work happens before the next assertion; the driver is
the real LibvirtDriver on ``test:///default``. The real worker processes
and QEMU guests are exercised by tests/conformance and the driver contract.
"""

import base64

import pytest

from billing import quotas
from compute import hosts
from compute.drivers import get_driver
from compute.models import Host, Instance

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def eager(eager_tasks):
    """Every test here runs its tasks inline (see tests/conftest.py)."""


def create(client, name="vm", flavor="50", image=None, **extra):
    body = {"server": {"name": name, "flavorRef": flavor, "imageRef": image.pk, **extra}}
    return client.post("/compute/v2.1/servers", body, format="json")


def test_launch_goes_active_on_the_scheduled_host(tenant_a, flavors, host, image, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = create(tenant_a.api, image=image, metadata={"role": "web"},
                          user_data=base64.b64encode(b"#!/bin/sh\necho hi\n").decode())
    assert response.status_code == 202, response.content
    server_id = response.json()["server"]["id"]
    body = tenant_a.api.get(f"/compute/v2.1/servers/{server_id}").json()["server"]
    assert body["status"] == "ACTIVE"
    assert body["OS-EXT-STS:power_state"] == 1
    assert body["metadata"] == {"role": "web"}
    assert body["flavor"]["id"] == "50"
    assert Instance.objects.get(pk=server_id).host == host
    assert f"dc-{server_id}" in {f"dc-{k}" if not k.startswith("dc-") else k for k in get_driver().list_guests()}
    actions = tenant_a.api.get(f"/compute/v2.1/servers/{server_id}/os-instance-actions").json()["instanceActions"]
    assert [a["action"] for a in actions] == ["create"]


def test_actions_follow_the_state_table(tenant_a, flavors, host, image, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        server_id = create(tenant_a.api, image=image).json()["server"]["id"]
    url = f"/compute/v2.1/servers/{server_id}"

    def act(body, expect=202):
        with django_capture_on_commit_callbacks(execute=True):
            response = tenant_a.api.post(f"{url}/action", body, format="json")
        assert response.status_code == expect, response.content
        return tenant_a.api.get(url).json()["server"]["status"]

    assert act({"os-stop": None}) == "SHUTOFF"
    assert act({"os-stop": None}, expect=409) == "SHUTOFF"  # not allowed from stopped
    assert act({"os-start": None}) == "ACTIVE"
    assert act({"pause": None}) == "PAUSED"
    assert act({"suspend": None}, expect=409) == "PAUSED"
    assert act({"unpause": None}) == "ACTIVE"
    assert act({"suspend": None}) == "SUSPENDED"
    assert act({"resume": None}) == "ACTIVE"
    assert act({"reboot": {"type": "HARD"}}) == "ACTIVE"
    assert act({"reboot": {"type": "SOFT"}}) == "ACTIVE"
    assert act({"resize": {"flavorRef": "100"}}) == "VERIFY_RESIZE"
    assert tenant_a.api.get(url).json()["server"]["flavor"]["id"] == "100"
    assert act({"revertResize": None}) == "ACTIVE"
    assert tenant_a.api.get(url).json()["server"]["flavor"]["id"] == "50"
    assert act({"resize": {"flavorRef": "100"}}) == "VERIFY_RESIZE"
    assert act({"confirmResize": None}) == "ACTIVE"
    assert Instance.objects.get(pk=server_id).memory_mib == 1024
    names = [a["action"] for a in tenant_a.api.get(f"{url}/os-instance-actions").json()["instanceActions"]]
    assert names.count("stop") == 1 and "resize" in names and "confirm_resize" in names
    with django_capture_on_commit_callbacks(execute=True):
        assert tenant_a.api.delete(url).status_code == 204
    assert tenant_a.api.get(url).status_code == 404
    assert f"dc-{server_id}" not in get_driver().list_guests() and server_id not in get_driver().list_guests()


def test_locked_server_refuses_actions(tenant_a, flavors, host, image, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        server_id = create(tenant_a.api, image=image).json()["server"]["id"]
    url = f"/compute/v2.1/servers/{server_id}/action"
    assert tenant_a.api.post(url, {"lock": None}, format="json").status_code == 202
    response = tenant_a.api.post(url, {"os-stop": None}, format="json")
    assert response.status_code == 409
    assert "locked" in response.json()["conflictingRequest"]["message"]
    assert tenant_a.api.post(url, {"unlock": None}, format="json").status_code == 202


def test_no_valid_host_is_an_error_with_a_fault(tenant_a, flavors, image, django_capture_on_commit_callbacks):
    Host.objects.create(name="tiny", uri="test:///default", virt_type="qemu", vcpus=1, memory_mib=256, disk_gb=10,
                        ram_allocation_ratio=1.0)
    hosts.heartbeat("tiny")
    with django_capture_on_commit_callbacks(execute=True):
        server_id = create(tenant_a.api, image=image).json()["server"]["id"]
    body = tenant_a.api.get(f"/compute/v2.1/servers/{server_id}").json()["server"]
    assert body["status"] == "ERROR"
    assert body["fault"]["message"].startswith("No valid host was found")


def test_scheduler_spreads_and_honours_anti_affinity(tenant_a, flavors, image, django_capture_on_commit_callbacks):
    for name in ("h1", "h2"):
        Host.objects.create(name=name, uri="test:///default", virt_type="qemu", vcpus=4, memory_mib=4096,
                            disk_gb=1000)
        hosts.heartbeat(name)
    Host.objects.create(name="dead", uri="test:///default", virt_type="qemu", vcpus=64, memory_mib=65536,
                        disk_gb=1000)  # never heartbeats: must get nothing
    group = tenant_a.api.post("/compute/v2.1/os-server-groups",
                              {"server_group": {"name": "spread", "policies": ["anti-affinity"]}},
                              format="json").json()["server_group"]
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(2):
            body = {"server": {"name": f"g{i}", "flavorRef": "100", "imageRef": image.pk},
                    "os:scheduler_hints": {"group": group["id"]}}
            assert tenant_a.api.post("/compute/v2.1/servers", body, format="json").status_code == 202
    placed = set(Instance.objects.filter(server_group_id=group["id"]).values_list("host__name", flat=True))
    assert placed == {"h1", "h2"}
    with django_capture_on_commit_callbacks(execute=True):
        body = {"server": {"name": "g3", "flavorRef": "100", "imageRef": image.pk},
                "os:scheduler_hints": {"group": group["id"]}}
        server_id = tenant_a.api.post("/compute/v2.1/servers", body, format="json").json()["server"]["id"]
    third = Instance.objects.get(pk=server_id)
    assert third.vm_state == "error" and third.host is None
    # Without a group, the emptier host is chosen: spread by free RAM.
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(4):
            create(tenant_a.api, name=f"s{i}", flavor="100", image=image)
    per_host = {h: Instance.objects.filter(host__name=h).count() for h in ("h1", "h2", "dead")}
    assert per_host["dead"] == 0 and abs(per_host["h1"] - per_host["h2"]) <= 1


def test_quota_counts_instances_cores_and_ram(tenant_a, flavors, host, image, django_capture_on_commit_callbacks):
    quotas.set_limit(tenant_a.project, "cores", 2)
    with django_capture_on_commit_callbacks(execute=True):
        assert create(tenant_a.api, image=image, flavor="300").status_code == 202  # 2 vCPUs
    response = create(tenant_a.api, image=image, flavor="50")
    assert response.status_code == 403
    assert "cores" in response.json()["forbidden"]["message"]


def test_min_max_count(tenant_a, flavors, host, image, django_capture_on_commit_callbacks):
    quotas.set_limit(tenant_a.project, "instances", 3)
    with django_capture_on_commit_callbacks(execute=True):
        response = create(tenant_a.api, image=image, name="many", min_count=2, max_count=5)
    assert response.status_code == 202
    names = sorted(Instance.objects.for_project(tenant_a.project).values_list("name", flat=True))
    assert names == ["many-1", "many-2", "many-3"]
    assert create(tenant_a.api, image=image, name="more", min_count=1).status_code == 403


@pytest.mark.parametrize("body,message", [
    ({"name": "x", "flavorRef": "nope", "imageRef": "IMAGE"}, "Flavor nope could not be found"),
    ({"name": "x", "flavorRef": "50", "imageRef": "00000000-0000-0000-0000-000000000000"}, "could not be found"),
    ({"name": "x", "flavorRef": "50", "imageRef": "IMAGE", "key_name": "missing"}, "Invalid key_name"),
    ({"name": "", "flavorRef": "50", "imageRef": "IMAGE"}, "non-blank"),
    ({"name": "x" * 256, "flavorRef": "50", "imageRef": "IMAGE"}, "longer than 255"),
    ({"name": "x", "flavorRef": "50", "imageRef": "IMAGE", "user_data": "%%%"}, "base64"),
    ({"name": "x", "flavorRef": "50", "imageRef": "IMAGE", "bogus": 1}, "Additional properties"),
])
def test_bad_launch_requests_are_400(tenant_a, flavors, host, image, body, message):
    body = {k: (image.pk if v == "IMAGE" else v) for k, v in body.items()}
    response = tenant_a.api.post("/compute/v2.1/servers", {"server": body}, format="json")
    assert response.status_code == 400
    assert message in response.json()["badRequest"]["message"]


def test_other_projects_servers_are_404(tenant_a, tenant_b, flavors, host, image,
                                        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        server_id = create(tenant_a.api, image=image).json()["server"]["id"]
    for method, url, body in (("get", "", None), ("delete", "", None), ("post", "/action", {"os-stop": None}),
                              ("get", "/os-instance-actions", None), ("get", "/metadata", None)):
        response = getattr(tenant_b.api, method)(f"/compute/v2.1/servers/{server_id}{url}", body, format="json")
        assert response.status_code == 404, (method, url)
    assert tenant_b.api.get("/compute/v2.1/servers").json()["servers"] == []
    assert tenant_a.reader_api.post(f"/compute/v2.1/servers/{server_id}/action", {"os-stop": None},
                                    format="json").status_code == 403


def test_list_filters_and_query_count(tenant_a, flavors, host, image, django_assert_max_num_queries,
                                      django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        for name in ("web-1", "web-2", "db-1"):
            create(tenant_a.api, name=name, image=image)
    names = {s["name"] for s in tenant_a.api.get("/compute/v2.1/servers/detail?name=^web").json()["servers"]}
    assert names == {"web-1", "web-2"}
    assert tenant_a.api.get("/compute/v2.1/servers?name=(").status_code == 400
    assert len(tenant_a.api.get("/compute/v2.1/servers?status=ACTIVE").json()["servers"]) == 3
    page = tenant_a.api.get("/compute/v2.1/servers?limit=2").json()
    assert len(page["servers"]) == 2 and page["servers_links"][0]["rel"] == "next"
    # The detail list costs the same queries for 3 servers as for 30.
    with django_assert_max_num_queries(12):
        tenant_a.api.get("/compute/v2.1/servers/detail")
    Instance.objects.bulk_create([Instance(project=tenant_a.project, user=tenant_a.member, name=f"bulk{i}",
                                           hostname=f"bulk{i}", flavor_ref="50", flavor_name="gp1.semisonic",
                                           vcpus=1, memory_mib=512, root_gb=80, host=host, vm_state="active",
                                           task_state=None) for i in range(30)])
    with django_assert_max_num_queries(12):
        assert len(tenant_a.api.get("/compute/v2.1/servers/detail").json()["servers"]) == 33


def test_reconcile_syncs_power_state_and_expires_stuck_tasks(tenant_a, flavors, host, image, settings,
                                                             django_capture_on_commit_callbacks):
    from compute.reconcile import reconcile
    from storage.drivers import get_storage

    with django_capture_on_commit_callbacks(execute=True):
        server_id = create(tenant_a.api, image=image).json()["server"]["id"]
    get_driver().power_off(server_id, timeout=0)  # behind our back
    with django_capture_on_commit_callbacks(execute=True):
        report = reconcile(host, get_driver(), get_storage())
    assert server_id in report["power_synced"]
    assert tenant_a.api.get(f"/compute/v2.1/servers/{server_id}").json()["server"]["status"] == "SHUTOFF"

    stuck = Instance.objects.create(project=tenant_a.project, user=tenant_a.member, name="stuck", hostname="stuck",
                                    flavor_ref="50", flavor_name="x", vcpus=1, memory_mib=512, root_gb=1,
                                    task_state="spawning", host=host)
    Instance.objects.filter(pk=stuck.pk).update(updated_at=stuck.updated_at.replace(year=2000))
    with django_capture_on_commit_callbacks(execute=True):
        report = reconcile(host, get_driver(), get_storage())
    assert stuck.pk in report["timed_out"]
    stuck.refresh_from_db()
    assert (stuck.vm_state, stuck.task_state) == ("error", None)
    assert stuck.faults.first().message.startswith("Timed out")


def test_rebuild_snapshot_and_console(tenant_a, flavors, host, image, django_capture_on_commit_callbacks):
    from compute.models import Image

    with django_capture_on_commit_callbacks(execute=True):
        server_id = create(tenant_a.api, image=image).json()["server"]["id"]
    url = f"/compute/v2.1/servers/{server_id}"
    with django_capture_on_commit_callbacks(execute=True):
        response = tenant_a.api.post(f"{url}/action", {"createImage": {"name": "snap-1"}}, format="json")
    assert response.status_code == 202
    snap_id = response["Location"].rsplit("/", 1)[-1]
    snap = Image.objects.get(pk=snap_id)
    assert (snap.status, snap.name, snap.owner_id) == ("active", "snap-1", tenant_a.project.pk)
    assert snap.size > 0 and snap.properties["instance_uuid"] == server_id
    with django_capture_on_commit_callbacks(execute=True):
        response = tenant_a.api.post(f"{url}/action", {"rebuild": {"imageRef": snap_id, "name": "rebuilt"}},
                                     format="json")
    assert response.status_code == 202
    body = tenant_a.api.get(url).json()["server"]
    assert (body["status"], body["name"], body["image"]["id"]) == ("ACTIVE", "rebuilt", snap_id)
    output = tenant_a.api.post(f"{url}/action", {"os-getConsoleOutput": {"length": 5}}, format="json")
    assert output.status_code == 200 and "output" in output.json()
    bad = tenant_a.api.post(f"{url}/action", {"os-getConsoleOutput": {"length": "x"}}, format="json")
    assert bad.status_code == 400
    unknown = tenant_a.api.post(f"{url}/action", {"teleport": None}, format="json")
    assert unknown.status_code == 400

"""The Cinder v3 API on the file backend: volumes, actions, snapshots,
types; tenant isolation, quotas (413), bad input, dependencies, events.

Tasks run eagerly in the test process (see tests/conftest.py
``eager_tasks``) against the real file storage driver in a throwaway
STORAGE_ROOT, so each request's on-commit work is done before the next
assertion.
"""

import pytest

from billing import quotas
from storage.models import Volume, VolumeSnapshot

pytestmark = pytest.mark.django_db

VOLUME_KEYS = {"id", "name", "description", "size", "status", "availability_zone", "volume_type", "bootable",
               "encrypted", "multiattach", "attachments", "metadata", "snapshot_id", "source_volid", "user_id",
               "os-vol-tenant-attr:tenant_id", "created_at", "updated_at", "links"}


@pytest.fixture(autouse=True)
def file_storage(eager_tasks, settings, tmp_path):
    """The real file driver in a folder of this test's own (the ``image``
    fixture stores its image in the same one)."""
    from storage.drivers import get_storage

    settings.STORAGE_BACKEND = "file"
    settings.STORAGE_ROOT = str(tmp_path / "storage")
    get_storage.cache_clear()
    yield get_storage()
    get_storage.cache_clear()


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    """``run(call)``: make a request and run what it enqueued on commit."""
    def call(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return call


@pytest.fixture
def instance_factory(db):
    """``instance_factory(tenant)``: an instance row of the tenant's project
    (attach/detach execution is compute's; these tests drive the services)."""
    from compute.models import Instance

    def make(tenant, name="vm"):
        return Instance.objects.create(project=tenant.project, user=tenant.member, name=name, hostname=name,
                                       flavor_ref="50", flavor_name="gp1.semisonic", vcpus=1, memory_mib=512,
                                       root_gb=80)

    return make


def base(tenant):
    return f"/volume/v3/{tenant.project.pk}"


def create(run, tenant, expect=202, **volume):
    body = {"volume": {"size": 1, **volume}}
    response = run(tenant.api.post, f"{base(tenant)}/volumes", body, format="json")
    assert response.status_code == expect, response.content
    return response.json()["volume"] if expect == 202 else response.json()


def show(tenant, volume_id):
    response = tenant.api.get(f"{base(tenant)}/volumes/{volume_id}")
    assert response.status_code == 200, response.content
    return response.json()["volume"]


def action(run, tenant, volume_id, body, expect=202):
    response = run(tenant.api.post, f"{base(tenant)}/volumes/{volume_id}/action", body, format="json")
    assert response.status_code == expect, response.content
    return response


def snapshot(run, tenant, volume_id, expect=202, **extra):
    response = run(tenant.api.post, f"{base(tenant)}/snapshots",
                   {"snapshot": {"volume_id": volume_id, "name": "snap", **extra}}, format="json")
    assert response.status_code == expect, response.content
    return response.json()["snapshot"] if expect == 202 else response.json()


def test_create_as_the_cli_sends_it_list_show_and_delete(run, tenant_a):
    # `openstack volume create --size 1 vol1` sends nulls for what it does not set.
    nulls = dict.fromkeys(("imageRef", "snapshot_id", "source_volid", "volume_type", "availability_zone",
                           "metadata", "backup_id", "consistencygroup_id", "description"))
    response = run(tenant_a.api.post, f"{base(tenant_a)}/volumes", {"volume": {"size": 1, "name": "vol1", **nulls}},
                   format="json", HTTP_OPENSTACK_API_VERSION="volume 3.0")
    assert response.status_code == 202, response.content
    assert response["OpenStack-API-Version"] == "volume 3.0"
    created = response.json()["volume"]
    assert VOLUME_KEYS <= set(created)
    assert created["status"] == "creating" and created["bootable"] == "false"
    assert created["volume_type"] == "ceph" and created["availability_zone"] == "nova"
    assert created["os-vol-tenant-attr:tenant_id"] == tenant_a.project.pk
    shown = show(tenant_a, created["id"])
    assert shown["status"] == "available" and shown["size"] == 1 and shown["attachments"] == []
    assert "volume_image_metadata" not in shown
    brief = tenant_a.api.get(f"{base(tenant_a)}/volumes").json()["volumes"]
    assert brief == [{"id": created["id"], "name": "vol1", "links": created["links"]}]
    # Name lookups as the SDK makes them: 404 on the id path, then ?name=.
    assert tenant_a.api.get(f"{base(tenant_a)}/volumes/vol1").status_code == 404
    found = tenant_a.api.get(f"{base(tenant_a)}/volumes/detail?name=vol1").json()["volumes"]
    assert [v["id"] for v in found] == [created["id"]]
    response = run(tenant_a.api.delete, f"{base(tenant_a)}/volumes/{created['id']}")
    assert response.status_code == 202
    assert tenant_a.api.get(f"{base(tenant_a)}/volumes/{created['id']}").status_code == 404
    assert not Volume.objects.exists()


def test_another_projects_volumes_and_snapshots_are_404_everywhere(run, tenant_a, tenant_b):
    volume = create(run, tenant_a, name="secret")
    snap = snapshot(run, tenant_a, volume["id"])
    vid, sid = volume["id"], snap["id"]
    b = base(tenant_b)
    for response in (
        tenant_b.api.get(f"{b}/volumes/{vid}"),
        tenant_b.api.put(f"{b}/volumes/{vid}", {"volume": {"name": "x"}}, format="json"),
        tenant_b.api.delete(f"{b}/volumes/{vid}"),
        tenant_b.api.post(f"{b}/volumes/{vid}/action", {"os-extend": {"new_size": 2}}, format="json"),
        tenant_b.api.get(f"{b}/volumes/{vid}/metadata"),
        tenant_b.api.post(f"{b}/snapshots", {"snapshot": {"volume_id": vid}}, format="json"),
        tenant_b.api.post(f"{b}/volumes", {"volume": {"size": 1, "source_volid": vid}}, format="json"),
        tenant_b.api.post(f"{b}/volumes", {"volume": {"size": 1, "snapshot_id": sid}}, format="json"),
        tenant_b.api.get(f"{b}/snapshots/{sid}"),
        tenant_b.api.delete(f"{b}/snapshots/{sid}"),
    ):
        assert response.status_code == 404, response.content
        assert "itemNotFound" in response.json()
    assert tenant_b.api.get(f"{b}/volumes/detail").json()["volumes"] == []
    assert tenant_b.api.get(f"{b}/snapshots/detail").json()["snapshots"] == []
    # Project B's token on project A's URL.
    assert tenant_b.api.get(f"{base(tenant_a)}/volumes/detail").status_code == 403
    assert show(tenant_a, vid)["name"] == "secret"


def test_extend_bootable_update_and_metadata(run, tenant_a):
    volume = create(run, tenant_a, name="data", metadata={"tier": "gold"})
    vid = volume["id"]
    action(run, tenant_a, vid, {"os-extend": {"new_size": 3}})
    assert show(tenant_a, vid)["size"] == 3 and show(tenant_a, vid)["status"] == "available"
    error = action(run, tenant_a, vid, {"os-extend": {"new_size": 2}}, expect=400).json()
    assert "must be greater than current size" in error["badRequest"]["message"]
    action(run, tenant_a, vid, {"os-set_bootable": {"bootable": True}}, expect=200)
    assert show(tenant_a, vid)["bootable"] == "true"
    action(run, tenant_a, vid, {"os-set_bootable": {"bootable": "false"}}, expect=200)
    assert show(tenant_a, vid)["bootable"] == "false"
    updated = tenant_a.api.put(f"{base(tenant_a)}/volumes/{vid}",
                               {"volume": {"name": "renamed", "description": "d"}}, format="json").json()["volume"]
    assert (updated["name"], updated["description"]) == ("renamed", "d")
    url = f"{base(tenant_a)}/volumes/{vid}/metadata"
    assert tenant_a.api.post(url, {"metadata": {"a": "1"}}, format="json").json()["metadata"] == {
        "tier": "gold", "a": "1"}
    assert tenant_a.api.put(url, {"metadata": {"b": "2"}}, format="json").json()["metadata"] == {"b": "2"}
    assert tenant_a.api.get(f"{url}/b").json() == {"meta": {"b": "2"}}
    assert tenant_a.api.delete(f"{url}/b").status_code == 200
    assert tenant_a.api.get(url).json() == {"metadata": {}}
    assert tenant_a.api.get(f"{url}/b").status_code == 404
    # Filters: status, bootable, metadata (as the SDK sends it).
    tenant_a.api.post(url, {"metadata": {"role": "db"}}, format="json")
    other = create(run, tenant_a, name="other")
    listed = tenant_a.api.get(f"{base(tenant_a)}/volumes/detail", {"metadata": "{'role': 'db'}"}).json()
    assert [v["id"] for v in listed["volumes"]] == [vid]
    both = tenant_a.api.get(f"{base(tenant_a)}/volumes/detail?status=available&bootable=false").json()["volumes"]
    assert {v["id"] for v in both} == {vid, other["id"]}


def test_pagination_and_sorting(run, tenant_a):
    ids = [create(run, tenant_a, name=f"v{i}")["id"] for i in range(3)]
    page = tenant_a.api.get(f"{base(tenant_a)}/volumes/detail?limit=2&sort=name:asc").json()
    assert [v["name"] for v in page["volumes"]] == ["v0", "v1"]
    rest = tenant_a.api.get(page["volumes_links"][0]["href"]).json()
    assert [v["name"] for v in rest["volumes"]] == ["v2"] and "volumes_links" not in rest
    newest_first = tenant_a.api.get(f"{base(tenant_a)}/volumes").json()["volumes"]
    assert [v["id"] for v in newest_first] == ids[::-1]
    assert tenant_a.api.get(f"{base(tenant_a)}/volumes?marker=nope").status_code == 400
    assert tenant_a.api.get(f"{base(tenant_a)}/volumes?sort_key=secret").status_code == 400


@pytest.mark.parametrize("volume, message", [
    ({"size": 0}, "size"),
    ({"size": -1}, "size"),
    ({"size": "abc"}, "size"),
    ({"size": 1.5}, "size"),
    ({"size": None}, "size must be given"),
    ({"size": 1, "availability_zone": "mars"}, "Availability zone 'mars' is invalid"),
    ({"size": 1, "metadata": {"k": 1}}, "metadata"),
    ({"size": 1, "metadata": ["k"]}, "metadata"),
    ({"size": 1, "name": "x" * 256}, "name"),
    ({"size": 1, "imageRef": "no-such-image"}, "Invalid image identifier"),
    ({"size": 1, "backup_id": "b"}, "backup_id"),
    ({"size": 1, "multiattach": True}, "multiattach"),
])
def test_bad_input_is_400_with_a_message(run, tenant_a, volume, message):
    response = run(tenant_a.api.post, f"{base(tenant_a)}/volumes", {"volume": volume}, format="json")
    assert response.status_code == 400, response.content
    assert message in response.json()["badRequest"]["message"]
    assert not Volume.objects.exists()


def test_other_bad_requests(run, tenant_a):
    b = base(tenant_a)
    assert tenant_a.api.post(f"{b}/volumes", {"nope": {}}, format="json").status_code == 400
    assert tenant_a.api.post(f"{b}/volumes", "[1]", content_type="application/json").status_code == 400
    response = tenant_a.api.post(f"{b}/volumes", {"volume": {"size": 1, "volume_type": "gold"}}, format="json")
    assert response.status_code == 404 and "Volume type with name gold" in response.json()["itemNotFound"]["message"]
    vid = create(run, tenant_a)["id"]
    for body in ({"os-extend": {"new_size": "x"}}, {"os-extend": {}}, {"os-nope": {}},
                 {"os-extend": {"new_size": 2}, "os-set_bootable": {"bootable": True}},
                 {"os-set_bootable": {"bootable": "maybe"}}, {"os-extend": []}):
        assert action(run, tenant_a, vid, body, expect=400).json()["badRequest"]["message"]
    # Reset status is for operators only.
    assert action(run, tenant_a, vid, {"os-reset_status": {"status": "error"}}, expect=403)
    assert tenant_a.reader_api.post(f"{b}/volumes", {"volume": {"size": 1}}, format="json").status_code == 403


def test_operator_resets_status(run, tenant_a, operator):
    vid = create(run, tenant_a)["id"]
    from identity import services as identity_services
    from identity.choices import Role

    from ..conftest import api_client

    identity_services.set_membership(user=operator, project=tenant_a.project, role=Role.ADMIN)
    admin = api_client(operator, tenant_a.project)
    response = run(admin.post, f"{base(tenant_a)}/volumes/{vid}/action", {"os-reset_status": {"status": "error"}},
                   format="json")
    assert response.status_code == 202, response.content
    assert show(tenant_a, vid)["status"] == "error"
    bad = admin.post(f"{base(tenant_a)}/volumes/{vid}/action", {"os-reset_status": {"status": "melted"}},
                     format="json")
    assert bad.status_code == 400


def test_over_quota_by_count_and_by_gigabytes_is_413(run, tenant_a):
    quotas.set_limit(tenant_a.project, "volumes", 1)
    create(run, tenant_a, size=1)
    error = create(run, tenant_a, expect=413)
    assert error["overLimit"]["code"] == 413 and "volumes" in error["overLimit"]["message"]
    quotas.set_limit(tenant_a.project, "volumes", 10)
    error = create(run, tenant_a, size=100, expect=413)  # 1 GB used of 100
    assert "gigabytes" in error["overLimit"]["message"]
    vid = Volume.objects.get().pk
    error = action(run, tenant_a, vid, {"os-extend": {"new_size": 101}}, expect=413).json()
    assert "gigabytes" in error["overLimit"]["message"]
    assert show(tenant_a, vid)["status"] == "available" and show(tenant_a, vid)["size"] == 1
    # Snapshots count against snapshots and gigabytes.
    quotas.set_limit(tenant_a.project, "snapshots", 0)
    assert "snapshots" in snapshot(run, tenant_a, vid, expect=413)["overLimit"]["message"]
    # Per type, as Cinder: volumes_<type>.
    quotas.set_limit(tenant_a.project, "volumes_ceph", 1)
    assert "volumes_ceph" in create(run, tenant_a, expect=413)["overLimit"]["message"]


def test_limits_and_quota_set_show_real_usage(run, tenant_a):
    vid = create(run, tenant_a, size=3)["id"]
    snapshot(run, tenant_a, vid)
    absolute = tenant_a.api.get(f"{base(tenant_a)}/limits").json()["limits"]["absolute"]
    assert (absolute["totalVolumesUsed"], absolute["totalGigabytesUsed"], absolute["totalSnapshotsUsed"]) == (1, 6, 1)
    assert (absolute["maxTotalVolumes"], absolute["maxTotalVolumeGigabytes"]) == (64, 100)
    quota_set = tenant_a.api.get(f"{base(tenant_a)}/os-quota-sets/{tenant_a.project.pk}?usage=true").json()
    quota_set = quota_set["quota_set"]
    assert quota_set["volumes"]["in_use"] == 1 and quota_set["gigabytes"]["in_use"] == 6
    assert quota_set["volumes_ceph"] == {"limit": -1, "in_use": 1, "reserved": 0, "allocated": 0}
    assert quota_set["gigabytes_ceph"]["in_use"] == 6


def test_in_use_volume_cannot_be_deleted(run, tenant_a, instance_factory):
    from storage import services

    vid = create(run, tenant_a)["id"]
    volume = Volume.objects.get(pk=vid)
    attachment = services.reserve_attachment(volume, instance_factory(tenant_a))
    services.finish_attachment(attachment)
    shown = show(tenant_a, vid)
    assert shown["status"] == "in-use"
    assert shown["attachments"][0]["server_id"] == attachment.instance_id
    assert shown["attachments"][0]["device"] == "/dev/vdb"
    response = run(tenant_a.api.delete, f"{base(tenant_a)}/volumes/{vid}")
    assert response.status_code == 400
    assert "attached" in response.json()["badRequest"]["message"]
    assert action(run, tenant_a, vid, {"os-extend": {"new_size": 2}}, expect=400)
    # A snapshot of a volume in use needs force.
    assert "force" in snapshot(run, tenant_a, vid, expect=400)["badRequest"]["message"]
    assert snapshot(run, tenant_a, vid, force=True)["status"] == "creating"


def test_snapshots_and_their_dependents(run, tenant_a):
    vid = create(run, tenant_a, size=1, name="origin")["id"]
    snap = snapshot(run, tenant_a, vid, description="first", metadata={"k": "v"})
    sid = snap["id"]
    shown = tenant_a.api.get(f"{base(tenant_a)}/snapshots/{sid}").json()["snapshot"]
    assert shown["status"] == "available" and shown["volume_id"] == vid and shown["size"] == 1
    assert shown["metadata"] == {"k": "v"}
    listed = tenant_a.api.get(f"{base(tenant_a)}/snapshots/detail?name=snap").json()["snapshots"]
    assert [s["id"] for s in listed] == [sid]
    renamed = tenant_a.api.put(f"{base(tenant_a)}/snapshots/{sid}", {"snapshot": {"name": "snap2"}},
                               format="json").json()["snapshot"]
    assert renamed["name"] == "snap2"
    # A volume with snapshots is not deleted (Cinder's 400).
    response = run(tenant_a.api.delete, f"{base(tenant_a)}/volumes/{vid}")
    assert response.status_code == 400 and "dependent snapshots" in response.json()["badRequest"]["message"]
    child = create(run, tenant_a, size=2, snapshot_id=sid, name="child")
    assert show(tenant_a, child["id"])["status"] == "available"
    assert show(tenant_a, child["id"])["snapshot_id"] == sid
    # The snapshot has a copy-on-write child: refused at request time.
    response = run(tenant_a.api.delete, f"{base(tenant_a)}/snapshots/{sid}")
    assert response.status_code == 400
    assert "dependent volumes" in response.json()["badRequest"]["message"]
    # Cascade cannot take it either, while the child lives.
    response = run(tenant_a.api.delete, f"{base(tenant_a)}/volumes/{vid}?cascade=true")
    assert response.status_code == 400
    run(tenant_a.api.delete, f"{base(tenant_a)}/volumes/{child['id']}")
    response = run(tenant_a.api.delete, f"{base(tenant_a)}/volumes/{vid}?cascade=true")
    assert response.status_code == 202
    assert not Volume.objects.exists() and not VolumeSnapshot.objects.exists()


def test_volume_from_snapshot_smaller_than_it_is_refused(run, tenant_a):
    vid = create(run, tenant_a, size=2)["id"]
    sid = snapshot(run, tenant_a, vid)["id"]
    error = create(run, tenant_a, size=1, snapshot_id=sid, expect=400)
    assert "cannot be smaller than the snapshot size" in error["badRequest"]["message"]
    error = create(run, tenant_a, size=1, source_volid=vid, expect=400)
    assert "cannot be smaller than the source volume size" in error["badRequest"]["message"]
    # Without a size, the source's is taken.
    assert create(run, tenant_a, size=None, snapshot_id=sid)["size"] == 2


def test_clone_and_volume_from_image(run, tenant_a, image):
    source = create(run, tenant_a, size=1, name="src", metadata={"a": "b"})
    clone = create(run, tenant_a, size=2, source_volid=source["id"])
    shown = show(tenant_a, clone["id"])
    assert shown["status"] == "available" and shown["source_volid"] == source["id"] and shown["size"] == 2
    from_image = create(run, tenant_a, size=1, imageRef=image.pk, name="boot")
    shown = show(tenant_a, from_image["id"])
    assert shown["status"] == "available" and shown["bootable"] == "true"
    assert shown["volume_image_metadata"]["image_id"] == image.pk
    # A clone of a bootable volume is bootable.
    assert show(tenant_a, create(run, tenant_a, source_volid=from_image["id"])["id"])["bootable"] == "true"


def test_private_image_of_another_project_is_refused(run, tenant_a, tenant_b, image):
    from tests.compute.images import make_image

    private = make_image(owner=tenant_b.project, visibility="private")
    error = create(run, tenant_a, imageRef=private.pk, expect=400)
    assert "Invalid image identifier" in error["badRequest"]["message"]


def test_upload_to_image(run, tenant_a, image):
    vid = create(run, tenant_a, size=1, imageRef=image.pk)["id"]
    response = action(run, tenant_a, vid, {"os-volume_upload_image": {
        "image_name": "from-volume", "disk_format": "qcow2", "container_format": "bare", "force": False}})
    body = response.json()["os-volume_upload_image"]
    assert body["image_name"] == "from-volume" and body["status"] == "uploading"
    glance = tenant_a.api.get(f"/image/v2/images/{body['image_id']}").json()
    assert glance["status"] == "active" and glance["disk_format"] == "qcow2"
    assert glance["owner"] == tenant_a.project.pk
    assert show(tenant_a, vid)["status"] == "available"


def test_types_and_zones(tenant_a):
    types = tenant_a.api.get(f"{base(tenant_a)}/types").json()["volume_types"]
    assert [t["name"] for t in types] == ["ceph"]
    one = tenant_a.api.get(f"{base(tenant_a)}/types/{types[0]['id']}").json()["volume_type"]
    assert one["name"] == "ceph" and one["is_public"] is True
    assert tenant_a.api.get(f"{base(tenant_a)}/types/nope").status_code == 404
    zones = tenant_a.api.get(f"{base(tenant_a)}/os-availability-zone").json()["availabilityZoneInfo"]
    assert zones == [{"zoneName": "nova", "zoneState": {"available": True}}]


def test_every_status_change_is_published(run, tenant_a, monkeypatch):
    from core import events

    sent = []
    monkeypatch.setattr(events, "send_many", sent.extend)
    vid = create(run, tenant_a)["id"]
    action(run, tenant_a, vid, {"os-extend": {"new_size": 2}})
    run(tenant_a.api.delete, f"{base(tenant_a)}/volumes/{vid}")
    statuses = [e["volume"]["status"] for p, e in sent if e.get("id") == f"volume-status-{vid}"]
    assert statuses == ["creating", "available", "extending", "available", "deleting", "deleted"]
    assert all(p == tenant_a.project.pk for p, _ in sent)
    assert f'id="volume-status-{vid}"' in next(e for _, e in sent if e.get("id") == f"volume-status-{vid}")["html"]


@pytest.mark.parametrize("query", [
    "limit=-1", "limit=abc", "marker=x", "sort=name:sideways", "sort=bogus", "sort_dir=up", "bootable=maybe",
    "metadata=not-a-dict", "metadata=[1,2]", "offset=-3", "all_tenants=perhaps",
])
def test_bad_list_parameters_are_400_never_500(tenant_a, query):
    for collection in ("volumes", "volumes/detail", "snapshots/detail"):
        response = tenant_a.api.get(f"{base(tenant_a)}/{collection}?{query}")
        if collection.startswith("snapshots") and query.startswith(("bootable", "all_tenants=")):
            assert response.status_code in (200, 400), response.content
            continue
        assert response.status_code == 400, (collection, query, response.content)
        assert response.json()["badRequest"]["message"]


def test_odd_ids_and_sizes_are_404_or_400(run, tenant_a):
    b = base(tenant_a)
    for path in ("volumes/" + "x" * 300, "snapshots/%20", "types/" + "9" * 40, "volumes/1/metadata/k"):
        assert tenant_a.api.get(f"{b}/{path}").status_code == 404
    for size in (2**40, True, [], {"a": 1}):
        response = run(tenant_a.api.post, f"{b}/volumes", {"volume": {"size": size}}, format="json")
        assert response.status_code == 400, (size, response.content)
    for ref in (7, ["x"]):
        response = tenant_a.api.post(f"{b}/volumes", {"volume": {"size": 1, "snapshot_id": ref}}, format="json")
        assert response.status_code == 400

"""Glance v2 images through the API: upload and download with the real
qemu-img checks, JSON patch, members, filters and pagination, scoping."""

import hashlib
import json
import os

import pytest

from billing import quotas
from compute import images
from compute.models import Image
from storage.drivers import get_storage

from .images import make_image, qcow2_bytes

pytestmark = pytest.mark.django_db

IMAGES = "/image/v2/images"
PATCH = "application/openstack-images-v2.1-json-patch"


@pytest.fixture(autouse=True)
def storage_root(settings, tmp_path):
    settings.STORAGE_ROOT = str(tmp_path / "storage")
    get_storage.cache_clear()
    yield get_storage()
    get_storage.cache_clear()


def create(api, **body):
    body.setdefault("disk_format", "qcow2")
    body.setdefault("container_format", "bare")
    return api.post(IMAGES, body, format="json")


def upload(api, image_id, data, content_type="application/octet-stream"):
    return api.put(f"{IMAGES}/{image_id}/file", data, content_type=content_type)


def patch(api, image_id, ops):
    return api.patch(f"{IMAGES}/{image_id}", json.dumps(ops), content_type=PATCH)


def new_image(api, data=None, **body):
    response = create(api, **body)
    assert response.status_code == 201, response.content
    image_id = response.json()["id"]
    if data is not None:
        assert upload(api, image_id, data).status_code == 204
    return image_id


def glance_error(response, code):
    assert response.status_code == code, response.content
    body = response.json()
    assert body["code"] == code and body["message"], body
    return body["message"]


def test_create_upload_download_round_trip(tenant_a):
    response = create(tenant_a.api, name="web", min_ram=64, tags=["base"], os_distro="debian")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "queued" and body["visibility"] == "shared" and body["size"] is None
    assert body["owner"] == tenant_a.project.pk
    assert body["os_distro"] == "debian" and body["tags"] == ["base"] and body["min_ram"] == 64
    assert body["self"] == f"/v2/images/{body['id']}" and body["file"] == f"/v2/images/{body['id']}/file"
    assert body["schema"] == "/v2/schemas/image" and body["os_hidden"] is False
    assert body["created_at"].endswith("Z")
    image_id = body["id"]
    assert tenant_a.api.get(f"{IMAGES}/{image_id}/file").status_code == 204  # queued: no data yet

    data = qcow2_bytes("48M")
    assert upload(tenant_a.api, image_id, data).status_code == 204
    shown = tenant_a.api.get(f"{IMAGES}/{image_id}").json()  # not enveloped
    assert shown["status"] == "active"
    assert shown["size"] == len(data)
    assert shown["virtual_size"] == 48 * 1024 * 1024
    assert shown["checksum"] == hashlib.md5(data).hexdigest()  # noqa: S324 - Glance's checksum is md5
    assert shown["os_hash_algo"] == "sha512" and shown["os_hash_value"] == hashlib.sha512(data).hexdigest()

    response = tenant_a.api.get(f"{IMAGES}/{image_id}/file")
    assert response.status_code == 200
    assert response["Content-MD5"] == shown["checksum"]
    assert int(response["Content-Length"]) == len(data)
    assert b"".join(response.streaming_content) == data

    # Data goes in once: a second upload is a conflict.
    glance_error(upload(tenant_a.api, image_id, data), 409)


def test_declared_qcow2_with_raw_bytes_is_refused_and_can_be_retried(tenant_a, storage_root):
    image_id = new_image(tenant_a.api, name="confused")
    assert "qcow2" in glance_error(upload(tenant_a.api, image_id, os.urandom(200_000)), 400)
    image = Image.objects.get(pk=image_id)
    assert image.status == "queued" and image.size is None and image.status_reason
    assert not storage_root.has_image(image_id)
    assert upload(tenant_a.api, image_id, qcow2_bytes()).status_code == 204
    assert Image.objects.get(pk=image_id).status == "active"


def test_a_qcow2_with_a_backing_file_is_refused(tenant_a, storage_root):
    image_id = new_image(tenant_a.api)
    message = glance_error(upload(tenant_a.api, image_id, qcow2_bytes(backing="/etc/shadow")), 400)
    assert "backing file" in message
    assert Image.objects.get(pk=image_id).status == "queued"
    assert not storage_root.has_image(image_id)


def test_raw_declared_with_qcow2_bytes_is_refused(tenant_a):
    image_id = new_image(tenant_a.api, disk_format="raw")
    glance_error(upload(tenant_a.api, image_id, qcow2_bytes()), 400)


def test_upload_needs_formats_octet_stream_and_fits_the_cap(tenant_a, monkeypatch):
    response = tenant_a.api.post(IMAGES, {"name": "bare"}, format="json")
    image_id = response.json()["id"]
    assert response.json()["disk_format"] is None
    assert "disk_format" in glance_error(upload(tenant_a.api, image_id, b"x"), 400)

    image_id = new_image(tenant_a.api, disk_format="raw")
    glance_error(upload(tenant_a.api, image_id, b"x", content_type="application/json"), 415)
    monkeypatch.setattr(images, "MAX_IMAGE_SIZE", 1000)
    glance_error(upload(tenant_a.api, image_id, b"x" * 1001), 413)
    assert Image.objects.get(pk=image_id).status == "queued"


def test_an_image_deleted_during_upload_keeps_no_data(tenant_a, storage_root):
    image = images.create_image(project=tenant_a.project, name="racy", disk_format="raw", container_format="bare")

    def body():
        yield b"a" * 1000
        Image.objects.filter(pk=image.pk).delete()
        yield b"b" * 1000

    with pytest.raises(images.Gone):
        images.upload_image(image, body())
    assert not storage_root.has_image(image.pk)


def test_json_patch(tenant_a):
    image_id = new_image(tenant_a.api, name="old", os_distro="debian")
    response = patch(tenant_a.api, image_id, [
        {"op": "replace", "path": "/name", "value": "new"},
        {"op": "add", "path": "/hw_disk_bus", "value": "virtio"},
        {"op": "replace", "path": "/os_distro", "value": "ubuntu"},
        {"op": "add", "path": "/tags", "value": ["a", "b"]},
        {"op": "replace", "path": "/min_disk", "value": 2},
        {"op": "replace", "path": "/protected", "value": True},
        {"op": "add", "path": "/odd~1key", "value": "slash"},
    ])
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["name"], body["hw_disk_bus"], body["os_distro"]) == ("new", "virtio", "ubuntu")
    assert (body["tags"], body["min_disk"], body["protected"], body["odd/key"]) == (["a", "b"], 2, True, "slash")

    response = patch(tenant_a.api, image_id, [{"op": "remove", "path": "/hw_disk_bus"}])
    assert "hw_disk_bus" not in response.json()

    glance_error(patch(tenant_a.api, image_id, [{"op": "replace", "path": "/missing", "value": "x"}]), 409)
    glance_error(patch(tenant_a.api, image_id, [{"op": "remove", "path": "/missing"}]), 409)
    glance_error(patch(tenant_a.api, image_id, [{"op": "remove", "path": "/name"}]), 403)
    for attr in ("id", "status", "checksum", "size", "owner", "created_at", "os_hash_value", "virtual_size"):
        glance_error(patch(tenant_a.api, image_id, [{"op": "replace", "path": f"/{attr}", "value": "x"}]), 403)
    glance_error(patch(tenant_a.api, image_id, [{"op": "add", "path": "/os_glance_x", "value": "x"}]), 403)
    for bad in ([{"op": "move", "path": "/name", "value": "x"}], [{"op": "replace", "path": "/name"}],
                [{"op": "replace", "path": "name", "value": "x"}], [{"op": "add", "path": "/a/b", "value": "x"}],
                [{"op": "replace", "path": "/min_ram", "value": "64"}],
                [{"op": "replace", "path": "/min_ram", "value": -1}],
                [{"op": "replace", "path": "/protected", "value": "yes"}],
                [{"op": "add", "path": "/prop", "value": 7}],
                [{"op": "replace", "path": "/visibility", "value": "everyone"}],
                [{"op": "replace", "path": "/tags", "value": ["a", "a"]}],
                [{"op": "replace", "path": "/name", "value": "x" * 256}],
                ["replace"], {"op": "replace"}):
        glance_error(patch(tenant_a.api, image_id, bad), 400)
    # Only JSON-patch bodies are accepted.
    response = tenant_a.api.patch(f"{IMAGES}/{image_id}", [{"op": "remove", "path": "/x"}], format="json")
    glance_error(response, 415)
    assert Image.objects.get(pk=image_id).name == "new"  # failed patches changed nothing


def test_formats_change_only_while_queued_and_publishing_is_for_operators(tenant_a, operator):
    image_id = new_image(tenant_a.api, data=qcow2_bytes())
    response = patch(tenant_a.api, image_id, [{"op": "replace", "path": "/disk_format", "value": "raw"}])
    glance_error(response, 403)
    glance_error(patch(tenant_a.api, image_id, [{"op": "replace", "path": "/visibility", "value": "public"}]), 403)
    response = patch(tenant_a.api, image_id, [{"op": "replace", "path": "/visibility", "value": "community"}])
    assert response.status_code == 200, response.content
    response = patch(operator.api, image_id, [{"op": "replace", "path": "/visibility", "value": "public"}])
    assert response.json()["visibility"] == "public"
    glance_error(create(tenant_a.api, visibility="public"), 403)


def test_protected_images_cannot_be_deleted(tenant_a, storage_root, django_capture_on_commit_callbacks):
    image_id = new_image(tenant_a.api, data=qcow2_bytes(), protected=True)
    glance_error(tenant_a.api.delete(f"{IMAGES}/{image_id}"), 403)
    patch(tenant_a.api, image_id, [{"op": "replace", "path": "/protected", "value": False}])
    with django_capture_on_commit_callbacks(execute=True):
        assert tenant_a.api.delete(f"{IMAGES}/{image_id}").status_code == 204
    glance_error(tenant_a.api.get(f"{IMAGES}/{image_id}"), 404)
    assert not storage_root.has_image(image_id)


def test_scoping_between_projects(tenant_a, tenant_b):
    private = new_image(tenant_a.api, name="a-private", visibility="private")
    shared = new_image(tenant_a.api, name="a-shared")
    public = make_image(owner=tenant_a.project, visibility="public", name="a-public").pk
    community = new_image(tenant_a.api, name="a-community", visibility="community")
    for image_id in (private, shared):
        glance_error(tenant_b.api.get(f"{IMAGES}/{image_id}"), 404)
        glance_error(tenant_b.api.get(f"{IMAGES}/{image_id}/file"), 404)
        glance_error(patch(tenant_b.api, image_id, [{"op": "replace", "path": "/name", "value": "x"}]), 404)
        glance_error(tenant_b.api.delete(f"{IMAGES}/{image_id}"), 404)
    assert tenant_b.api.get(f"{IMAGES}/{public}").json()["name"] == "a-public"
    assert tenant_b.api.get(f"{IMAGES}/{community}").json()["name"] == "a-community"
    assert tenant_b.api.get(f"{IMAGES}/{public}/file").status_code == 200
    glance_error(patch(tenant_b.api, public, [{"op": "replace", "path": "/name", "value": "mine"}]), 403)
    glance_error(tenant_b.api.delete(f"{IMAGES}/{public}"), 403)
    glance_error(tenant_b.api.put(f"{IMAGES}/{public}/tags/x"), 403)

    names = {i["name"] for i in tenant_b.api.get(IMAGES).json()["images"]}
    assert names == {"a-public"}  # community images are listed only when asked for
    names = {i["name"] for i in tenant_b.api.get(IMAGES, {"visibility": "community"}).json()["images"]}
    assert names == {"a-community"}
    names = {i["name"] for i in tenant_a.api.get(IMAGES).json()["images"]}
    assert names == {"a-private", "a-shared", "a-public", "a-community"}


def test_readers_only_read(tenant_a):
    image_id = new_image(tenant_a.api, data=qcow2_bytes())
    reader = tenant_a.reader_api
    assert reader.get(f"{IMAGES}/{image_id}").status_code == 200
    assert reader.get(f"{IMAGES}/{image_id}/file").status_code == 200
    glance_error(create(reader, name="nope"), 403)
    glance_error(patch(reader, image_id, [{"op": "replace", "path": "/name", "value": "x"}]), 403)
    glance_error(reader.delete(f"{IMAGES}/{image_id}"), 403)
    glance_error(reader.put(f"{IMAGES}/{image_id}/tags/x"), 403)


def test_members_share_accept_and_revoke(tenant_a, tenant_b):
    image_id = new_image(tenant_a.api, name="golden", data=qcow2_bytes())
    members = f"{IMAGES}/{image_id}/members"
    me_b = f"{members}/{tenant_b.project.pk}"

    response = tenant_a.api.post(members, {"member": tenant_b.project.pk}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "pending" and response.json()["member_id"] == tenant_b.project.pk
    glance_error(tenant_a.api.post(members, {"member": tenant_b.project.pk}, format="json"), 409)
    glance_error(tenant_a.api.post(members, {"member": "no-such-project"}, format="json"), 400)
    glance_error(tenant_a.api.post(members, {"project": tenant_b.project.pk}, format="json"), 400)

    # A pending member can GET the image, but it is not in its list yet.
    assert tenant_b.api.get(f"{IMAGES}/{image_id}").status_code == 200
    assert tenant_b.api.get(IMAGES).json()["images"] == []
    pending = tenant_b.api.get(IMAGES, {"member_status": "pending"}).json()["images"]
    assert [i["id"] for i in pending] == [image_id]

    glance_error(tenant_a.api.put(me_b, {"status": "accepted"}, format="json"), 403)  # not the owner's call
    glance_error(tenant_b.api.put(me_b, {"status": "maybe"}, format="json"), 400)
    response = tenant_b.api.put(me_b, {"status": "accepted"}, format="json")
    assert response.json()["status"] == "accepted"
    assert [i["id"] for i in tenant_b.api.get(IMAGES).json()["images"]] == [image_id]
    assert [i["id"] for i in tenant_b.api.get(IMAGES, {"visibility": "shared"}).json()["images"]] == [image_id]
    assert tenant_b.api.get(me_b).json()["status"] == "accepted"
    assert tenant_b.api.get(f"{IMAGES}/{image_id}/file").status_code == 200
    # Members read, the owner decides.
    glance_error(patch(tenant_b.api, image_id, [{"op": "replace", "path": "/name", "value": "x"}]), 403)
    glance_error(tenant_b.api.delete(me_b), 403)
    glance_error(tenant_b.api.post(members, {"member": tenant_b.project.pk}, format="json"), 403)

    listed = tenant_a.api.get(members).json()
    assert [m["member_id"] for m in listed["members"]] == [tenant_b.project.pk]
    assert listed["schema"] == "/v2/schemas/members"

    assert tenant_a.api.delete(me_b).status_code == 204
    glance_error(tenant_b.api.get(f"{IMAGES}/{image_id}"), 404)
    glance_error(tenant_a.api.get(me_b), 404)

    private = new_image(tenant_a.api, visibility="private")
    glance_error(tenant_a.api.post(f"{IMAGES}/{private}/members", {"member": tenant_b.project.pk}, format="json"),
                 403)


def test_filters(tenant_a):
    small = new_image(tenant_a.api, name="small", disk_format="raw", data=b"\0" * 1024, tags=["db", "x"],
                      os_distro="debian")
    big = new_image(tenant_a.api, name="big", data=qcow2_bytes(), tags=["db"])
    queued = new_image(tenant_a.api, name="queued", container_format="ovf", visibility="private")

    def ids(**params):
        response = tenant_a.api.get(IMAGES, params)
        assert response.status_code == 200, response.content
        return {i["id"] for i in response.json()["images"]}

    assert ids(name="small") == {small}
    assert ids(id=f"in:{small},{queued}") == {small, queued}
    assert ids(status="queued") == {queued}
    assert ids(visibility="private") == {queued}
    assert ids(disk_format="raw") == {small}
    assert ids(container_format="ovf") == {queued}
    assert ids(tag="db") == {small, big}
    assert tenant_a.api.get(IMAGES + "?tag=db&tag=x").json()["images"][0]["id"] == small
    assert ids(size_min=2000) == {big}
    assert ids(size_max=1024) == {small}
    assert ids(os_distro="debian") == {small}
    assert ids(owner=tenant_a.project.pk) == {small, big, queued}
    assert ids(created_at="gte:2000-01-01T00:00:00Z") == {small, big, queued}
    for bad in ({"size_min": "big"}, {"limit": "-1"}, {"limit": "x"}, {"sort_key": "secret"},
                {"sort_dir": "up"}, {"marker": "no-such-image"}, {"visibility": "everyone"},
                {"member_status": "maybe"}, {"os_hidden": "perhaps"}, {"created_at": "soon"},
                {"sort": "name:asc", "sort_key": "name"}):
        glance_error(tenant_a.api.get(IMAGES, bad), 400)


def test_hidden_images_are_listed_only_when_asked(tenant_a):
    hidden = new_image(tenant_a.api, name="hidden", os_hidden=True)
    new_image(tenant_a.api, name="shown")
    assert [i["name"] for i in tenant_a.api.get(IMAGES).json()["images"]] == ["shown"]
    assert [i["id"] for i in tenant_a.api.get(IMAGES, {"os_hidden": "true"}).json()["images"]] == [hidden]


@pytest.mark.parametrize("sort", [{"sort_key": "name", "sort_dir": "asc"}, {"sort": "name:asc"}])
def test_pagination_follows_next_links(tenant_a, sort):
    names = [f"img-{i:02d}" for i in range(7)]
    for name in reversed(names):
        new_image(tenant_a.api, name=name)
    seen, url, params = [], IMAGES, {**sort, "limit": 3}
    while url:
        body = tenant_a.api.get(url, params).json()
        assert body["schema"] == "/v2/schemas/images" and body["first"].startswith("/v2/images")
        seen += [i["name"] for i in body["images"]]
        url, params = ("/image" + body["next"], None) if "next" in body else (None, None)
    assert seen == names

    desc = tenant_a.api.get(IMAGES, {"sort_key": "name", "sort_dir": "desc", "limit": 2}).json()
    assert [i["name"] for i in desc["images"]] == ["img-06", "img-05"]
    default = tenant_a.api.get(IMAGES).json()  # newest first
    assert [i["name"] for i in default["images"]][:2] == ["img-00", "img-01"]
    assert "next" not in default


def test_sorting_on_nullable_keys_pages_through_every_row(tenant_a):
    for name in ("b", None, "a", None):
        new_image(tenant_a.api, **({"name": name} if name else {}))
    seen, params = [], {"sort_key": "name", "sort_dir": "asc", "limit": 1}
    while True:
        body = tenant_a.api.get(IMAGES, params).json()
        seen += [i["name"] for i in body["images"]]
        if "next" not in body:
            break
        params = {**params, "marker": body["images"][-1]["id"]}
    assert seen == [None, None, "a", "b"]


def test_tags(tenant_a):
    image_id = new_image(tenant_a.api)
    for _ in range(2):  # idempotent
        assert tenant_a.api.put(f"{IMAGES}/{image_id}/tags/blue").status_code == 204
    assert tenant_a.api.get(f"{IMAGES}/{image_id}").json()["tags"] == ["blue"]
    assert tenant_a.api.delete(f"{IMAGES}/{image_id}/tags/blue").status_code == 204
    glance_error(tenant_a.api.delete(f"{IMAGES}/{image_id}/tags/blue"), 404)
    glance_error(tenant_a.api.put(f"{IMAGES}/{image_id}/tags/{'t' * 256}"), 400)


def test_deactivate_and_reactivate(tenant_a, operator):
    image_id = new_image(tenant_a.api, data=qcow2_bytes())
    deactivate = f"{IMAGES}/{image_id}/actions/deactivate"
    glance_error(tenant_a.api.post(deactivate), 403)
    assert operator.api.post(deactivate).status_code == 204
    assert operator.api.post(deactivate).status_code == 204  # already deactivated: fine
    assert tenant_a.api.get(f"{IMAGES}/{image_id}").json()["status"] == "deactivated"
    glance_error(tenant_a.api.get(f"{IMAGES}/{image_id}/file"), 403)
    assert operator.api.get(f"{IMAGES}/{image_id}/file").status_code == 200
    assert operator.api.post(f"{IMAGES}/{image_id}/actions/reactivate").status_code == 204
    assert tenant_a.api.get(f"{IMAGES}/{image_id}/file").status_code == 200

    queued = new_image(tenant_a.api)
    glance_error(operator.api.post(f"{IMAGES}/{queued}/actions/deactivate"), 403)


def test_quota_is_counted_per_owner(tenant_a, tenant_b):
    quotas.set_limit(tenant_a.project, "images", 1)
    new_image(tenant_a.api)
    message = glance_error(create(tenant_a.api), 413)
    assert "images" in message
    new_image(tenant_b.api)  # another project's quota is its own
    assert quotas.usage_for(tenant_a.project)["images"] == 1


def test_create_validation(tenant_a):
    given = "5b0e7d6a-7f55-4a0b-9b1f-1b2f3c4d5e6f"
    assert create(tenant_a.api, id=given).json()["id"] == given
    glance_error(create(tenant_a.api, id=given), 409)
    for body, code in (({"id": "not-a-uuid"}, 400), ({"name": 7}, 400), ({"disk_format": "exe"}, 400),
                       ({"container_format": "zip"}, 400), ({"min_ram": "lots"}, 400), ({"protected": 1}, 400),
                       ({"tags": "web"}, 400), ({"tags": [1]}, 400), ({"hw_cpu_cores": 4}, 400),
                       ({"status": "active"}, 403), ({"size": 5}, 403), ({"owner": "x"}, 403),
                       ({"checksum": "x"}, 403), ({"os_glance_import": "x"}, 403), ({"locations": []}, 403)):
        glance_error(create(tenant_a.api, **body), code)
    glance_error(tenant_a.api.post(IMAGES, "[1]", content_type="application/json"), 400)
    glance_error(tenant_a.api.post(IMAGES, "{", content_type="application/json"), 400)


def test_unknown_images_and_schemas(tenant_a):
    for image_id in ("00000000-0000-0000-0000-000000000000", "cirros", "x" * 300):
        glance_error(tenant_a.api.get(f"{IMAGES}/{image_id}"), 404)
    schema = tenant_a.api.get("/image/v2/schemas/image").json()
    assert schema["name"] == "image" and "disk_format" in schema["properties"]
    assert schema["additionalProperties"] == {"type": "string"}
    assert tenant_a.api.get("/image/v2/schemas/images").json()["properties"]["images"]["items"] == schema
    assert tenant_a.api.get("/image/v2/schemas/member").json()["name"] == "member"
    glance_error(tenant_a.api.get("/image/v2/schemas/nope"), 404)
    glance_error(tenant_a.api.get("/image/v2/nothing-here"), 404)
    # The version document at the service root still answers.
    assert tenant_a.api.get("/image/").status_code == 300
    assert tenant_a.api.get("/image").status_code == 300


def test_snapshot_hooks_fill_or_kill_a_queued_image(tenant_a, storage_root):
    image = images.create_image(project=tenant_a.project, name="snap", disk_format="qcow2",
                                container_format="bare", visibility="private")
    assert images.mark_saving(image.pk)
    stored = storage_root.store_image(image.pk, iter([qcow2_bytes()]), "qcow2")
    assert images.mark_stored(image.pk, stored)
    image.refresh_from_db()
    assert (image.status, image.size, image.os_hash_algo) == ("active", stored.size, "sha512")

    doomed = images.create_image(project=tenant_a.project, name="doomed", disk_format="qcow2",
                                 container_format="bare")
    images.mark_failed(doomed.pk, RuntimeError("disk vanished"))
    doomed.refresh_from_db()
    assert (doomed.status, doomed.status_reason) == ("killed", "disk vanished")
    # Data arriving for an image that is gone is removed again.
    gone = storage_root.store_image("11111111-2222-3333-4444-555555555555", iter([qcow2_bytes()]), "qcow2")
    assert not images.mark_stored("11111111-2222-3333-4444-555555555555", gone)
    assert not storage_root.has_image("11111111-2222-3333-4444-555555555555")


def test_seed_tiny_linux_is_idempotent(db, tmp_path, tenant_b):
    path = tmp_path / "tiny-linux.qcow2"
    path.write_bytes(qcow2_bytes("20M"))
    image = images.seed_tiny_linux(path)
    assert images.seed_tiny_linux(path).pk == image.pk
    assert Image.objects.filter(name="tiny-linux").count() == 1
    body = tenant_b.api.get(f"{IMAGES}/{image.pk}").json()
    assert (body["status"], body["visibility"], body["owner"]) == ("active", "public", None)
    assert (body["disk_format"], body["container_format"], body["min_ram"]) == ("qcow2", "bare", 96)
    assert (body["default_user"], body["os_distro"]) == ("dream", "busybox")
    assert body["virtual_size"] == 20 * 1024 * 1024


def test_admin_pages_and_actions_use_the_services(operator, tenant_a, client, django_capture_on_commit_callbacks,
                                                   storage_root):
    image = make_image(owner=tenant_a.project, visibility="shared", name="admin-view")
    client.force_login(operator)
    assert client.get("/admin/compute/image/").status_code == 200
    assert client.get(f"/admin/compute/image/{image.pk}/change/").status_code == 200
    response = client.post("/admin/compute/image/", {"action": "deactivate", "_selected_action": [image.pk]})
    assert response.status_code == 302
    assert Image.objects.get(pk=image.pk).status == "deactivated"
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/admin/compute/image/{image.pk}/delete/", {"post": "yes"})
    assert not Image.objects.filter(pk=image.pk).exists()
    assert not storage_root.has_image(image.pk)


@pytest.mark.parametrize("declared, stored_as, recorded", [
    ("qcow2", "raw", "raw"),  # converted by the store (RBD keeps images raw): recorded as Glance's conversion does
    ("qcow2", "qcow2", "qcow2"),
    ("iso", "raw", "iso"),  # an ISO's bytes are raw: nothing was converted
    ("raw", "raw", "raw"),
])
def test_the_record_says_what_the_store_holds(tenant_a, declared, stored_as, recorded):
    from storage.drivers.base import StoredImage

    image = images.create_image(project=tenant_a.project, name="conv", disk_format=declared,
                                container_format="bare", visibility="private")
    stored = StoredImage(size=8, checksum="0" * 32, os_hash_value="0" * 128, disk_format=stored_as,
                         virtual_size=8)
    assert images.mark_stored(image.pk, stored)
    image.refresh_from_db()
    assert (image.status, image.disk_format, image.size) == ("active", recorded, 8)

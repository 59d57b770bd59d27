"""Nova 2.1 response shapes (see nova's doc/api_samples and Tempest's
api_schema/response/compute/v2_1)."""

from core.openstack.catalog import public_url


def flavor_links(request, flavor_id):
    base = public_url(request)
    return [{"rel": "self", "href": f"{base}/compute/v2.1/flavors/{flavor_id}"},
            {"rel": "bookmark", "href": f"{base}/compute/flavors/{flavor_id}"}]


def flavor_brief(request, flavor):
    return {"id": flavor.id, "name": flavor.name, "links": flavor_links(request, flavor.id)}


def flavor_detail(request, flavor):
    return {
        "id": flavor.id,
        "name": flavor.name,
        "ram": flavor.ram,
        "disk": flavor.disk,
        "vcpus": flavor.vcpus,
        "swap": flavor.swap or "",
        "rxtx_factor": flavor.rxtx_factor,
        "OS-FLV-EXT-DATA:ephemeral": flavor.ephemeral,
        "OS-FLV-DISABLED:disabled": flavor.disabled,
        "os-flavor-access:is_public": flavor.is_public,
        "links": flavor_links(request, flavor.id),
    }


def keypair_body(keypair, private_key=None, detail=True):
    body = {"name": keypair.name, "public_key": keypair.public_key, "fingerprint": keypair.fingerprint}
    if private_key is not None:
        body["private_key"] = private_key
        body["user_id"] = keypair.user_id
    if detail:
        body.update({"user_id": keypair.user_id, "id": keypair.pk, "deleted": False,
                     "created_at": keypair.created_at.strftime("%Y-%m-%dT%H:%M:%S.%f"), "updated_at": None,
                     "deleted_at": None})
    return body

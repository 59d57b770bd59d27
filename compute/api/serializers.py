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


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt else None


def server_links(request, server_id):
    base = public_url(request)
    return [{"rel": "self", "href": f"{base}/compute/v2.1/servers/{server_id}"},
            {"rel": "bookmark", "href": f"{base}/compute/servers/{server_id}"}]


def host_id(instance):
    """Nova's hostId: opaque per project, equal for servers on one host."""
    import hashlib

    if not instance.host_id:
        return ""
    return hashlib.sha224(f"{instance.project_id}{instance.host.name}".encode()).hexdigest()


def server_brief(request, instance):
    return {"id": instance.pk, "name": instance.name, "links": server_links(request, instance.pk)}


def server_detail(request, instance, *, admin=False, addresses=None, volumes=(), security_groups=None):
    base = public_url(request)
    body = {
        "id": instance.pk,
        "name": instance.name,
        "status": instance.status,
        "tenant_id": instance.project_id,
        "user_id": instance.user_id,
        "metadata": instance.metadata,
        "hostId": host_id(instance),
        "image": {"id": instance.image_ref,
                  "links": [{"rel": "bookmark", "href": f"{base}/compute/images/{instance.image_ref}"}]}
        if instance.image_ref else "",
        "flavor": {"id": instance.flavor_ref,
                   "links": [{"rel": "bookmark", "href": f"{base}/compute/flavors/{instance.flavor_ref}"}]},
        "created": iso(instance.created_at),
        "updated": iso(instance.updated_at),
        "addresses": addresses or {},
        "accessIPv4": "",
        "accessIPv6": "",
        "links": server_links(request, instance.pk),
        "OS-DCF:diskConfig": "MANUAL",
        "progress": instance.progress,
        "OS-EXT-AZ:availability_zone": instance.availability_zone or (instance.host.availability_zone
                                                                      if instance.host_id else ""),
        "config_drive": "True" if instance.config_drive else "",
        "key_name": instance.key_name or None,
        "OS-SRV-USG:launched_at": instance.launched_at.strftime("%Y-%m-%dT%H:%M:%S.%f")
        if instance.launched_at else None,
        "OS-SRV-USG:terminated_at": instance.terminated_at.strftime("%Y-%m-%dT%H:%M:%S.%f")
        if instance.terminated_at else None,
        "OS-EXT-STS:task_state": instance.task_state,
        "OS-EXT-STS:vm_state": instance.vm_state,
        "OS-EXT-STS:power_state": instance.power_state,
        "os-extended-volumes:volumes_attached": [{"id": v} for v in volumes],
        "security_groups": security_groups if security_groups is not None else [{"name": "default"}],
    }
    if admin:
        body["OS-EXT-SRV-ATTR:host"] = instance.host.name if instance.host_id else None
        body["OS-EXT-SRV-ATTR:hypervisor_hostname"] = instance.host.name if instance.host_id else None
        body["OS-EXT-SRV-ATTR:instance_name"] = instance.domain_name
    fault = getattr(instance, "latest_fault", None)
    if instance.vm_state == "error" and fault is not None:
        body["fault"] = {"code": fault.code, "message": fault.message, "created": iso(fault.created_at)}
    return body

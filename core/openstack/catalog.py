"""Where each service lives: the Keystone catalog and the version documents
both come from this one table."""

from django.conf import settings

# (catalog type, name, path below the public URL; {project_id} filled per token)
SERVICES = (
    ("identity", "keystone", "/identity/v3"),
    ("compute", "nova", "/compute/v2.1"),
    ("network", "neutron", "/network"),
    ("image", "glance", "/image"),
    ("volumev3", "cinderv3", "/volume/v3/{project_id}"),
    ("block-storage", "cinder", "/volume/v3/{project_id}"),
)


def public_url(request):
    """The base URL clients reach us at: PUBLIC_URL, else this request's host."""
    if settings.PUBLIC_URL:
        return settings.PUBLIC_URL.rstrip("/")
    return request.build_absolute_uri("/").rstrip("/")


def catalog(request, project_id):
    base = public_url(request)
    entries = []
    for index, (service_type, name, path) in enumerate(SERVICES):
        url = base + path.format(project_id=project_id or "")
        entries.append(
            {
                "type": service_type,
                "name": name,
                "id": f"{index:032x}",
                "endpoints": [
                    {
                        "id": f"{index:031x}{i}",
                        "interface": interface,
                        "region": settings.REGION_NAME,
                        "region_id": settings.REGION_NAME,
                        "url": url,
                    }
                    for i, interface in enumerate(("public", "internal", "admin"))
                ],
            }
        )
    return entries

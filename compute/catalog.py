"""DreamCompute's published flavors (id, name, vCPUs, RAM MiB, root disk GB)."""

DREAMCOMPUTE_FLAVORS = (
    ("50", "gp1.semisonic", 1, 512, 80),
    ("100", "gp1.subsonic", 1, 1024, 80),
    ("200", "gp1.supersonic", 1, 2048, 80),
    ("300", "gp1.lightspeed", 2, 4096, 80),
    ("400", "gp1.warpspeed", 4, 8192, 80),
    ("500", "gp1.hyperspeed", 8, 16384, 80),
)


def seed_flavors():
    """Create the missing ones; never touches flavors an operator changed."""
    from .models import Flavor

    created = 0
    for flavor_id, name, vcpus, ram, disk in DREAMCOMPUTE_FLAVORS:
        _, new = Flavor.objects.get_or_create(pk=flavor_id, defaults={"name": name, "vcpus": vcpus, "ram": ram,
                                                                       "disk": disk})
        created += new
    return created

from identity.models import Membership

# The left navigation: (section, staff only, items); an item is (label, icon,
# url name, url-name prefixes that make it the active item). Panels live in
# the dashboard's namespaces (NAV_NAMESPACES); their url names do not overlap.
NAVIGATION = (
    ("Project", False, (
        ("Overview", "speedometer2", "dashboard:overview", ("overview",)),
        ("Instances", "pc-display", "compute:instances", ("instance",)),
        ("Images", "disc", "compute:images", ("image",)),
        ("Flavors", "box", "dashboard:flavors", ("flavor",)),
        ("Key Pairs", "key", "dashboard:keypairs", ("keypair",)),
    )),
    ("Volumes", False, (
        ("Volumes", "hdd", "storage:volumes", ("volume",)),
        ("Snapshots", "camera", "storage:snapshots", ("snapshot",)),
    )),
    ("Network", False, (
        ("Network Topology", "diagram-3", "network:topology", ("topology",)),
        ("Networks", "diagram-2", "network:networks", ("network", "subnet")),
        ("Routers", "router", "network:routers", ("router",)),
        ("Security Groups", "shield-lock", "network:security-groups", ("security-group",)),
        ("Floating IPs", "globe2", "network:floating-ips", ("floating-ip",)),
    )),
    ("Admin", True, (
        ("Hypervisors", "hdd-rack", "compute:admin-hypervisors", ("admin-hypervisor",)),
        ("All Instances", "pc-display-horizontal", "compute:admin-instances", ("admin-instance",)),
        ("Storage", "database", "storage:admin-storage", ("admin-storage",)),
        ("Flavors", "boxes", "dashboard:admin-flavors", ("admin-flavor",)),
        ("Django admin", "gear", "admin:index", ()),
    )),
    ("Identity", True, (
        ("Projects", "folder2", "dashboard:projects", ("project",)),
        ("Users", "people", "dashboard:users", ("user",)),
        ("Memberships", "person-badge", "dashboard:memberships", ("membership",)),
        ("Quotas", "sliders", "dashboard:quotas", ("quota",)),
    )),
)


NAV_NAMESPACES = ("dashboard", "compute", "network", "storage")


def navigation(request):
    """The layout's navigation and project switcher, only for signed-in
    dashboard pages. The memberships query is lazy: partials that never
    show the switcher never run it."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or request.path.startswith(("/admin/", "/api/")):
        return {}
    match = getattr(request, "resolver_match", None)
    current = match.url_name if match and match.namespace in NAV_NAMESPACES else None
    sections = []
    for title, staff_only, items in NAVIGATION:
        if staff_only and not user.is_staff:
            continue
        sections.append({"title": title, "items": [
            {"label": label, "icon": icon, "url_name": url_name,
             "active": bool(current and current.startswith(prefixes)) if prefixes else False}
            for label, icon, url_name, prefixes in items
        ]})
    memberships = Membership.objects.active().filter(user=user).select_related("project").order_by("project__name")
    return {"memberships": memberships, "current_project": getattr(request, "project", None),
            "current_membership": getattr(request, "membership", None), "nav_sections": sections}

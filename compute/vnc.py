"""VNC consoles: single-use console tokens, the guest's VNC endpoint, and the
two dashboard pages (``/vnc/`` with noVNC, and the instance's "Console" link).

The flow is Nova's (nova-novncproxy with console auth tokens):

1. ``issue_token`` (the ``os-getVNCConsole`` API action and the dashboard's
   ``GET /instances/<id>/vnc/``) makes a random token bound to one instance
   and one user, valid for ``TOKEN_TTL`` seconds, and returns the console URL
   ``/vnc/?token=…``. Only the token's SHA-256 is stored.
2. ``GET /vnc/?token=…`` renders noVNC. It needs no login (the token is the
   credential, as with Nova's novncproxy, so the URL works for the CLI user
   too) and it does not use the token up: it only ``peek``s to explain a dead
   link instead of showing a console that can never connect.
3. The page's websocket ``/ws/vnc/?token=…`` (compute/vncproxy.py) calls
   ``consume``, which marks the token used in one conditional UPDATE: one
   connection per token, and an expired or used token never works again.

Tokens never appear in logs or in the database; the page removes the token
from the address bar once it has read it. Old rows are purged whenever a
new token is issued.
"""

import re
import secrets
from datetime import timedelta

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path, re_path, reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from core.openstack.catalog import public_url
from core.openstack.errors import APIError, Conflict
from dashboard.views import member_required
from identity.models import hash_secret

from .drivers.base import DriverError
from .models import ConsoleToken, Instance
from .states import TaskState, VMState

TOKEN_TTL = timedelta(seconds=60)
# Used and expired rows stay this long so that the page can tell "expired"
# or "already used" from "unknown"; later they are purged.
PURGE_AFTER = timedelta(minutes=10)
TOKEN_BYTES = 32
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # 32 bytes, urlsafe base64 without padding

# vm_states in which the guest process runs and so has a VNC server. A
# token is only issued for ACTIVE instances; a paused one still shows its
# (frozen) screen to a token issued just before.
CONSOLE_STATES = frozenset({VMState.ACTIVE, VMState.PAUSED})

# Token states (``peek``).
VALID, MALFORMED, UNKNOWN, EXPIRED, USED = "valid", "malformed", "unknown", "expired", "used"


def well_formed(token):
    return isinstance(token, str) and bool(TOKEN_RE.match(token))


def issue_token(instance, user, request=None):
    """A new console token for ``instance`` on behalf of ``user``, and its
    console URL: absolute (``public_url``) with ``request``, else a path.

    Raises ``Conflict`` (409) unless the instance is ACTIVE on a host and no
    delete is under way. Callers have already checked that ``user`` may
    reach the instance (project scoping, member role)."""
    if instance.vm_state != VMState.ACTIVE or instance.task_state == TaskState.DELETING:
        raise Conflict(f"Instance {instance.pk} is not ready: its console needs it ACTIVE "
                       f"(it is {instance.status}).")
    if instance.host_id is None:
        raise Conflict(f"Instance {instance.pk} is not running on any host.")
    now = timezone.now()
    ConsoleToken.objects.filter(expires_at__lt=now - PURGE_AFTER).delete()
    token = secrets.token_urlsafe(TOKEN_BYTES)
    ConsoleToken.objects.create(key_hash=hash_secret(token), instance=instance, user=user,
                                expires_at=now + TOKEN_TTL)
    base = public_url(request) if request is not None else ""
    return token, f"{base}{reverse('vnc:console')}?token={token}"


def peek(token):
    """``(state, instance)`` without using the token up: state is VALID,
    MALFORMED, UNKNOWN, EXPIRED or USED; instance is None unless VALID."""
    if not well_formed(token):
        return MALFORMED, None
    row = ConsoleToken.objects.select_related("instance").filter(key_hash=hash_secret(token)).first()
    if row is None:
        return UNKNOWN, None
    if row.used_at is not None:
        return USED, None
    if row.expires_at <= timezone.now():
        return EXPIRED, None
    return VALID, row.instance


def consume(token):
    """Use the token up and return its instance (with its host), or None
    when it is malformed, unknown, expired or already used. Atomic: of any
    number of concurrent callers with one token, at most one gets the
    instance."""
    if not well_formed(token):
        return None
    key_hash = hash_secret(token)
    now = timezone.now()
    claimed = ConsoleToken.objects.filter(key_hash=key_hash, used_at__isnull=True, expires_at__gt=now).update(
        used_at=now)
    if not claimed:
        return None
    return Instance.objects.select_related("host").filter(console_tokens__key_hash=key_hash).first()


def has_running_guest(instance):
    """Whether the instance's guest should be running on its host now."""
    return (instance.vm_state in CONSOLE_STATES and instance.task_state != TaskState.DELETING
            and instance.host_id is not None)


def vnc_target(instance):
    """``(address, port)`` of the running guest's VNC server, or None (no
    guest, no VNC display, libvirt unreachable, or the test driver, which
    allocates no ports). Blocking: call it from a thread.

    The web process asks the instance's host's libvirt (``Host.uri``) and
    then connects to the address libvirt reports, which is 127.0.0.1 (VNC
    never listens beyond loopback). That holds for the all-in-one host,
    where web and hypervisor are one machine; a multi-host deployment needs
    a console proxy on each hypervisor (as Nova runs nova-novncproxy next to
    its computes) or VNC on a management network, neither of which is
    built yet."""
    from .drivers.libvirt.driver import LibvirtDriver

    driver = LibvirtDriver(instance.host.uri)
    try:
        address = driver.vnc_address(instance.pk)
    except DriverError:
        return None
    finally:
        driver.close()
    if address is None:
        return None
    host, port = address
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard listener is reached on loopback
        host = "127.0.0.1"
    return host, port


# --- Pages --------------------------------------------------------------------------

PROBLEMS = {  # token state → (HTTP status, what the page says)
    MALFORMED: (400, "This console link is not valid. Open the console again from the instance's page."),
    UNKNOWN: (404, "This console link is not known. Open the console again from the instance's page."),
    EXPIRED: (410, "This console link has expired (links are valid for a minute). Open the console again "
                   "from the instance's page."),
    USED: (410, "This console link was already used: each link opens one console session. Open the console "
                "again from the instance's page."),
}


@require_GET
def console_page(request):
    """``GET /vnc/?token=…``: noVNC for the token's instance, or a page that
    says why the link is dead. Does not use the token up."""
    token = request.GET.get("token", "")
    state, instance = peek(token)
    if state == VALID:
        context = {"instance": instance, "socket_path": f"/ws/vnc/?token={token}"}
        status = 200
    else:
        status, problem = PROBLEMS[state]
        context = {"problem": problem, "state": state}
    response = render(request, "compute/vnc.html", context, status=status)
    # The URL holds a credential: keep it out of caches and Referer headers.
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


@member_required
@require_GET
def instance_console(request, instance_id):
    """``GET /instances/<id>/vnc/``: the dashboard's "Console" link. Needs
    the member role in the current project (a console is keyboard control of
    the guest; readers get 403, as with the API's POST); another project's
    instance is a 404. Issues a token and redirects to the noVNC page."""
    instance = Instance.objects.for_project(request.project).live().filter(pk=instance_id).first()
    if instance is None:
        raise Http404("No such instance.")
    try:
        _, url = issue_token(instance, request.user)
    except APIError as exc:
        messages.error(request, str(exc.detail))
        return redirect("compute:instance-detail", instance_id=instance.pk)
    return redirect(url)


# Included from config/urls.py before the dashboard's own paths (the
# instance path would otherwise be taken by compute's instance actions).
urlpatterns = [
    path("vnc/", console_page, name="console"),
    re_path(r"^instances/(?P<instance_id>[0-9A-Za-z_.-]{1,64})/vnc/$", instance_console, name="instance"),
]

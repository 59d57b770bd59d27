"""The VNC console end to end on the live cloud, with ONE real QEMU guest
(zone ``real``): the real `openstack console url show` gets a single-use
noVNC URL, a websocket client runs a real RFB handshake with QEMU's VNC
server through the Channels proxy, the spent token is refused, a foreign
Origin is refused, and Chromium runs noVNC from the dashboard's Console link.
"""

import struct

import pytest
import requests
import websockets
from websockets.sync.client import connect

from .test_openstack_cli_servers import status, wait_for

pytestmark = pytest.mark.live

NAME = "vnc-vm"


@pytest.fixture(scope="module")
def server(cli):
    """One real guest for the whole module, deleted (and waited for) after."""
    created = cli.json("server", "create", "--availability-zone", "real", "--image", "tiny-linux", "--flavor",
                       "gp1.semisonic", "--wait", NAME)
    try:
        assert created["status"] == "ACTIVE" and created["OS-EXT-AZ:availability_zone"] == "real"
        yield created
    finally:
        cli.run("server", "delete", "--wait", created["id"])
        wait_for(lambda: NAME not in cli.run("server", "list", "-f", "value", "-c", "Name").stdout.split(), 60,
                 "the server to be gone")


def console_url(cli, live_cloud):
    console = cli.json("console", "url", "show", NAME)
    assert console["type"] == "novnc"
    assert console["url"].startswith(f"{live_cloud.url}/vnc/?token=")
    return console["url"]


def socket_url(url):
    return url.replace("http://", "ws://", 1).replace("/vnc/?", "/ws/vnc/?", 1)


def open_socket(url, origin):
    # proxy=None: straight to the loopback server, whatever *_proxy says.
    return connect(socket_url(url), origin=origin, subprotocols=["binary"], open_timeout=10, proxy=None)


class Frames:
    """Reads exact byte counts from a websocket whose frames split RFB
    messages wherever TCP did."""

    def __init__(self, ws):
        self.ws, self.buffer = ws, b""

    def read(self, count):
        while len(self.buffer) < count:
            frame = self.ws.recv(timeout=10)
            assert isinstance(frame, bytes), "RFB arrives in binary frames"
            self.buffer += frame
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data


def test_console_url_reaches_the_guests_vnc_server_once(cli, live_cloud, server):
    url = console_url(cli, live_cloud)
    # The page renders noVNC without spending the token (it only looks).
    page = requests.get(url, timeout=10)
    assert page.status_code == 200 and 'data-vnc-socket="/ws/vnc/?token=' in page.text

    with open_socket(url, live_cloud.url) as ws:
        assert ws.subprotocol == "binary"
        rfb = Frames(ws)
        banner = rfb.read(12)
        assert banner.startswith(b"RFB 003.0"), banner
        ws.send(b"RFB 003.008\n")
        count = rfb.read(1)[0]
        types = rfb.read(count)
        assert count >= 1 and 1 in types, types  # QEMU on loopback: security type None
        ws.send(b"\x01")
        assert rfb.read(4) == b"\x00\x00\x00\x00"  # SecurityResult: OK
        ws.send(b"\x01")  # ClientInit, shared
        width, height = struct.unpack(">HH", rfb.read(4))
        rfb.read(16)  # pixel format
        name = rfb.read(struct.unpack(">I", rfb.read(4))[0]).decode()
        assert width > 0 and height > 0
        assert name  # QEMU names the display after the domain (or "QEMU")

    # Single use: the same link neither connects nor renders again.
    with pytest.raises(websockets.exceptions.InvalidStatus):
        open_socket(url, live_cloud.url)
    again = requests.get(url, timeout=10)
    assert again.status_code == 410 and "already used" in again.text

    # Another site's page cannot use a link it got hold of, and trying does not spend it.
    fresh = console_url(cli, live_cloud)
    with pytest.raises(websockets.exceptions.InvalidStatus):
        open_socket(fresh, "http://evil.example")
    assert requests.get(fresh, timeout=10).status_code == 200

    # The server logged the handshakes, but no token.
    log = (live_cloud.folder / "web.log").read_text()
    assert '"WebSocket /ws/vnc/?token=[redacted]"' in log
    for link in (url, fresh):
        assert link.rsplit("=", 1)[1] not in log


@pytest.mark.browser
def test_dashboard_console_link_runs_novnc(cli, live_cloud, server):
    from playwright.sync_api import sync_playwright

    from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
    from tests.e2e.test_dashboard import DEMO, log_in, watch_errors

    assert status(cli, NAME) == "ACTIVE"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(base_url=live_cloud.url, viewport={"width": 1280, "height": 800})
            context.set_default_timeout(15_000)
            page = context.new_page()
            errors = watch_errors(page)
            log_in(page, DEMO)
            page.goto(f"/instances/{server['id']}/vnc/")
            page.wait_for_selector("#vnc-state[data-vnc-state=connected]")
            assert page.url == f"{live_cloud.url}/vnc/"  # the token left the address bar
            page.wait_for_selector("#vnc-screen canvas")
            assert page.is_enabled("#vnc-ctrl-alt-del")
            assert errors == []
        finally:
            browser.close()

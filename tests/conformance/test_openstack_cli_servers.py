"""Servers through the real `openstack` CLI on the live cloud.

Zone ``nova`` is the host on libvirt's test driver (fast, proves the control
plane); zone ``real`` is a host booting real QEMU guests of the tiny image,
whose serial console shows what the guest saw: its config drive, the
injected key and the user data. Each real guest proves several things.
"""

import json
import subprocess
import time

import pytest

from compute.drivers import DOMAIN_PREFIX
from tests.core.test_live_status import Browser, receive

pytestmark = pytest.mark.live


def wait_for(predicate, timeout, what, interval=0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@pytest.fixture(scope="module")
def keypair(cli, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ssh")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cli-test@dc", "-f", str(folder / "id")],
                   check=True)
    created = cli.json("keypair", "create", "--public-key", str(folder / "id.pub"), "cli-key")
    yield {"name": created["name"], "private": folder / "id", "public": (folder / "id.pub").read_text().strip()}
    cli.run("keypair", "delete", "cli-key", expect_ok=False)


def status(cli, name):
    return cli.json("server", "show", name)["status"]


def console(cli, name):
    return cli.run("console", "log", "show", name).stdout.replace("\r", "")


def test_server_lifecycle_on_the_test_driver(cli, keypair):
    server = cli.json("server", "create", "--flavor", "gp1.semisonic", "--image", "tiny-linux", "--key-name",
                      keypair["name"], "--property", "role=web", "--wait", "cli-vm")
    assert server["status"] == "ACTIVE"
    assert server["key_name"] == keypair["name"]
    listed = {s["Name"]: s for s in cli.json("server", "list")}
    assert listed["cli-vm"]["Status"] == "ACTIVE"
    assert listed["cli-vm"]["Flavor"] == "gp1.semisonic"
    assert listed["cli-vm"]["Image"] == "tiny-linux"
    for verb, expected in (("stop", "SHUTOFF"), ("start", "ACTIVE"), ("reboot", "ACTIVE")):
        cli.run("server", verb, "cli-vm")
        wait_for(lambda e=expected: status(cli, "cli-vm") == e, 30, f"{verb} → {expected}")
    refused = cli.run("server", "start", "cli-vm", expect_ok=False)  # already running
    assert refused.returncode != 0 and "409" in refused.stderr
    image = cli.json("server", "image", "create", "--name", "cli-snap", "--wait", "cli-vm")
    assert image["status"] == "active"
    # The store holds snapshots raw (RBD clones need raw), and the record says so.
    assert cli.json("image", "show", "cli-snap")["disk_format"] == "raw"
    cli.run("server", "delete", "--wait", "cli-vm")
    assert "cli-vm" not in {s["Name"] for s in cli.json("server", "list")}
    cli.run("image", "delete", "cli-snap")


def test_limits_and_quota_show(cli):
    limits = {row["Name"]: row["Value"] for row in cli.json("limits", "show", "--absolute")}
    # The SDK renames Nova's maxTotalInstances & co.; volumes come from Cinder's limits.
    assert (limits["max_total_instances"], limits["max_total_cores"], limits["max_total_ram_size"]) == (32, 32, 65536)
    assert (limits["max_total_volumes"], limits["max_total_volume_gigabytes"]) == (64, 100)
    assert limits["max_total_floating_ips"] == 5
    quota = {row["Resource"]: row["Limit"] for row in cli.json("quota", "show")}
    assert quota["instances"] == 32
    assert quota["ram"] == 65536


def console_containing(cli, name, text):
    log = console(cli, name)
    return log if text in log else None


def domain_names():
    done = subprocess.run(["virsh", "-c", "qemu:///system", "list", "--all", "--name"], capture_output=True,
                          text=True, check=True)
    return {line.strip() for line in done.stdout.splitlines() if line.strip()}


def test_real_guest_boots_with_key_and_user_data(cli, keypair, live_cloud, tmp_path):
    user_data = tmp_path / "user-data.sh"
    user_data.write_text("#!/bin/sh\necho USERDATA-MARKER-$(hostname)\n")
    server = cli.json("server", "create", "--availability-zone", "real", "--flavor", "gp1.semisonic", "--image",
                      "tiny-linux", "--key-name", keypair["name"], "--user-data", str(user_data), "--wait",
                      "Real-VM")
    assert server["status"] == "ACTIVE"
    server_id = server["id"]
    assert server["OS-EXT-AZ:availability_zone"] == "real"
    # "ready" is the guest's last line, after its user data ran (reading at
    # the marker raced the rest of the boot).
    log = wait_for(lambda: console_containing(cli, "Real-VM", "DC-GUEST: ready"), 90, "the guest to finish booting")
    assert "DC-GUEST: ready" in log
    assert f"DC-GUEST: config-drive instance-id={server_id} hostname=real-vm" in log
    key_type, comment = keypair["public"].split()[0], keypair["public"].split()[-1]
    assert any(line.startswith("DC-GUEST: ssh-key") and key_type in line and comment in line
               for line in log.splitlines())
    assert "USERDATA-MARKER-real-vm" in log
    assert f"{DOMAIN_PREFIX}{server_id}" in domain_names()

    # Stop is a clean ACPI power-off inside the guest; start boots it again.
    cli.run("server", "stop", "Real-VM")
    wait_for(lambda: status(cli, "Real-VM") == "SHUTOFF", 60, "SHUTOFF")
    assert "DC-GUEST: poweroff" in console(cli, "Real-VM")
    cli.run("server", "start", "Real-VM")
    wait_for(lambda: console(cli, "Real-VM").count("DC-GUEST: ready") >= 2, 90, "the second boot")
    assert status(cli, "Real-VM") == "ACTIVE"

    # Destroyed behind our back: the host's reconcile notices within its
    # interval, and the project's open browsers are told.
    browser = Browser(live_cloud, "demo", "demo-live-pass")
    browser.switch_project(cli.json("server", "show", "Real-VM")["project_id"])
    with browser.socket() as socket:
        assert receive(socket, 5)["kind"] == "hello"
        subprocess.run(["virsh", "-c", "qemu:///system", "destroy", f"{DOMAIN_PREFIX}{server_id}"], check=True,
                       capture_output=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            event = receive(socket, 20)
            if event.get("instance", {}).get("id") == server_id and event["instance"]["status"] == "SHUTOFF":
                break
        else:
            raise AssertionError("no SHUTOFF event reached the browser")
        assert f"instance-status-{server_id}" == event["id"] and "SHUTOFF" in event["html"]
    assert status(cli, "Real-VM") == "SHUTOFF"

    # A snapshot of the real disk becomes an image that boots a new guest.
    image = cli.json("server", "image", "create", "--name", "real-snap", "--wait", "Real-VM")
    assert image["status"] == "active"
    second = cli.json("server", "create", "--availability-zone", "real", "--flavor", "gp1.semisonic", "--image",
                      "real-snap", "--wait", "from-snap")
    wait_for(lambda: "DC-GUEST: ready" in console(cli, "from-snap"), 90, "the snapshot's guest to boot")

    cli.run("server", "delete", "--wait", "Real-VM", "from-snap")
    names = domain_names()
    assert f"{DOMAIN_PREFIX}{server_id}" not in names and f"{DOMAIN_PREFIX}{second['id']}" not in names
    storage = live_cloud.folder / "storage" / "instances"
    assert not (storage / server_id).exists() and not (storage / second["id"]).exists()
    assert not (live_cloud.folder / "instances" / server_id).exists()
    cli.run("image", "delete", "real-snap")


def test_bad_requests_are_clear(cli):
    missing = cli.run("server", "create", "--flavor", "no-such-flavor", "--image", "tiny-linux", "x",
                      expect_ok=False)
    assert missing.returncode != 0 and "no-such-flavor" in missing.stderr
    over = cli.run("server", "create", "--flavor", "gp1.hyperspeed", "--image", "tiny-linux", "--min", "5",
                   "--max", "5", "too-many", expect_ok=False)
    assert over.returncode != 0 and "Quota exceeded for cores" in over.stderr
    assert "too-many" not in {s["Name"] for s in json.loads(cli.run("server", "list", "-f", "json").stdout)}

"""Volumes on real guests through the real `openstack` CLI on the live cloud
(zone ``real``: host qemu1 boots QEMU guests of the tiny image, whose
serial console prints ``DC-GUEST: block-devices …`` whenever disks come and
go, and runs a ``#!`` user-data script).

Two guests prove it all: the first gets a volume hot-plugged, writes a
marker onto it from its user data, and lets it go again; the volume is
snapshotted and cloned; the second guest boots from a new volume made from
the image (``--boot-from-volume``), gets the clone hot-plugged and reads the
marker back. Nothing here names the storage backend.
"""

import json

import pytest

from .test_openstack_cli_servers import console, wait_for
from .test_openstack_cli_volumes import wait_for_status

pytestmark = pytest.mark.live

MARKER = "DCMARK-written-through-a-hot-plugged-volume"
# Both scripts wait for the volume the test attaches later (busybox sh;
# devtmpfs makes /dev/vdb when the disk is hot-plugged).
WAIT_FOR_VDB = "n=0\nwhile [ ! -b /dev/vdb ] && [ $n -lt 900 ]; do sleep 1; n=$((n + 1)); done\n"
WRITER = ("#!/bin/sh\n" + WAIT_FOR_VDB
          + f"printf '%s' '{MARKER}' | dd of=/dev/vdb bs=512 count=1 conv=sync 2>/dev/null\n"
          + "sync\necho \"DC-GUEST: marker-written $?\"\n")
READER = ("#!/bin/sh\n" + WAIT_FOR_VDB
          + "echo \"DC-GUEST: marker-read $(dd if=/dev/vdb bs=512 count=1 2>/dev/null | tr -d '\\000')\"\n")


def block_devices(log):
    return [line for line in log.splitlines() if line.startswith("DC-GUEST: block-devices")]


def console_after(cli, name, line, count=1):
    """The console once ``line`` (a whole line) appeared at least ``count`` times."""
    def seen():
        log = console(cli, name)
        return log if log.splitlines().count(line) >= count else None

    return seen


def attached_ids(cli, name):
    shown = cli.json("server", "show", name)
    volumes = shown.get("volumes_attached") or shown.get("os-extended-volumes:volumes_attached") or []
    if isinstance(volumes, str):  # older clients render the list as text
        return volumes
    return json.dumps(volumes)


def listed_volumes(cli):
    return {key for v in cli.json("volume", "list") for key in (v["ID"], v["Name"])}


def test_volumes_on_real_guests(cli, tmp_path):
    writer, reader = tmp_path / "writer.sh", tmp_path / "reader.sh"
    writer.write_text(WRITER)
    reader.write_text(READER)
    cli.json("server", "create", "--availability-zone", "real", "--flavor", "gp1.semisonic", "--image",
             "tiny-linux", "--user-data", str(writer), "--wait", "vol-writer")
    data = cli.json("volume", "create", "--size", "1", "marker-vol")
    wait_for_status(cli, "volume", "marker-vol", "available")
    boot = wait_for(console_after(cli, "vol-writer", "DC-GUEST: ready"), 120, "the writer to boot")
    assert block_devices(boot) == ["DC-GUEST: block-devices vda vda1"]

    # Hot-plug: the guest sees vdb, its user data writes the marker.
    cli.run("server", "add", "volume", "vol-writer", "marker-vol")
    shown = wait_for_status(cli, "volume", "marker-vol", "in-use", timeout=60)
    assert [a["device"] for a in shown["attachments"]] == ["/dev/vdb"]
    assert data["id"] in attached_ids(cli, "vol-writer")
    wait_for(console_after(cli, "vol-writer", "DC-GUEST: block-devices vda vda1 vdb"), 60, "vdb in the guest")
    log = wait_for(console_after(cli, "vol-writer", "DC-GUEST: marker-written 0"), 60, "the marker")
    assert "DC-GUEST: user-data exit=0" in log
    # In use: Cinder refuses to delete it.
    refused = cli.run("volume", "delete", "marker-vol", expect_ok=False)
    assert refused.returncode != 0 and "attached" in refused.stderr

    # Unplug: the guest lets go of it, the volume is available again.
    cli.run("server", "remove", "volume", "vol-writer", "marker-vol")
    wait_for_status(cli, "volume", "marker-vol", "available", timeout=90)
    log = wait_for(console_after(cli, "vol-writer", "DC-GUEST: block-devices vda vda1", count=2), 60,
                   "vdb to go away")
    assert block_devices(log)[-1] == "DC-GUEST: block-devices vda vda1"
    assert data["id"] not in attached_ids(cli, "vol-writer")

    # Snapshot, and a new volume from the snapshot.
    cli.json("volume", "snapshot", "create", "--volume", "marker-vol", "marker-snap")
    wait_for_status(cli, "volume snapshot", "marker-snap", "available")
    cli.json("volume", "create", "--snapshot", "marker-snap", "marker-clone")
    wait_for_status(cli, "volume", "marker-clone", "available")

    # A second guest boots from a new volume made from the image; the
    # clone, hot-plugged, holds the first guest's marker.
    second = cli.json("server", "create", "--availability-zone", "real", "--flavor", "gp1.semisonic", "--image",
                      "tiny-linux", "--boot-from-volume", "1", "--user-data", str(reader), "--wait", "vol-reader")
    assert second["status"] == "ACTIVE"
    root_ids = cli.json("server", "show", "vol-reader")
    root = [v for v in cli.json("volume", "list", "--long") if v["ID"] in json.dumps(root_ids)]
    assert len(root) == 1, root_ids
    root_volume = cli.json("volume", "show", root[0]["ID"])
    assert root_volume["status"] == "in-use" and root_volume["bootable"] in (True, "true")
    assert [a["device"] for a in root_volume["attachments"]] == ["/dev/vda"]
    boot = wait_for(console_after(cli, "vol-reader", "DC-GUEST: ready"), 120, "the volume-backed guest to boot")
    assert block_devices(boot) == ["DC-GUEST: block-devices vda vda1"]
    assert f"instance-id={second['id']}" in boot  # its config drive came along

    cli.run("server", "add", "volume", "vol-reader", "marker-clone")
    wait_for_status(cli, "volume", "marker-clone", "in-use", timeout=60)
    log = wait_for(lambda: (lambda text: text if "DC-GUEST: marker-read" in text else None)(
        console(cli, "vol-reader")), 90, "the marker to be read")
    assert f"DC-GUEST: marker-read {MARKER}" in log
    assert "DC-GUEST: block-devices vda vda1 vdb" in log

    # Delete: volumes are detached first; the boot volume was not marked
    # delete_on_termination (the CLI's default), so it stays, available.
    cli.run("server", "delete", "--wait", "vol-writer", "vol-reader")
    wait_for_status(cli, "volume", "marker-clone", "available", timeout=60)
    assert wait_for_status(cli, "volume", root_volume["id"], "available", timeout=60)["attachments"] == []
    cli.run("volume", "delete", "marker-clone", root_volume["id"])
    wait_for(lambda: not {"marker-clone", root_volume["id"]} & listed_volumes(cli), 60, "the volumes to go")
    cli.run("volume", "snapshot", "delete", "marker-snap")
    wait_for(lambda: "marker-snap" not in {s["Name"] for s in cli.json("volume", "snapshot", "list")}, 60,
             "the snapshot to go")
    cli.run("volume", "delete", "marker-vol")

"""Block storage through the real `openstack` CLI on the live cloud: volumes
empty, from an image, from a snapshot and from another volume; list, show,
extend, delete; snapshots; upload to an image; Cinder's refusals (a snapshot
with a dependent volume, over quota) as the CLI reports them.

Nothing here names the backend: the same commands must pass on the file
store and on Ceph RBD.
"""

import time

import pytest

pytestmark = pytest.mark.live


def wait_for_status(cli, kind, name, wanted, timeout=120):
    """Poll ``<kind> show`` until the status is ``wanted`` (fail on an error status)."""
    deadline = time.monotonic() + timeout
    shown = None
    while time.monotonic() < deadline:
        shown = cli.json(*kind.split(), "show", name)
        if shown["status"] == wanted:
            return shown
        assert not shown["status"].startswith("error"), shown
        time.sleep(0.5)
    raise AssertionError(f"{kind} {name} never became {wanted}: {shown}")


def test_volume_lifecycle_with_the_cli(cli):
    created = cli.json("volume", "create", "--size", "1", "--property", "tier=gold", "cli-vol")
    assert created["name"] == "cli-vol" and created["size"] == 1
    shown = wait_for_status(cli, "volume", "cli-vol", "available")
    assert shown["id"] == created["id"] and shown["type"] == "ceph"
    assert "tier" in str(shown["properties"])
    listed = {v["Name"]: v for v in cli.json("volume", "list")}
    assert listed["cli-vol"]["Status"] == "available" and listed["cli-vol"]["Size"] == 1

    cli.run("volume", "set", "--size", "2", "cli-vol")
    assert wait_for_status(cli, "volume", "cli-vol", "available")["size"] == 2
    cli.run("volume", "set", "--name", "cli-vol2", "--description", "renamed", "cli-vol")
    assert cli.json("volume", "show", "cli-vol2")["description"] == "renamed"

    snapshot = cli.json("volume", "snapshot", "create", "--volume", "cli-vol2", "cli-snap")
    assert snapshot["name"] == "cli-snap"
    assert wait_for_status(cli, "volume snapshot", "cli-snap", "available")["size"] == 2
    assert "cli-snap" in {s["Name"] for s in cli.json("volume", "snapshot", "list")}

    cli.json("volume", "create", "--snapshot", "cli-snap", "cli-from-snap")
    from_snap = wait_for_status(cli, "volume", "cli-from-snap", "available")
    assert from_snap["snapshot_id"] == snapshot["id"] and from_snap["size"] == 2

    cli.json("volume", "create", "--source", "cli-vol2", "--size", "3", "cli-clone")
    clone = wait_for_status(cli, "volume", "cli-clone", "available")
    assert clone["source_volid"] == created["id"] and clone["size"] == 3

    # A snapshot a volume was cloned from is refused with Cinder's 400 and message.
    refused = cli.run("volume", "snapshot", "delete", "cli-snap", expect_ok=False)
    assert refused.returncode != 0 and "dependent volumes" in refused.stderr
    # So is a volume that has snapshots.
    refused = cli.run("volume", "delete", "cli-vol2", expect_ok=False)
    assert refused.returncode != 0 and "dependent snapshots" in refused.stderr

    cli.run("volume", "delete", "cli-from-snap", "cli-clone")
    wait_gone(cli, "volume", {"cli-from-snap", "cli-clone"})
    cli.run("volume", "snapshot", "delete", "cli-snap")
    wait_gone(cli, "volume snapshot", {"cli-snap"})
    cli.run("volume", "delete", "cli-vol2")
    wait_gone(cli, "volume", {"cli-vol2"})


def wait_gone(cli, kind, names, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = names & {row["Name"] for row in cli.json(*kind.split(), "list")}
        if not left:
            return
        time.sleep(0.5)
    raise AssertionError(f"{kind} {left} still listed")


def test_volume_from_an_image_and_back_to_an_image(cli):
    cli.json("volume", "create", "--image", "tiny-linux", "--size", "1", "cli-boot")
    boot = wait_for_status(cli, "volume", "cli-boot", "available")
    assert boot["bootable"] in (True, "true")  # the SDK turns Cinder's string into a bool
    assert boot["volume_image_metadata"]["image_name"] == "tiny-linux"

    image = cli.json("image", "create", "--volume", "cli-boot", "--disk-format", "qcow2", "cli-from-volume")
    deadline = time.monotonic() + 120
    while cli.json("image", "show", "cli-from-volume")["status"] != "active":
        assert time.monotonic() < deadline, "the uploaded image never became active"
        time.sleep(0.5)
    assert wait_for_status(cli, "volume", "cli-boot", "available")["id"] == boot["id"]
    cli.run("image", "delete", image.get("image_id") or image.get("id") or "cli-from-volume")
    cli.run("volume", "delete", "cli-boot")
    wait_gone(cli, "volume", {"cli-boot"})


def test_over_quota_is_refused(cli):
    refused = cli.run("volume", "create", "--size", "1000", "cli-huge", expect_ok=False)
    assert refused.returncode != 0
    assert "413" in refused.stderr or "Quota exceeded" in refused.stderr
    assert "cli-huge" not in {v["Name"] for v in cli.json("volume", "list")}
    # The read-outs count what the project really holds.
    cli.json("volume", "create", "--size", "2", "cli-counted")
    wait_for_status(cli, "volume", "cli-counted", "available")
    limits = {row["Name"]: row["Value"] for row in cli.json("limits", "show", "--absolute")}
    assert (limits["max_total_volumes"], limits["max_total_volume_gigabytes"]) == (64, 100)
    assert (limits["total_volumes_used"], limits["total_gigabytes_used"]) == (1, 2)
    cli.run("volume", "delete", "cli-counted")
    wait_gone(cli, "volume", {"cli-counted"})

"""Glance v2 through the real `openstack` CLI against the live cloud: upload
a real qcow2, list, show by name, set properties, download, delete.

The live web server has its own DC_VAR_DIR, so the image lands in the live
cloud's STORAGE_ROOT, not in this process's.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.live

OPENSTACK = Path(sys.executable).parent / "openstack"


@pytest.fixture(scope="module")
def openstack_cli(live_cloud, tmp_path_factory):
    """``run(*args)``: one `openstack` command with our clouds.yaml only
    (no inherited OS_* variables, no stray ./clouds.yaml), ``-f json``
    output parsed when there is any."""
    folder = tmp_path_factory.mktemp("openstack-cli-images")
    clouds_yaml = live_cloud.clouds_yaml(folder / "clouds.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = str(clouds_yaml)

    def run(*args):
        done = subprocess.run([str(OPENSTACK), "--os-cloud", "dc", *args], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return json.loads(done.stdout) if "-f" in args else done.stdout

    run.folder = folder
    return run


def test_image_lifecycle_with_the_cli(openstack_cli, live_cloud):
    folder = openstack_cli.folder
    disk = folder / "tiny.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    data = disk.read_bytes()
    name = f"tiny-{live_cloud.port}"

    # The live cloud stores images in Ceph, raw (so disks are clones of them):
    # the qcow2 is converted once, on upload, and the image then describes
    # the raw bytes it serves, as Glance's conversion does.
    raw = folder / "tiny.raw"
    subprocess.run(["qemu-img", "convert", "-q", "-O", "raw", str(disk), str(raw)], check=True)
    raw_data = raw.read_bytes()

    created = openstack_cli("image", "create", "--file", str(disk), "--disk-format", "qcow2",
                            "--container-format", "bare", "--property", "os_distro=busybox", name, "-f", "json")
    image_id = created["id"]
    assert created["status"] == "active"
    assert created["size"] == len(raw_data) == 64 * 1024 * 1024
    assert created["checksum"] == hashlib.md5(raw_data).hexdigest()  # noqa: S324 - Glance's checksum is md5
    assert created["disk_format"] == "raw" and created["visibility"] == "shared"

    listed = openstack_cli("image", "list", "-f", "json")
    assert {"ID": image_id, "Name": name, "Status": "active"} in listed

    openstack_cli("image", "set", "--property", "default_user=dream", "--min-ram", "96", image_id)
    shown = openstack_cli("image", "show", name, "-f", "json")  # by name: 404 on the id path, then ?name=
    assert shown["id"] == image_id and shown["min_ram"] == 96
    assert shown["properties"]["default_user"] == "dream" and shown["properties"]["os_distro"] == "busybox"
    assert shown["virtual_size"] == 64 * 1024 * 1024

    saved = folder / "saved.raw"
    openstack_cli("image", "save", "--file", str(saved), image_id)
    assert saved.read_bytes() == raw_data and raw_data != data

    openstack_cli("image", "delete", image_id)
    assert image_id not in {i["ID"] for i in openstack_cli("image", "list", "-f", "json")}

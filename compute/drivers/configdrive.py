"""OpenStack config drive: an ISO 9660 image labelled ``config-2`` holding
``openstack/latest/meta_data.json`` (and ``user_data``, ``network_data.json``,
``vendor_data*.json``) in Nova's layout, which cloud-init and the test guest's
/init read.

Built with genisoimage (Nova's tool) or xorriso, whichever is installed; the
Debian package is installed by ``ensure_tools()`` (called from set-up code:
the test fixtures, ``make``), not on the request path.

The guest sees the image as a CD-ROM: ``disk_spec()`` gives the DiskSpec to
put into a GuestSpec (an IDE CD-ROM, which the libvirt driver's ``pc``
machine has).
"""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .base import DiskSpec, DriverError

LABEL = "config-2"
FILENAME = "disk.config"
REPO_DIR = Path(__file__).resolve().parents[2]


def ensure_tools():
    """Install genisoimage with the project's idempotent apt helper."""
    if _tool() is None:
        subprocess.run([str(REPO_DIR / "scripts" / "apt-ensure"), "genisoimage"], check=True)


def _tool():
    for name in ("genisoimage", "xorriso"):
        path = shutil.which(name)
        if path:
            return name, path
    return None


def meta_data(*, uuid, hostname, name, public_keys=None, metadata=None, availability_zone="nova",
              project_id=None, launch_index=0) -> dict:
    """meta_data.json as Nova writes it (nova/api/metadata/base.py)."""
    public_keys = dict(public_keys or {})
    return {
        "uuid": uuid,
        "name": name,
        "hostname": hostname,
        "launch_index": launch_index,
        "availability_zone": availability_zone,
        "project_id": project_id,
        "meta": {str(k): str(v) for k, v in (metadata or {}).items()},
        "public_keys": public_keys,
        "keys": [{"name": key_name, "type": "ssh", "data": data} for key_name, data in public_keys.items()],
        "devices": [],
    }


def build(folder, *, uuid, hostname, name, public_keys=None, user_data=b"", network_data=None, metadata=None,
          availability_zone="nova", project_id=None, filename=FILENAME) -> str:
    """Write ``folder/filename`` (an ISO 9660 ``config-2`` image) and return
    its path. ``user_data`` is bytes (or str), written only when not empty;
    ``network_data`` a dict for network_data.json (Nova's format), optional.
    Replaces an existing image atomically. Raises DriverError when no ISO
    tool is installed or it fails."""
    tool = _tool()
    if tool is None:
        raise DriverError("cannot build the config drive: genisoimage is not installed "
                          "(scripts/apt-ensure genisoimage)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / filename

    with tempfile.TemporaryDirectory(prefix=".configdrive-", dir=folder) as staging:
        latest = Path(staging) / "openstack" / "latest"
        latest.mkdir(parents=True)
        meta = meta_data(uuid=uuid, hostname=hostname, name=name, public_keys=public_keys, metadata=metadata,
                         availability_zone=availability_zone, project_id=project_id)
        _write_json(latest / "meta_data.json", meta)
        _write_json(latest / "vendor_data.json", {})
        _write_json(latest / "vendor_data2.json", {})
        if network_data is not None:
            _write_json(latest / "network_data.json", network_data)
        if user_data:
            (latest / "user_data").write_bytes(user_data.encode() if isinstance(user_data, str) else user_data)

        partial = folder / f".{filename}.partial"
        name_, path = tool
        if name_ == "genisoimage":
            # Nova's options: Rock Ridge + Joliet, names kept as written.
            command = [path, "-o", str(partial), "-ldots", "-allow-lowercase", "-allow-multidot", "-l",
                       "-publisher", "DreamCompute", "-quiet", "-J", "-r", "-V", LABEL, staging]
        else:
            command = [path, "-as", "mkisofs", "-o", str(partial), "-ldots", "-allow-lowercase",
                       "-allow-multidot", "-l", "-publisher", "DreamCompute", "-quiet", "-J", "-r", "-V", LABEL,
                       staging]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            raise DriverError(f"cannot build the config drive: {result.stderr.strip() or name_ + ' failed'}")
        os.chmod(partial, 0o644)
        os.replace(partial, target)
    return str(target)


def disk_spec(path, target="hdc") -> DiskSpec:
    """The config drive as the guest's IDE CD-ROM (Nova's default)."""
    return DiskSpec(target=target, path=str(path), format="raw", device="cdrom", bus="ide", readonly=True)


def _write_json(path, data):
    path.write_text(json.dumps(data, indent=None, sort_keys=True))

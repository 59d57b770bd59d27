"""The compute driver contract (compute/drivers/base.py), run against every
implementation: libvirt's in-process ``test:///default`` and the real
``qemu:///system`` booting the tiny guest under TCG.

On the real driver the guest itself is the witness: its serial console
reports the config drive it read, the user data it ran, the disks it sees,
ACPI power-offs and every boot ("DC-GUEST: ..." lines, see
scripts/guest/init). The test driver has no guest, so there the same
sequence checks only what libvirt reports.

One real guest boots in this module (test_guest_lifecycle); the other
qemu:///system tests fail before anything boots.
"""

import socket
import subprocess
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor

import pytest

from compute.drivers import DOMAIN_PREFIX, configdrive
from compute.drivers.base import DiskSpec, DriverError, GuestNotFound, GuestSpec, NicSpec, PowerState

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGZha2Uta2V5LWZvci10aGUtY29udHJhY3QtdGVzdA contract@test"
USER_DATA = b"#!/bin/sh\necho USERDATA-MARKER-42\n"
BOOT_TIMEOUT = 90  # ready in ~6-8 s under TCG here; generous for a loaded CI machine


def new_uuid():
    return str(uuidlib.uuid4())


def is_real(driver):
    return not driver.uri.startswith("test:")


def qcow2(path, backing=None, size="16M"):
    command = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if backing:
        command += ["-F", "qcow2", "-b", str(backing)]
    subprocess.run([*command, str(path), *([] if backing else [size])], check=True)
    return str(path)


class Console:
    """The guest's serial log; ``wait_for`` polls it (a no-op on the test
    driver, which has no guest)."""

    def __init__(self, driver, uuid):
        self.driver, self.uuid, self.real = driver, uuid, is_real(driver)

    def text(self):
        return self.driver.console_output(self.uuid)

    def mark(self):
        return len(self.text())

    def wait_for(self, needle, since=0, timeout=BOOT_TIMEOUT, count=1):
        """The log from ``since`` on, once it holds ``needle`` ``count`` times."""
        if not self.real:
            return ""
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()[since:]
            if text.count(needle) >= count:
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"no {needle!r} on the console within {timeout} s; it shows:\n{text[-3000:]}")
            time.sleep(0.1)


def wait_state(driver, uuid, state, timeout=30):
    deadline = time.monotonic() + timeout
    while driver.power_state(uuid) != state:
        assert time.monotonic() < deadline, f"{uuid} is {driver.power_state(uuid)!r}, not {state!r}"
        time.sleep(0.05)


def block_devices_lines(text):
    return [line.strip() for line in text.splitlines() if line.startswith("DC-GUEST: block-devices")]


def test_guest_lifecycle(driver, guest_image, guest_dir, config_drive_tools):
    uuid = new_uuid()
    name = DOMAIN_PREFIX + uuid
    drive = configdrive.build(guest_dir, uuid=uuid, hostname="contract-guest", name="Contract Guest",
                              public_keys={"contract": SSH_KEY}, user_data=USER_DATA)
    spec = GuestSpec(
        uuid=uuid, name=name, vcpus=1, memory_mib=128,
        disks=(DiskSpec(target="vda", path=qcow2(guest_dir / "root.qcow2", backing=guest_image)),
               configdrive.disk_spec(drive)),
        console_log=str(guest_dir / "console.log"), vnc=True,
        metadata={"name": "Contract Guest", "project": "contract"},
    )
    console = Console(driver, uuid)

    # --- spawn: the guest boots and reads its config drive and user data ----------
    driver.spawn(spec)
    assert driver.power_state(uuid) == PowerState.RUNNING
    assert driver.list_guests()[name] == PowerState.RUNNING
    with pytest.raises(DriverError):
        driver.spawn(spec)  # the uuid is taken; the running guest is left alone
    assert driver.power_state(uuid) == PowerState.RUNNING

    boot = console.wait_for("DC-GUEST: ready")
    if console.real:
        assert f"DC-GUEST: config-drive instance-id={uuid} hostname=contract-guest" in boot
        assert "DC-GUEST: ssh-key ssh-ed25519 contract@test" in boot
        assert "DC-GUEST: block-devices vda vda1\r\n" in boot  # the CD-ROM is not a vd*
        assert "DC-GUEST: no-network" in boot  # so the user data need not wait for a DHCP lease

    # --- VNC on loopback answers RFB ---------------------------------------------------
    vnc = driver.vnc_address(uuid)
    if console.real:
        host, port = vnc
        assert host == "127.0.0.1" and port >= 5900
        with socket.create_connection((host, port), timeout=10) as conn:
            assert conn.recv(12).startswith(b"RFB ")
    else:
        assert vnc is None  # the test driver allocates no port

    # --- resize: persistent config only --------------------------------------------------
    driver.resize(uuid, vcpus=2, memory_mib=256)
    assert (driver.definition(uuid).vcpus, driver.definition(uuid).memory_mib) == (2, 256)
    driver.resize(uuid, vcpus=1, memory_mib=160)  # shrinking takes the other order of calls
    assert (driver.definition(uuid).vcpus, driver.definition(uuid).memory_mib) == (1, 160)
    assert driver.definition(uuid, live=True).memory_mib == 128

    text = console.wait_for("DC-GUEST: user-data exit=0", timeout=30)
    if console.real:
        assert "USERDATA-MARKER-42" in text

    # --- pause / unpause ----------------------------------------------------------------------
    driver.pause(uuid)
    assert driver.power_state(uuid) == PowerState.PAUSED
    driver.pause(uuid)  # idempotent
    driver.unpause(uuid)
    assert driver.power_state(uuid) == PowerState.RUNNING

    # --- suspend (managed save) / resume ------------------------------------------------------
    driver.suspend(uuid)
    assert driver.power_state(uuid) == PowerState.SUSPENDED
    assert driver.list_guests()[name] == PowerState.SUSPENDED
    driver.suspend(uuid)  # idempotent
    driver.resume(uuid)
    assert driver.power_state(uuid) == PowerState.RUNNING

    # --- disk hot-plug; also proves the restored guest is alive ------------------------------
    extra = qcow2(guest_dir / "extra.qcow2")
    mark = console.mark()
    driver.attach_disk(uuid, DiskSpec(target="vdb", path=extra))
    driver.attach_disk(uuid, DiskSpec(target="vdb", path=extra))  # the same again: no-op
    assert "vdb" in driver.definition(uuid).disk_targets
    if console.real:
        assert "vdb" in driver.definition(uuid, live=True).disk_targets
    console.wait_for("DC-GUEST: block-devices vda vda1 vdb", since=mark, timeout=30)
    with pytest.raises(DriverError):
        driver.attach_disk(uuid, DiskSpec(target="vdb", path=str(guest_dir / "other.qcow2")))

    mark = console.mark()
    driver.detach_disk(uuid, "vdb")
    assert "vdb" not in driver.definition(uuid).disk_targets
    assert "vdb" not in driver.definition(uuid, live=True).disk_targets
    if console.real:
        # Wait for the settled state: a busy guest may print an intermediate
        # scan of /proc/partitions first.
        after = console.wait_for("DC-GUEST: block-devices vda vda1\r\n", since=mark, timeout=30)
        assert block_devices_lines(after)[-1] == "DC-GUEST: block-devices vda vda1"
    driver.detach_disk(uuid, "vdb")  # already gone: no-op

    # --- soft reboot: ACPI, the guest powers off and libvirt starts it again ------------------
    mark = console.mark()
    driver.reboot(uuid)
    text = console.wait_for("DC-GUEST: ready", since=mark)
    if console.real:
        assert "DC-GUEST: poweroff" in text
        assert text.index("DC-GUEST: poweroff") < text.index("DC-GUEST: init started")
    assert driver.power_state(uuid) == PowerState.RUNNING

    # --- power off (clean ACPI shutdown), power on (picks up the resize) ---------------------
    mark = console.mark()
    started = time.monotonic()
    driver.power_off(uuid, timeout=60)
    assert driver.power_state(uuid) == PowerState.SHUTDOWN
    assert driver.list_guests()[name] == PowerState.SHUTDOWN
    if console.real:
        assert "DC-GUEST: poweroff" in console.text()[mark:]
        assert time.monotonic() - started < 30  # the guest went by itself, not by the hard stop
    driver.power_off(uuid)  # idempotent
    assert driver.vnc_address(uuid) is None

    driver.power_on(uuid)
    assert driver.power_state(uuid) == PowerState.RUNNING
    live = driver.definition(uuid, live=True)
    assert (live.vcpus, live.memory_mib) == (1, 160)
    console.wait_for("DC-GUEST: init started", since=mark)
    if console.real:
        # Appended, not truncated: the earlier boots are still in the log.
        assert console.text().count("DC-GUEST: ready") >= 2
        assert "USERDATA-MARKER-42" in console.text()
        tail = driver.console_output(uuid, tail=3)
        assert len(tail.splitlines()) == 3 and tail in console.text()

    # --- hard reboot --------------------------------------------------------------------------------
    mark = console.mark()
    driver.reboot(uuid, hard=True)
    assert driver.power_state(uuid) == PowerState.RUNNING
    console.wait_for("DC-GUEST: init started", since=mark)

    # --- destroy: gone, and destroying again is fine ------------------------------------------
    driver.destroy(uuid)
    assert driver.power_state(uuid) == PowerState.NOSTATE
    assert name not in driver.list_guests()
    driver.destroy(uuid)
    with pytest.raises(GuestNotFound):
        driver.power_on(uuid)


def test_isolated_nics_and_destroying_paused_or_suspended_guests(driver, guest_dir):
    """No Linux boots here: guests with a blank disk sit in SeaBIOS, which is
    enough for QEMU to prove the NICs without a bridge (a tap linked to
    nothing) and for the host's bookkeeping."""
    uuids = [new_uuid(), new_uuid()]
    for i, uuid in enumerate(uuids):
        driver.spawn(GuestSpec(uuid=uuid, name=DOMAIN_PREFIX + uuid, vcpus=1, memory_mib=64, vnc=False,
                               disks=(DiskSpec(target="vda", path=qcow2(guest_dir / f"blank{i}.qcow2")),),
                               nics=(NicSpec(mac=f"52:54:00:dc:00:0{i}", mtu=1450),)))
    nic = driver.definition(uuids[0], live=True).root.find("devices/interface")
    assert nic.get("type") == "ethernet" and nic.find("mac").get("address") == "52:54:00:dc:00:00"
    if is_real(driver):
        tap = nic.find("target").get("dev")
        assert open(f"/sys/class/net/{tap}/mtu").read().strip() == "1450"
    driver.pause(uuids[0])
    driver.suspend(uuids[1])
    assert [driver.power_state(u) for u in uuids] == [PowerState.PAUSED, PowerState.SUSPENDED]
    for uuid in uuids:
        driver.destroy(uuid)
        assert driver.power_state(uuid) == PowerState.NOSTATE
    assert not {DOMAIN_PREFIX + u for u in uuids} & set(driver.list_guests())


def test_failed_spawn_leaves_nothing_behind(driver, guest_dir):
    uuid = new_uuid()
    if is_real(driver):
        # QEMU fails to start: libvirt says which file is missing.
        disk = DiskSpec(target="vda", path=str(guest_dir / "missing.qcow2"))
        expected = "missing.qcow2"
    else:
        # The test driver starts anything it can define; a bad format fails the definition.
        disk = DiskSpec(target="vda", path=str(guest_dir / "missing.qcow2"), format="no-such-format")
        expected = "no-such-format"
    spec = GuestSpec(uuid=uuid, name=DOMAIN_PREFIX + uuid, vcpus=1, memory_mib=128, disks=(disk,))
    with pytest.raises(DriverError) as failure:
        driver.spawn(spec)
    assert expected in str(failure.value)
    assert driver.power_state(uuid) == PowerState.NOSTATE
    assert DOMAIN_PREFIX + uuid not in driver.list_guests()


def test_missing_guest(driver):
    uuid = new_uuid()
    assert driver.power_state(uuid) == PowerState.NOSTATE
    driver.destroy(uuid)  # idempotent
    for call in (driver.power_on, driver.pause, driver.suspend, driver.resume, driver.vnc_address,
                 driver.console_output, lambda u: driver.power_off(u, timeout=1)):
        with pytest.raises(GuestNotFound):
            call(uuid)


def test_host_info(driver):
    info = driver.host_info()
    assert info.uri == driver.uri
    assert info.virt_type in ("qemu", "kvm")
    assert info.vcpus > 0 and info.memory_mib > 0 and info.hostname
    assert info.hypervisor_type == ("QEMU" if is_real(driver) else "TEST")
    driver.close()  # the next call reconnects
    assert driver.host_info().hostname == info.hostname


def test_virt_type_is_qemu_without_usable_kvm():
    """On this kind of machine KVM does not boot guests (no vmx/svm)."""
    from compute.drivers.libvirt.driver import LibvirtDriver, detect_virt_type

    with open("/proc/cpuinfo") as f:
        has_vt = any(flag in f.read().split() for flag in ("vmx", "svm"))
    assert detect_virt_type("qemu:///system") == ("kvm" if has_vt else "qemu")
    assert LibvirtDriver("qemu:///system", virt_type="kvm").virt_type == "kvm"


def test_parallel_spawns_share_one_connection():
    """Celery's thread pool calls one driver from many threads."""
    from compute.drivers.libvirt.driver import LibvirtDriver

    driver = LibvirtDriver("test:///default")
    uuids = [new_uuid() for _ in range(16)]

    def lifecycle(uuid):
        driver.spawn(GuestSpec(uuid=uuid, name=DOMAIN_PREFIX + uuid, vcpus=1, memory_mib=64))
        driver.pause(uuid)
        driver.unpause(uuid)
        driver.destroy(uuid)
        return driver.power_state(uuid)

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(lifecycle, uuids)) == {PowerState.NOSTATE}
    driver.close()


def test_domain_xml_for_rbd_bridge_and_kernel_boot():
    """What the real host cannot run here without Ceph or our bridges: the
    XML is checked, and the test driver accepts it."""
    from compute.drivers.libvirt.driver import LibvirtDriver

    uuid = new_uuid()
    spec = GuestSpec(
        uuid=uuid, name=DOMAIN_PREFIX + uuid, vcpus=2, memory_mib=512,
        disks=(DiskSpec(target="vda", source_type="rbd", name="vms/disk-1", format="raw",
                        hosts=(("10.0.0.1", 6789), ("10.0.0.2", 6789)), auth_username="compute",
                        auth_secret_uuid="11111111-2222-3333-4444-555555555555", serial="vol-1"),),
        nics=(NicSpec(mac="52:54:00:00:00:02", bridge="brq-1", tap="tap12345678-9a", mtu=1450),),
        kernel="/boot/k", initrd="/boot/i", cmdline="console=ttyS0", vnc=False,
        metadata={"name": "<&'\">"},
    )
    driver = LibvirtDriver("qemu:///system", virt_type="qemu")
    root = ET.fromstring(driver.domain_config(spec).to_xml())  # noqa: S314 - our own XML
    assert root.get("type") == "qemu"
    assert root.findtext("memory") == "512" and root.find("memory").get("unit") == "MiB"
    assert root.findtext("os/kernel") == "/boot/k" and root.findtext("os/cmdline") == "console=ttyS0"
    assert root.find("devices/disk/boot") is None  # direct kernel boot
    disk = root.find("devices/disk")
    assert disk.get("type") == "network"
    assert disk.find("source").attrib == {"protocol": "rbd", "name": "vms/disk-1"}
    assert [h.attrib for h in disk.iterfind("source/host")] == [
        {"name": "10.0.0.1", "port": "6789"}, {"name": "10.0.0.2", "port": "6789"}]
    assert disk.find("auth").get("username") == "compute"
    assert disk.find("auth/secret").attrib == {"type": "ceph", "uuid": "11111111-2222-3333-4444-555555555555"}
    assert disk.findtext("serial") == "vol-1"
    nic = root.find("devices/interface")
    assert nic.get("type") == "bridge" and nic.find("source").get("bridge") == "brq-1"
    assert nic.find("target").get("dev") == "tap12345678-9a" and nic.find("mtu").get("size") == "1450"
    assert root.find("devices/graphics") is None
    assert root.find("devices/serial").get("type") == "pty"

    test = LibvirtDriver("test:///default")
    test.spawn(spec)
    try:
        assert test.definition(uuid).disk_source("vda") == "vms/disk-1"
        assert "&lt;&amp;" in test._host.get(uuid).xml()  # metadata escaped, not templated
    finally:
        test.destroy(uuid)
        test.close()


def test_config_drive_layout(guest_dir, config_drive_tools):
    import json

    path = configdrive.build(guest_dir, uuid="u-1", hostname="h-1", name="N 1", public_keys={"k": SSH_KEY},
                             user_data=USER_DATA, network_data={"links": [], "networks": [], "services": []},
                             metadata={"role": "web"})

    def iso(*args):
        return subprocess.run(["isoinfo", "-i", path, *args], check=True, capture_output=True).stdout

    assert b"Volume id: config-2" in iso("-d")
    meta = json.loads(iso("-R", "-x", "/openstack/latest/meta_data.json"))
    assert meta["uuid"] == "u-1" and meta["hostname"] == "h-1" and meta["name"] == "N 1"
    assert meta["public_keys"] == {"k": SSH_KEY} and meta["meta"] == {"role": "web"}
    assert iso("-R", "-x", "/openstack/latest/user_data") == USER_DATA
    assert json.loads(iso("-R", "-x", "/openstack/latest/network_data.json"))["links"] == []

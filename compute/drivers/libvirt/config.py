"""Domain XML as objects (in the manner of nova/virt/libvirt/config.py).

Each class is one element of libvirt's domain XML and knows how to write
itself with ``xml.etree``: no string templates, so values are always escaped
and the structure is visible in one place. ``DomainDescription`` reads back
the few things the driver needs from a domain's XML (disks by target, the
serial log, the VNC port).

Nothing here talks to libvirt; the tests can build and inspect XML without it.
"""

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from ..base import DiskSpec, NicSpec

METADATA_NS = "http://dreamcompute.org/xmlns/instance/1.0"
ET.register_namespace("dc", METADATA_NS)


def _sub(parent, tag, text=None, **attrs):
    element = ET.SubElement(parent, tag, {k: str(v) for k, v in attrs.items() if v is not None})
    if text is not None:
        element.text = str(text)
    return element


def to_xml(element) -> str:
    return ET.tostring(element, encoding="unicode")


class Device:
    def to_element(self) -> ET.Element:
        raise NotImplementedError

    def to_xml(self) -> str:
        return to_xml(self.to_element())


@dataclass
class Disk(Device):
    """``<disk>``: a file (qcow2/raw) or an RBD image reached over the network."""

    target: str
    bus: str = "virtio"
    device: str = "disk"
    source_type: str = "file"
    path: str | None = None
    name: str | None = None
    format: str = "qcow2"
    readonly: bool = False
    hosts: tuple = ()
    auth_username: str | None = None
    auth_secret_uuid: str | None = None
    serial: str | None = None
    boot_order: int | None = None

    @classmethod
    def from_spec(cls, spec: DiskSpec, boot_order=None):
        return cls(
            target=spec.target, bus=spec.bus, device=spec.device, source_type=spec.source_type, path=spec.path,
            name=spec.name, format=spec.format, readonly=spec.readonly, hosts=tuple(spec.hosts),
            auth_username=spec.auth_username, auth_secret_uuid=spec.auth_secret_uuid, serial=spec.serial,
            boot_order=boot_order,
        )

    def to_element(self):
        if self.source_type == "file":
            disk = ET.Element("disk", type="file", device=self.device)
            _sub(disk, "driver", name="qemu", type=self.format)
            _sub(disk, "source", file=self.path)
        elif self.source_type == "rbd":
            disk = ET.Element("disk", type="network", device=self.device)
            _sub(disk, "driver", name="qemu", type=self.format)
            source = _sub(disk, "source", protocol="rbd", name=self.name)
            for host, port in self.hosts:
                _sub(source, "host", name=host, port=port)
            if self.auth_username:
                auth = _sub(disk, "auth", username=self.auth_username)
                _sub(auth, "secret", type="ceph", uuid=self.auth_secret_uuid)
        else:
            raise ValueError(f"unknown disk source type {self.source_type!r}")
        _sub(disk, "target", dev=self.target, bus=self.bus)
        if self.readonly or self.device == "cdrom":
            _sub(disk, "readonly")
        if self.serial:
            _sub(disk, "serial", self.serial)
        if self.boot_order is not None:
            _sub(disk, "boot", order=self.boot_order)
        return disk


@dataclass
class Interface(Device):
    """``<interface>``: a tap on one of our L2 bridges, or, without a bridge,
    a tap linked to nothing (``type='ethernet'``): the guest sees a NIC whose
    cable goes nowhere. That needs no libvirt network (we never start
    libvirt's NATed ``default``) and no bridge privileges beyond creating a
    tap, which qemu:///system does as root."""

    mac: str
    bridge: str | None = None
    tap: str | None = None
    mtu: int | None = None
    model: str = "virtio"

    @classmethod
    def from_spec(cls, spec: NicSpec):
        return cls(mac=spec.mac, bridge=spec.bridge, tap=spec.tap, mtu=spec.mtu)

    def to_element(self):
        nic = ET.Element("interface", type="bridge" if self.bridge else "ethernet")
        _sub(nic, "mac", address=self.mac)
        if self.bridge:
            _sub(nic, "source", bridge=self.bridge)
        if self.tap:
            _sub(nic, "target", dev=self.tap)
        _sub(nic, "model", type=self.model)
        if self.mtu:
            _sub(nic, "mtu", size=self.mtu)
        return nic


@dataclass
class SerialConsole(Device):
    """The first serial port and its ``<console>`` alias. With a ``path``
    the output goes to that file (appended, so a power cycle keeps the
    history; libvirt hands the file to virtlogd, which caps its size);
    without one, to a pty."""

    path: str | None = None

    def _source(self, element):
        if self.path:
            _sub(element, "source", path=self.path, append="on")

    def to_elements(self):
        kind = "file" if self.path else "pty"
        serial = ET.Element("serial", type=kind)
        self._source(serial)
        _sub(serial, "target", port=0)
        console = ET.Element("console", type=kind)
        self._source(console)
        _sub(console, "target", type="serial", port=0)
        return [serial, console]

    def to_element(self):
        return self.to_elements()[0]


@dataclass
class VNC(Device):
    listen: str = "127.0.0.1"

    def to_element(self):
        return ET.Element("graphics", type="vnc", autoport="yes", listen=self.listen)


@dataclass
class RNG(Device):
    """virtio-rng from the host's urandom: a fresh guest makes its SSH host
    key without waiting for its own entropy pool."""

    def to_element(self):
        rng = ET.Element("rng", model="virtio")
        _sub(rng, "backend", "/dev/urandom", model="random")
        return rng


@dataclass
class Domain:
    """A whole ``<domain>``.

    ``machine`` is ``pc`` (i440fx): the guest kernel has no AHCI, and ``pc``
    keeps both an IDE CD-ROM (Nova's config-drive default) and ACPI PCI
    hot-plug of virtio disks without extra root ports. ``tb_cache_mib``
    only applies to TCG (``virt_type='qemu'``) and is left out when None.
    """

    virt_type: str
    name: str
    uuid: str
    memory_mib: int
    vcpus: int
    machine: str = "pc"
    arch: str = "x86_64"
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    cpu_mode: str | None = None  # None: the hypervisor's default model
    tb_cache_mib: int | None = None
    devices: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)

    def to_element(self):
        domain = ET.Element("domain", type=self.virt_type)
        _sub(domain, "name", self.name)
        _sub(domain, "uuid", self.uuid)
        if self.metadata:
            holder = _sub(domain, "metadata")
            instance = _sub(holder, f"{{{METADATA_NS}}}instance")
            for key, value in self.metadata.items():
                _sub(instance, f"{{{METADATA_NS}}}entry", "" if value is None else value, key=key)
        _sub(domain, "memory", self.memory_mib, unit="MiB")
        _sub(domain, "currentMemory", self.memory_mib, unit="MiB")
        _sub(domain, "vcpu", self.vcpus)

        os_ = _sub(domain, "os")
        _sub(os_, "type", "hvm", arch=self.arch, machine=self.machine)
        if self.kernel:
            _sub(os_, "kernel", self.kernel)
            if self.initrd:
                _sub(os_, "initrd", self.initrd)
            if self.cmdline:
                _sub(os_, "cmdline", self.cmdline)

        features = _sub(domain, "features")
        _sub(features, "acpi")
        _sub(features, "apic")
        if self.tb_cache_mib:
            tcg = _sub(features, "tcg")
            _sub(tcg, "tb-cache", self.tb_cache_mib, unit="MiB")
        if self.cpu_mode:
            _sub(domain, "cpu", mode=self.cpu_mode)
        _sub(domain, "clock", offset="utc")
        _sub(domain, "on_poweroff", "destroy")
        _sub(domain, "on_reboot", "restart")
        _sub(domain, "on_crash", "destroy")

        devices = _sub(domain, "devices")
        for device in self.devices:
            elements = device.to_elements() if hasattr(device, "to_elements") else [device.to_element()]
            devices.extend(elements)
        return domain

    def to_xml(self) -> str:
        return to_xml(self.to_element())


@dataclass
class CephSecret:
    """``<secret>`` holding a cephx key for QEMU's RBD disks (``usage`` type
    ceph, named after the client as Nova and the Ceph docs do). The key
    itself is never in the XML: it is set with virSecretSetValue."""

    uuid: str
    username: str

    @property
    def usage_name(self):
        return f"client.{self.username} secret"

    def to_element(self):
        secret = ET.Element("secret", ephemeral="no", private="no")
        _sub(secret, "uuid", self.uuid)
        usage = _sub(secret, "usage", type="ceph")
        _sub(usage, "name", self.usage_name)
        return secret

    def to_xml(self) -> str:
        return to_xml(self.to_element())


class DomainDescription:
    """Read-only view of a domain's XML (live or persistent)."""

    def __init__(self, xml: str):
        self.root = ET.fromstring(xml)  # noqa: S314 - libvirt's own output, not user input

    def disk(self, target: str) -> ET.Element | None:
        for disk in self.root.iterfind("./devices/disk"):
            node = disk.find("target")
            if node is not None and node.get("dev") == target:
                return disk
        return None

    def disk_xml(self, target: str) -> str | None:
        disk = self.disk(target)
        return None if disk is None else to_xml(disk)

    def disk_source(self, target: str) -> str | None:
        disk = self.disk(target)
        source = None if disk is None else disk.find("source")
        if source is None:
            return None
        return source.get("file") or source.get("name")

    @property
    def disk_targets(self) -> list[str]:
        return [node.get("dev") for node in self.root.iterfind("./devices/disk/target")]

    @property
    def console_log(self) -> str | None:
        for kind in ("serial", "console"):
            for node in self.root.iterfind(f"./devices/{kind}[@type='file']/source"):
                if node.get("path"):
                    return node.get("path")
        return None

    @property
    def vnc(self) -> tuple[str, int] | None:
        graphics = self.root.find("./devices/graphics[@type='vnc']")
        if graphics is None:
            return None
        port = int(graphics.get("port") or -1)
        if port <= 0:
            return None
        return graphics.get("listen") or "127.0.0.1", port

    @property
    def memory_mib(self) -> int:
        return _kib(self.root.find("memory")) // 1024

    @property
    def vcpus(self) -> int:
        return int(self.root.findtext("vcpu"))

    def add_device(self, element: ET.Element) -> str:
        self.root.find("devices").append(element)
        return to_xml(self.root)

    def remove_disk(self, target: str) -> str:
        disk = self.disk(target)
        if disk is not None:
            self.root.find("devices").remove(disk)
        return to_xml(self.root)


_UNITS = {"b": 1 / 1024, "bytes": 1 / 1024, "k": 1, "kib": 1, "m": 1024, "mib": 1024, "g": 1024**2, "gib": 1024**2}


def _kib(node) -> int:
    unit = (node.get("unit") or "KiB").lower()
    return int(int(node.text) * _UNITS.get(unit, 1))

"""The compute driver contract (in the manner of nova/virt/driver.py).

A driver runs guests on one host. It knows nothing of the database: the
compute tasks hand it plain specs and record what it reports. Every method
is idempotent where the docstring says so, raises ``DriverError`` (with a
message fit for the user) on failure, and never leaves a half-made guest
behind on a failed ``spawn``.

One contract test suite (tests/compute/test_driver_contract.py) runs against
every implementation: libvirt's ``test:///default`` and the real
``qemu:///system`` booting the tiny guest.
"""

import enum
from dataclasses import dataclass, field


class DriverError(Exception):
    """A failure the user should read (stored as the instance's fault)."""


class GuestNotFound(DriverError):
    pass


class PowerState(enum.IntEnum):
    """Nova's power states (nova/compute/power_state.py)."""

    NOSTATE = 0
    RUNNING = 1
    PAUSED = 3
    SHUTDOWN = 4
    CRASHED = 6
    SUSPENDED = 7


@dataclass(frozen=True)
class DiskSpec:
    """A disk as the guest sees it. ``source_type`` is ``file`` (``path``)
    or ``rbd`` (``name`` = pool/image, with ``hosts`` and cephx ``auth``)."""

    target: str  # vda, vdb …
    source_type: str = "file"
    path: str | None = None
    name: str | None = None
    format: str = "qcow2"  # qcow2 | raw
    device: str = "disk"  # disk | cdrom
    bus: str = "virtio"
    readonly: bool = False
    hosts: tuple = ()  # ((host, port), …) for rbd
    auth_username: str | None = None
    auth_secret_uuid: str | None = None
    serial: str | None = None  # the volume id, shown in the guest as /dev/disk/by-id


@dataclass(frozen=True)
class NicSpec:
    mac: str
    bridge: str | None = None  # None: an isolated NIC with no link to anything
    tap: str | None = None  # host-side device name (tapXXXXXXXX-XX), for security groups
    mtu: int | None = None


@dataclass(frozen=True)
class GuestSpec:
    uuid: str
    name: str  # libvirt domain name: "dc-" + uuid (the reconcile prefix)
    vcpus: int
    memory_mib: int
    disks: tuple[DiskSpec, ...] = ()
    nics: tuple[NicSpec, ...] = ()
    console_log: str | None = None  # file the serial console is written to
    vnc: bool = True
    kernel: str | None = None  # direct kernel boot (optional)
    initrd: str | None = None
    cmdline: str | None = None
    metadata: dict = field(default_factory=dict)  # written into <metadata> for operators


@dataclass(frozen=True)
class HostInfo:
    hostname: str
    vcpus: int
    memory_mib: int
    disk_gb: int
    hypervisor_type: str
    hypervisor_version: int
    virt_type: str
    uri: str


class ComputeDriver:
    """What a compute host can do. All methods take the instance uuid."""

    name = "base"

    def host_info(self) -> HostInfo:
        raise NotImplementedError

    def spawn(self, spec: GuestSpec) -> None:
        """Define and start the guest. On failure nothing of it remains."""
        raise NotImplementedError

    def destroy(self, uuid: str) -> None:
        """Stop hard and undefine; idempotent (a missing guest is fine)."""
        raise NotImplementedError

    def power_off(self, uuid: str, timeout: float = 60) -> None:
        """ACPI shutdown, then hard power-off after ``timeout`` seconds."""
        raise NotImplementedError

    def power_on(self, uuid: str) -> None:
        raise NotImplementedError

    def reboot(self, uuid: str, hard: bool = False) -> None:
        raise NotImplementedError

    def pause(self, uuid: str) -> None:
        raise NotImplementedError

    def unpause(self, uuid: str) -> None:
        raise NotImplementedError

    def suspend(self, uuid: str) -> None:
        """Save the guest's memory to disk and stop it (libvirt managed save)."""
        raise NotImplementedError

    def resume(self, uuid: str) -> None:
        raise NotImplementedError

    def power_state(self, uuid: str) -> PowerState:
        """NOSTATE when the guest does not exist."""
        raise NotImplementedError

    def list_guests(self) -> dict[str, PowerState]:
        """Every guest of ours on this host (domain names with our prefix)."""
        raise NotImplementedError

    def console_output(self, uuid: str, tail: int | None = None) -> str:
        raise NotImplementedError

    def attach_disk(self, uuid: str, disk: DiskSpec) -> None:
        raise NotImplementedError

    def detach_disk(self, uuid: str, target: str) -> None:
        raise NotImplementedError

    def vnc_address(self, uuid: str) -> tuple[str, int] | None:
        raise NotImplementedError

    def resize(self, uuid: str, vcpus: int, memory_mib: int) -> None:
        """Change the defined size; takes effect at the next start."""
        raise NotImplementedError

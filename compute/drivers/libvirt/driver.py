"""The libvirt compute driver: ``test:///default`` in embedded mode and unit
tests, ``qemu:///system`` on a real host (KVM where the CPU has vmx/svm and
/dev/kvm exists, TCG otherwise).

Policy lives here (what to wait for, what is idempotent, which fallbacks);
the libvirt calls themselves live in ``guest.py`` and the XML in
``config.py``.
"""

import base64
import logging
import os
import shutil
import time

from .. import DOMAIN_PREFIX
from ..base import ComputeDriver, DiskSpec, DriverError, GuestNotFound, GuestSpec, HostInfo, PowerState
from . import config
from .guest import Host, LibvirtDriverError

logger = logging.getLogger(__name__)

TB_CACHE_MIB = 32  # QEMU's TCG default is 1 GiB of translation cache per guest
TB_CACHE_MIN_LIBVIRT = 8_000_000  # <features><tcg><tb-cache> appeared in libvirt 8.0
POLL_INTERVAL = 0.1


def detect_virt_type(uri: str) -> str:
    """``kvm`` when this machine can run it, else ``qemu`` (TCG).

    ``/dev/kvm`` alone is not proof (some sandboxes expose a KVM device that
    boots nothing); the CPU must also advertise vmx or svm. For a remote URI
    the answer describes this machine, not the remote one: set the virt type
    explicitly there (LIBVIRT_VIRT_TYPE)."""
    if uri.startswith("test:"):
        return "qemu"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = {word for line in cpuinfo if line.startswith("flags") for word in line.split()}
    except OSError:
        flags = set()
    if flags & {"vmx", "svm"} and os.path.exists("/dev/kvm"):
        return "kvm"
    return "qemu"


def _default_storage_root():
    try:
        from django.conf import settings

        return getattr(settings, "STORAGE_ROOT", None) if settings.configured else None
    except ImportError:
        return None


class LibvirtDriver(ComputeDriver):
    name = "libvirt"

    def __init__(self, uri: str, virt_type: str | None = None, storage_root: str | None = None):
        self.uri = uri
        self.virt_type = virt_type or detect_virt_type(uri)
        self.storage_root = storage_root
        self._host = Host(uri)
        self._tb_cache = None

    def __repr__(self):
        return f"<LibvirtDriver {self.uri} {self.virt_type}>"

    def close(self):
        self._host.close()

    # --- host -----------------------------------------------------------------------------
    def host_info(self) -> HostInfo:
        info = self._host.info()
        root = self.storage_root or _default_storage_root()
        disk_gb = 0
        if root and os.path.isdir(root):
            disk_gb = shutil.disk_usage(root).total // 2**30
        return HostInfo(
            hostname=info["hostname"], vcpus=info["vcpus"], memory_mib=info["memory_mib"], disk_gb=disk_gb,
            hypervisor_type=info["hypervisor_type"], hypervisor_version=info["hypervisor_version"],
            virt_type=self.virt_type, uri=self.uri,
        )

    # --- XML ------------------------------------------------------------------------------
    def _uses_tb_cache(self) -> bool:
        if self.virt_type != "qemu":
            return False
        if self._tb_cache is None:
            self._tb_cache = self._host.lib_version() >= TB_CACHE_MIN_LIBVIRT
        return self._tb_cache

    def domain_config(self, spec: GuestSpec) -> config.Domain:
        devices = []
        # Without a kernel to boot directly, boot the first hard disk (the
        # root disk); CD-ROMs (config drives) are never bootable.
        boot_disk = None if spec.kernel else next((d for d in spec.disks if d.device == "disk"), None)
        for disk in spec.disks:
            devices.append(config.Disk.from_spec(disk, boot_order=1 if disk is boot_disk else None))
        devices.extend(config.Interface.from_spec(nic) for nic in spec.nics)
        devices.append(config.SerialConsole(spec.console_log))
        if spec.vnc:
            devices.append(config.VNC())
        devices.append(config.RNG())
        return config.Domain(
            virt_type=self.virt_type, name=spec.name, uuid=spec.uuid, memory_mib=spec.memory_mib,
            vcpus=spec.vcpus, kernel=spec.kernel, initrd=spec.initrd, cmdline=spec.cmdline,
            cpu_mode="host-model" if self.virt_type == "kvm" else None,
            tb_cache_mib=TB_CACHE_MIB if self._uses_tb_cache() else None,
            devices=devices, metadata=dict(spec.metadata),
        )

    # --- lifecycle ------------------------------------------------------------------------
    def spawn(self, spec: GuestSpec) -> None:
        """Define and start. A guest with this uuid must not exist yet (it is
        left alone and DriverError raised); on any failure the new domain is
        undefined again."""
        if self._host.find(spec.uuid) is not None:
            raise DriverError(f"a guest with uuid {spec.uuid} already exists on this host")
        self._check_secrets(spec.disks)
        guest = self._host.define(self.domain_config(spec).to_xml())
        try:
            guest.create()
        except DriverError:
            self._remove(guest)
            raise

    def _remove(self, guest):
        """Stop and undefine, tolerating a guest that is already gone."""
        try:
            if guest.is_active():
                try:
                    guest.destroy()
                except LibvirtDriverError as exc:
                    if not exc.not_running:
                        raise
            guest.undefine()
        except GuestNotFound:
            pass

    def destroy(self, uuid: str) -> None:
        guest = self._host.find(uuid)
        if guest is not None:
            self._remove(guest)

    def power_off(self, uuid: str, timeout: float = 60) -> None:
        """ACPI power button, then a hard stop after ``timeout`` s; the guest
        stays defined. Idempotent. A paused guest cannot react to ACPI and is
        stopped at once. A suspended guest loses its saved memory, so that it
        ends SHUTDOWN and the next power_on boots afresh."""
        guest = self._host.get(uuid)
        if not guest.is_active():
            if guest.has_managed_save():
                guest.remove_managed_save()
            return
        if timeout > 0 and not guest.is_paused():
            try:
                guest.shutdown()
            except LibvirtDriverError as exc:
                if exc.not_running:
                    return
                logger.warning("ACPI shutdown of %s failed (%s); stopping it hard", uuid, exc)
            else:
                if self._wait(lambda: not guest.is_active(), timeout):
                    return
                logger.info("%s ignored the ACPI power button for %s s; stopping it hard", uuid, timeout)
        try:
            guest.destroy()
        except LibvirtDriverError as exc:
            if not exc.not_running:
                raise

    @staticmethod
    def _wait(predicate, timeout) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_INTERVAL)

    def power_on(self, uuid: str) -> None:
        """Start a stopped guest (restoring a suspended one); a running or
        paused guest is left as it is."""
        guest = self._host.get(uuid)
        if not guest.is_active():
            guest.create()

    def reboot(self, uuid: str, hard: bool = False) -> None:
        """Soft: libvirt's ACPI reboot (the power button is pressed and the
        guest reset instead of stopped when it powers off); returns at once,
        and a guest that ignores ACPI simply keeps running. If libvirt cannot
        do that, or with ``hard``, stop and start the guest, which also
        applies its persistent configuration (a resize). A stopped guest is
        started."""
        guest = self._host.get(uuid)
        if not guest.is_active():
            guest.create()
            return
        if not hard and not guest.is_paused():
            try:
                guest.reboot()
                return
            except LibvirtDriverError as exc:
                logger.warning("soft reboot of %s failed (%s); rebooting hard", uuid, exc)
        try:
            guest.destroy()
        except LibvirtDriverError as exc:
            if not exc.not_running:
                raise
        guest.create()

    def pause(self, uuid: str) -> None:
        guest = self._host.get(uuid)
        if guest.is_paused():
            return
        if not guest.is_active():
            raise DriverError("cannot pause a guest that is not running")
        guest.pause()

    def unpause(self, uuid: str) -> None:
        guest = self._host.get(uuid)
        if guest.is_paused():
            guest.unpause()
        elif not guest.is_active():
            raise DriverError("cannot unpause a guest that is not running")

    def suspend(self, uuid: str) -> None:
        """libvirt managed save: memory to disk, QEMU stopped. Idempotent."""
        guest = self._host.get(uuid)
        if not guest.is_active():
            if guest.has_managed_save():
                return
            raise DriverError("cannot suspend a guest that is not running")
        guest.managed_save()

    def resume(self, uuid: str) -> None:
        """Start from the managed save image (libvirt's create does that; a
        guest without one boots afresh). A running guest is left alone."""
        guest = self._host.get(uuid)
        if guest.is_active():
            return
        if not guest.has_managed_save():
            logger.warning("resuming %s, which has no saved state: booting it", uuid)
        guest.create()

    # --- state ----------------------------------------------------------------------------
    def power_state(self, uuid: str) -> PowerState:
        guest = self._host.find(uuid)
        if guest is None:
            return PowerState.NOSTATE
        try:
            return guest.power_state()
        except GuestNotFound:
            return PowerState.NOSTATE

    def list_guests(self) -> dict[str, PowerState]:
        found = {}
        for guest in self._host.guests(DOMAIN_PREFIX):
            try:
                found[guest.name] = guest.power_state()
            except GuestNotFound:  # undefined while we looked
                continue
        return found

    def console_output(self, uuid: str, tail: int | None = None) -> str:
        """The serial console log as text ("" when the guest has no log file
        or has not written it yet, as with the test driver)."""
        path = config.DomainDescription(self._host.get(uuid).xml(inactive=True)).console_log
        if not path:
            return ""
        try:
            with open(path, "rb") as log:
                data = log.read()
        except FileNotFoundError:
            return ""
        except OSError as exc:
            raise DriverError(f"cannot read the console log: {exc.strerror}")
        text = data.decode("utf-8", errors="replace")
        if tail is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-tail:]) if tail > 0 else ""
        return text

    def vnc_address(self, uuid: str) -> tuple[str, int] | None:
        """(listen address, port) of a running guest's VNC server, or None."""
        guest = self._host.get(uuid)
        if not guest.is_active():
            return None
        return config.DomainDescription(guest.xml()).vnc

    def definition(self, uuid: str, live: bool = False) -> config.DomainDescription:
        """The guest's persistent configuration (or, with ``live``, the
        running one), parsed: for operators, the reconcile and tests."""
        guest = self._host.get(uuid)
        return config.DomainDescription(guest.xml(inactive=not live))

    # --- cephx secrets -------------------------------------------------------------------
    def ensure_ceph_secret(self, secret_uuid: str, username: str, key: str) -> None:
        """The libvirt secret RBD disks with ``auth_secret_uuid`` name, holding
        the cephx ``key`` (base64, as in a keyring) of ``client.<username>``.
        Idempotent: an existing secret with the same value is left alone."""
        value = base64.b64decode(key)
        if self._host.secret_value(secret_uuid) == value:
            return
        self._host.set_secret(config.CephSecret(secret_uuid, username).to_xml(), secret_uuid, value)

    def delete_ceph_secret(self, secret_uuid: str) -> None:
        """Idempotent."""
        self._host.undefine_secret(secret_uuid)

    def _check_secrets(self, disks) -> None:
        """QEMU cannot open an RBD disk with cephx before its secret exists:
        say so plainly instead of libvirt's "secret not found"."""
        if self._host.is_test:
            return
        for disk in disks:
            if disk.auth_secret_uuid and self._host.secret_value(disk.auth_secret_uuid) is None:
                raise DriverError(f"libvirt secret {disk.auth_secret_uuid} (cephx key of client."
                                  f"{disk.auth_username}) is not defined on this host")

    # --- devices --------------------------------------------------------------------------
    def attach_disk(self, uuid: str, disk: DiskSpec) -> None:
        """Into the persistent config, and the running guest if it runs.
        Attaching the same source at the same target again is a no-op."""
        guest = self._host.get(uuid)
        persistent = config.DomainDescription(guest.xml(inactive=True))
        if persistent.disk(disk.target) is not None:
            if persistent.disk_source(disk.target) == (disk.path or disk.name):
                return
            raise DriverError(f"the guest already has a disk at {disk.target}")
        self._check_secrets([disk])
        device = config.Disk.from_spec(disk)
        try:
            guest.attach_device(device.to_xml(), live=guest.is_active())
        except LibvirtDriverError as exc:
            # The test driver has no device hot-plug: edit its definition.
            if not (exc.unsupported and self._host.is_test):
                raise
            self._host.define(persistent.add_device(device.to_element()))

    def detach_disk(self, uuid: str, target: str, timeout: float = 30) -> None:
        """From the persistent config, then from the running guest, waiting
        up to ``timeout`` s for the guest to let go of it (an unplug needs
        the guest's cooperation). Detaching an absent target is a no-op."""
        guest = self._host.get(uuid)
        persistent = config.DomainDescription(guest.xml(inactive=True))
        active = guest.is_active()
        live_xml = config.DomainDescription(guest.xml()).disk_xml(target) if active else None
        config_xml = persistent.disk_xml(target)
        if config_xml is not None:
            try:
                guest.detach_device(config_xml, live=False, config=True)
            except LibvirtDriverError as exc:
                if not (exc.unsupported and self._host.is_test):
                    raise
                self._host.define(persistent.remove_disk(target))
                live_xml = None  # the test driver's live guest cannot change
        if live_xml is not None:
            guest.detach_device(live_xml, live=True, config=False)

            def released():
                return not guest.is_active() or config.DomainDescription(guest.xml()).disk(target) is None

            if not self._wait(released, timeout):
                raise DriverError(f"the guest did not release {target} within {timeout:g} s")

    def resize(self, uuid: str, vcpus: int, memory_mib: int) -> None:
        """Persistent config only (maximum and current alike); takes effect
        at the next start."""
        guest = self._host.get(uuid)
        current = config.DomainDescription(guest.xml(inactive=True))
        memory_kib = memory_mib * 1024
        # A maximum below the current value (or a current above the maximum)
        # is refused, so the order depends on the direction.
        if memory_mib >= current.memory_mib:
            guest.set_memory(memory_kib, maximum=True)
            guest.set_memory(memory_kib, maximum=False)
        else:
            guest.set_memory(memory_kib, maximum=False)
            guest.set_memory(memory_kib, maximum=True)
        if vcpus >= current.vcpus:
            guest.set_vcpus(vcpus, maximum=True)
            guest.set_vcpus(vcpus, maximum=False)
        else:
            guest.set_vcpus(vcpus, maximum=False)
            guest.set_vcpus(vcpus, maximum=True)

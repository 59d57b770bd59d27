"""The only module that imports ``libvirt`` (as nova/virt/libvirt/guest.py
and host.py do): a ``Host`` owning one connection, a ``Guest`` object per
domain, and the translation of ``libvirtError`` into the driver contract's
``DriverError`` / ``GuestNotFound``.

Everything here is thin: one method per libvirt call, no policy. What to do
when (wait, fall back, retry) is the driver's business.
"""

import contextlib
import functools
import logging
import threading
import time

import libvirt

from ..base import DriverError, GuestNotFound, PowerState

logger = logging.getLogger(__name__)


def _ignore_errors(_ctx, _error):
    """libvirt prints every error to stderr by default; we raise them instead."""


libvirt.registerErrorHandler(_ignore_errors, None)

_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: PowerState.NOSTATE,
    libvirt.VIR_DOMAIN_RUNNING: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: PowerState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: PowerState.SHUTDOWN,  # still shutting down (nova maps it so)
    libvirt.VIR_DOMAIN_SHUTOFF: PowerState.SHUTDOWN,
    libvirt.VIR_DOMAIN_CRASHED: PowerState.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: PowerState.SUSPENDED,
}

_NOT_FOUND = {libvirt.VIR_ERR_NO_DOMAIN}
_NOT_RUNNING = {libvirt.VIR_ERR_OPERATION_INVALID}


def library_version() -> int:
    return libvirt.getVersion()


@contextlib.contextmanager
def connect(uri: str):
    """A connection for one block of work, closed afterwards."""
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise DriverError(f"cannot connect to libvirt at {uri}: {exc.get_error_message()}")
    try:
        yield conn
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()


class Host:
    """One libvirt connection per driver, opened lazily and reopened when it
    died (libvirtd restarted). libvirt connections are thread-safe, so
    Celery's thread pool shares it; only opening is serialised.

    Without an event loop libvirt notices a dead daemon only when a call
    fails, so ``isAlive()`` alone would let the first call after a libvirtd
    restart fail. A connection idle for more than ``PROBE_AFTER`` seconds is
    therefore probed with a cheap call (getLibVersion) before use."""

    PROBE_AFTER = 1.0

    def __init__(self, uri: str):
        self.uri = uri
        self._conn = None
        self._lock = threading.Lock()
        self._used_at = 0.0

    @property
    def is_test(self) -> bool:
        return self.uri.startswith("test:")

    def connection(self):
        conn = self._conn
        if conn is not None and self._usable(conn):
            return conn
        with self._lock:
            if self._conn is not None and self._usable(self._conn):
                return self._conn
            if self._conn is not None:
                logger.warning("libvirt connection to %s lost; reconnecting", self.uri)
                self._close(self._conn)
            try:
                self._conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                self._conn = None
                raise DriverError(f"cannot connect to libvirt at {self.uri}: {exc.get_error_message()}")
            self._used_at = time.monotonic()
            return self._conn

    def _usable(self, conn) -> bool:
        if not self._alive(conn):
            return False
        now = time.monotonic()
        if now - self._used_at > self.PROBE_AFTER:
            try:
                conn.getLibVersion()
            except libvirt.libvirtError:
                return False
        self._used_at = now
        return True

    @staticmethod
    def _alive(conn) -> bool:
        try:
            return bool(conn.isAlive())
        except libvirt.libvirtError:
            return False

    @staticmethod
    def _close(conn):
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()

    def close(self):
        with self._lock:
            if self._conn is not None:
                self._close(self._conn)
                self._conn = None

    @contextlib.contextmanager
    def errors(self, what: str, uuid: str | None = None):
        """Turn libvirt's exceptions into the contract's, prefixed by ``what``
        (for the user: "start guest: Cannot access storage file ...")."""
        try:
            yield
        except libvirt.libvirtError as exc:
            if self._conn is not None and not self._alive(self._conn):
                self.close()
            code = exc.get_error_code()
            message = exc.get_error_message() or str(exc)
            if code in _NOT_FOUND:
                raise GuestNotFound(f"guest {uuid or ''} not found".replace("  ", " "))
            raise LibvirtDriverError(f"{what}: {message}", code=code)

    # --- host ---------------------------------------------------------------------
    def info(self) -> dict:
        with self.errors("read host information"):
            conn = self.connection()
            model, memory_mib, cpus, *_ = conn.getInfo()
            return {
                "hostname": conn.getHostname(),
                "arch": model,
                "memory_mib": memory_mib,
                "vcpus": cpus,
                "hypervisor_type": conn.getType(),
                "hypervisor_version": conn.getVersion(),
                "lib_version": conn.getLibVersion(),
            }

    def lib_version(self) -> int:
        with self.errors("read libvirt version"):
            return self.connection().getLibVersion()

    # --- domains --------------------------------------------------------------------
    def get(self, uuid: str) -> "Guest":
        """The guest with this uuid; ``GuestNotFound`` when there is none."""
        with self.errors("look up guest", uuid):
            return Guest(self, self.connection().lookupByUUIDString(uuid))

    def find(self, uuid: str) -> "Guest | None":
        try:
            return self.get(uuid)
        except GuestNotFound:
            return None

    def define(self, xml: str) -> "Guest":
        with self.errors("define guest"):
            return Guest(self, self.connection().defineXML(xml))

    def guests(self, prefix: str = "") -> list["Guest"]:
        with self.errors("list guests"):
            domains = self.connection().listAllDomains(0)
        return [Guest(self, d) for d in domains if d.name().startswith(prefix)]


    # --- secrets (cephx keys for RBD disks) ---------------------------------------------
    def secret_value(self, uuid: str) -> bytes | None:
        """The secret's value, or None when there is no such secret (or it
        has no value yet)."""
        try:
            with self.errors("read secret"):
                secret = self.connection().secretLookupByUUIDString(uuid)
                return secret.value(0)
        except LibvirtDriverError as exc:
            if exc.code in (libvirt.VIR_ERR_NO_SECRET, libvirt.VIR_ERR_INVALID_SECRET):
                return None
            raise

    def set_secret(self, xml: str, uuid: str, value: bytes) -> None:
        """Define (or redefine) the secret and set its value."""
        with self.errors("define secret"):
            secret = self.connection().secretDefineXML(xml, 0)
            secret.setValue(value, 0)

    def undefine_secret(self, uuid: str) -> None:
        """Idempotent."""
        try:
            with self.errors("undefine secret"):
                self.connection().secretLookupByUUIDString(uuid).undefine()
        except LibvirtDriverError as exc:
            if exc.code not in (libvirt.VIR_ERR_NO_SECRET, libvirt.VIR_ERR_INVALID_SECRET):
                raise


class LibvirtDriverError(DriverError):
    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code

    @property
    def not_running(self) -> bool:
        return self.code in _NOT_RUNNING

    @property
    def unsupported(self) -> bool:
        return self.code in (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_INVALID_ARG,
                             libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED)


def _call(what):
    """Method decorator: run a libvirt call under Host.errors(what)."""

    def wrap(method):
        @functools.wraps(method)
        def inner(self, *args, **kwargs):
            with self.host.errors(what, self.uuid):
                return method(self, *args, **kwargs)

        return inner

    return wrap


class Guest:
    """One libvirt domain."""

    def __init__(self, host: Host, domain):
        self.host = host
        self._domain = domain
        self.uuid = domain.UUIDString()
        self.name = domain.name()

    def __repr__(self):
        return f"<Guest {self.name}>"

    @_call("read guest state")
    def power_state(self) -> PowerState:
        state, _reason = self._domain.state()
        if state == libvirt.VIR_DOMAIN_SHUTOFF and self._domain.hasManagedSaveImage(0):
            return PowerState.SUSPENDED
        return _STATES.get(state, PowerState.NOSTATE)

    @_call("read guest state")
    def is_active(self) -> bool:
        return bool(self._domain.isActive())

    @_call("read guest state")
    def is_paused(self) -> bool:
        return self._domain.state()[0] == libvirt.VIR_DOMAIN_PAUSED

    @_call("read guest state")
    def has_managed_save(self) -> bool:
        return bool(self._domain.hasManagedSaveImage(0))

    @_call("read guest configuration")
    def xml(self, inactive: bool = False) -> str:
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0
        return self._domain.XMLDesc(flags)

    @_call("start guest")
    def create(self):
        """Start (or restore from a managed save image, if there is one)."""
        self._domain.create()

    @_call("stop guest")
    def destroy(self):
        self._domain.destroy()

    @_call("shut down guest")
    def shutdown(self):
        """Ask the guest to shut down and return at once. Flags 0 lets libvirt
        pick: the ACPI power button for QEMU without a guest agent (the test
        driver refuses the explicit ACPI flag)."""
        self._domain.shutdownFlags(0)

    @_call("reboot guest")
    def reboot(self):
        """ACPI reboot: libvirt presses the power button and, when the guest
        powers off, resets it instead of stopping it ("fake reboot")."""
        self._domain.reboot(libvirt.VIR_DOMAIN_REBOOT_ACPI_POWER_BTN)

    @_call("reset guest")
    def reset(self):
        self._domain.reset(0)

    @_call("pause guest")
    def pause(self):
        self._domain.suspend()

    @_call("unpause guest")
    def unpause(self):
        self._domain.resume()

    @_call("suspend guest")
    def managed_save(self):
        # Restore running, even if it was paused when saved.
        self._domain.managedSave(libvirt.VIR_DOMAIN_SAVE_RUNNING)

    @_call("remove saved guest state")
    def remove_managed_save(self):
        self._domain.managedSaveRemove(0)

    def undefine(self):
        """Undefine with its managed save image, snapshots and NVRAM. Not
        every driver knows every flag (the test driver has no NVRAM), so fall
        back to the ones all drivers take."""
        flags = (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
        try:
            with self.host.errors("undefine guest", self.uuid):
                self._domain.undefineFlags(flags | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        except LibvirtDriverError as exc:
            if not exc.unsupported:
                raise
            with self.host.errors("undefine guest", self.uuid):
                self._domain.undefineFlags(flags)

    @_call("attach device")
    def attach_device(self, xml: str, live: bool, config: bool = True):
        self._domain.attachDeviceFlags(xml, _affect(live, config))

    @_call("detach device")
    def detach_device(self, xml: str, live: bool, config: bool = True):
        self._domain.detachDeviceFlags(xml, _affect(live, config))

    @_call("resize guest")
    def set_memory(self, memory_kib: int, maximum: bool):
        flags = libvirt.VIR_DOMAIN_MEM_CONFIG | (libvirt.VIR_DOMAIN_MEM_MAXIMUM if maximum else 0)
        self._domain.setMemoryFlags(memory_kib, flags)

    @_call("resize guest")
    def set_vcpus(self, vcpus: int, maximum: bool):
        flags = libvirt.VIR_DOMAIN_VCPU_CONFIG | (libvirt.VIR_DOMAIN_VCPU_MAXIMUM if maximum else 0)
        self._domain.setVcpusFlags(vcpus, flags)


def _affect(live: bool, config: bool) -> int:
    flags = 0
    if live:
        flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
    if config:
        flags |= libvirt.VIR_DOMAIN_AFFECT_CONFIG
    return flags

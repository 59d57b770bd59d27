"""RBD storage: images, instance root disks and volumes on Ceph.

The only module that imports ``rados`` and ``rbd`` (Debian's python3-rados
and python3-rbd, linked into the virtualenv by the Makefile); both can be
passed in instead. Layout, Cinder's and Nova's names::

    images/<image id>@snap              the image, raw, with a protected snapshot
    disks/<instance uuid>_disk          clone of images/<image id>@snap, grown to the flavor
    volumes/volume-<id>                 a volume (empty, or a clone of an image or of a snapshot)
    volumes/volume-<id>@snapshot-<id>   a volume snapshot, protected so that it can be cloned
    volumes/dreamcompute.snapshots      rados object whose omap maps snapshot id -> volume id

Images are stored raw whatever was uploaded (a qcow2 is converted once, on
upload), because only raw RBD images can be cloned: the StoredImage says
``raw``, and its size and checksums are those of the raw bytes that
``read_image`` returns. Glance lets an image be deleted while instances and
volumes are clones of it: such an image goes to the RBD trash (its clones
keep reading from it) and is purged when its last clone goes away.
"""

import configparser
import contextlib
import hashlib
import json
import logging
import tempfile
import threading
from pathlib import Path

from .base import Capacity, StorageBusy, StorageDriver, StorageError, StorageNotFound, StoredImage
from .file import GiB, _check_id, _run, check_format, qemu_img_info

logger = logging.getLogger(__name__)

IMAGE_SNAP = "snap"
CHUNK = 4 << 20  # RBD's default object size
ZEROS = bytes(CHUNK)
SNAPSHOT_INDEX = "dreamcompute.snapshots"
TMP = ".tmp"  # suffix of images being written (removed on failure, or by a retry)
_SNAP_OPS = threading.Lock()  # see RbdStorage._snap_create


class _Hashes:
    def __init__(self):
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha512 = hashlib.sha512()
        self.size = 0

    def update(self, block):
        self.size += len(block)
        self.md5.update(block)
        self.sha512.update(block)

    def stored(self, virtual_size):
        return StoredImage(size=self.size, checksum=self.md5.hexdigest(), os_hash_value=self.sha512.hexdigest(),
                           disk_format="raw", virtual_size=virtual_size)


class _Connection:
    """A process's connection to one cluster as one user, shared by drivers."""

    def __init__(self, key):
        self.key = key
        self.cluster = None
        self.ioctxs = {}  # pool -> its one IoCtx, open until the last driver closes
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)
        self.users = 0  # operations (and downloads) in flight
        self.drivers = 0  # RbdStorage objects using it


_CONNECTIONS = {}
_REGISTRY_LOCK = threading.Lock()


class RbdStorage(StorageDriver):
    name = "rbd"

    def __init__(self, conf, user="dreamcompute", *, keyring=None, pool_images="images", pool_volumes="volumes",
                 pool_disks="disks", secret_uuid=None, spool_dir=None, connect_timeout=30, rados=None, rbd=None):
        if rados is None or rbd is None:
            import rados as rados_module
            import rbd as rbd_module

            rados, rbd = rados or rados_module, rbd or rbd_module
        self.rados, self.rbd = rados, rbd
        self.conf = str(conf) if conf else None
        self.user = user
        self.keyring = str(keyring) if keyring else None
        self.pool_images, self.pool_volumes, self.pool_disks = pool_images, pool_volumes, pool_disks
        self.secret_uuid = secret_uuid
        self.spool_dir = spool_dir
        self.connect_timeout = connect_timeout
        # Drivers of one process on the same cluster, user and keyring share
        # one connection (see _Connection).
        with _REGISTRY_LOCK:
            key = (id(self.rados), self.conf, self.user, self.keyring)
            self._shared = _CONNECTIONS.get(key)
            if self._shared is None:
                self._shared = _CONNECTIONS[key] = _Connection(key)
            self._shared.drivers += 1
        self._closed = False
        self._mon_hosts = None

    # --- connection and error mapping -------------------------------------------------
    # One rados connection per process (per cluster and user) and one IoCtx
    # per pool, made on first use and shared by every thread and every
    # driver object (librados and librbd are thread-safe; librbd dups the
    # IoCtx for each image it opens). They are closed only when the last
    # driver closes, once no operation is in flight, so that an image is
    # always closed before its IoCtx and the IoCtxs before the connection.
    # NOT a fix for the librados abort seen under load ("terminate called
    # after throwing an instance of 'std::system_error' what(): Invalid
    # argument", from librados' io_context_pool thread, an RBD().clone in
    # flight in 4 of 5 cases): tests/storage/rbd_stress.py still aborts with
    # this design, after 1-4 minutes (see bench/RESULTS.md, Storage).
    def _connected(self):
        """The connection; the caller holds the lock."""
        shared = self._shared
        if shared.cluster is None:
            options = {}
            if self.keyring:
                options["keyring"] = self.keyring
            # No rados_mon_op_timeout: a pool op (snapshot create/remove)
            # that times out in librados may still complete later. connect()
            # is bounded by client_mount_timeout; the tasks by their own limits.
            cluster = self.rados.Rados(conffile=self.conf or "", rados_id=self.user, conf=options)
            try:
                cluster.connect(timeout=self.connect_timeout)
            except self.rados.Error as exc:
                cluster.shutdown()
                raise StorageError(f"Cannot connect to the Ceph cluster as client.{self.user}: {exc}") from None
            shared.cluster = cluster
        return shared.cluster

    @property
    def cluster(self):
        """The process's one connection to the cluster, made on first use."""
        with self._shared.lock:
            return self._connected()

    @contextlib.contextmanager
    def _in_use(self):
        """Marks an operation in flight: the last close() waits for it."""
        shared = self._shared
        with shared.lock:
            if self._closed:
                raise StorageError("This Ceph driver was closed.")
            shared.users += 1
        try:
            yield
        finally:
            with shared.lock:
                shared.users -= 1
                if not shared.users:
                    shared.idle.notify_all()

    def _pool(self, pool):
        """The pool's IoCtx, opened once."""
        shared = self._shared
        with shared.lock:
            ioctx = shared.ioctxs.get(pool)
            if ioctx is None:
                cluster = self._connected()
                try:
                    ioctx = cluster.open_ioctx(pool)
                except self.rados.ObjectNotFound:
                    raise StorageError(f"The Ceph pool {pool!r} does not exist.") from None
                except self.rados.Error as exc:
                    raise StorageError(f"Cannot open the Ceph pool {pool!r}: {exc}") from None
                shared.ioctxs[pool] = ioctx
            return ioctx

    def close(self, timeout=60):
        """Detach this driver. The last one waits for the operations in
        flight (an unfinished download holds its image open), then closes
        the IoCtxs, then the connection. If operations are still in flight
        after ``timeout`` seconds the connection is left open: shutting it
        down under an open image aborts the process."""
        shared = self._shared
        with _REGISTRY_LOCK, shared.lock:
            if self._closed:
                return
            self._closed = True
            shared.drivers -= 1
            if shared.drivers:
                return
            if not shared.idle.wait_for(lambda: shared.users == 0, timeout):
                logger.warning("Ceph connection left open: %d operation(s) still in flight", shared.users)
                return
            for ioctx in shared.ioctxs.values():
                ioctx.close()
            shared.ioctxs.clear()
            if shared.cluster is not None:
                shared.cluster.shutdown()
                shared.cluster = None
            _CONNECTIONS.pop(shared.key, None)

    @contextlib.contextmanager
    def _errors(self, what):
        """librados/librbd errors as the contract's: not found, busy, other."""
        try:
            yield
        except StorageError:
            raise
        except self.rbd.ImageNotFound:
            raise StorageNotFound(f"{what} does not exist in Ceph.") from None
        except (self.rbd.ImageBusy, self.rbd.ImageHasSnapshots) as exc:
            raise StorageBusy(f"{what} is in use ({exc}).") from None
        except (self.rbd.Error, self.rados.Error) as exc:
            raise StorageError(f"Ceph failed on {what}: {exc}") from None

    @contextlib.contextmanager
    def _ioctx(self, pool):
        """The pool's shared IoCtx, for the length of one operation. Never
        close it: it belongs to the driver."""
        with self._in_use():
            yield self._pool(pool)

    def _exists(self, ioctx, name):
        try:
            self.rbd.Image(ioctx, name, read_only=True).close()
        except self.rbd.ImageNotFound:
            return False
        return True

    # --- names ----------------------------------------------------------------------------
    @staticmethod
    def image_name(image_id):
        return _check_id(image_id, "image id")

    @staticmethod
    def disk_name(instance_uuid):
        return f"{_check_id(instance_uuid, 'instance uuid')}_disk"

    @staticmethod
    def volume_name(volume_id):
        return f"volume-{_check_id(volume_id, 'volume id')}"

    @staticmethod
    def snapshot_name(snapshot_id):
        return f"snapshot-{_check_id(snapshot_id, 'snapshot id')}"

    # --- shared steps ---------------------------------------------------------------------
    def _remove(self, ioctx, name, what):
        """Remove an image that has no snapshots left; idempotent. Returns
        the parent it was a clone of (pool, image id) or None, so that a
        trashed parent can be purged."""
        try:
            with self.rbd.Image(ioctx, name, read_only=True) as image:
                parent = self._parent_spec(image)
        except self.rbd.ImageNotFound:
            return None
        with self._errors(what):
            try:
                self.rbd.RBD().remove(ioctx, name)
            except self.rbd.ImageNotFound:
                return None
            except self.rbd.ImageBusy:
                raise StorageBusy(f"{what} is open elsewhere (attached to a running guest?).") from None
        return parent

    def _parent_spec(self, image):
        """pool_name, image_name, snap_name and image_id of the parent, or None."""
        try:
            spec = image.get_parent_image_spec()
            spec["image_id"] = image.parent_id()
        except self.rbd.ImageNotFound:
            return None
        return spec

    def _purge_trashed_parent(self, spec):
        """A deleted image waits in the trash while clones use it: remove
        it when the last one is gone."""
        if not spec:
            return
        with self._ioctx(spec["pool_name"]) as ioctx:
            try:
                self.rbd.RBD().trash_get(ioctx, spec["image_id"])
            except self.rbd.ImageNotFound:
                return  # not deleted
            try:
                with self.rbd.Image(ioctx, image_id=spec["image_id"]) as image:
                    for snap in image.list_snaps():
                        image.set_snap(snap["name"])
                        if list(image.list_children2()):
                            return
                        image.set_snap(None)
                        if image.is_protected_snap(snap["name"]):
                            image.unprotect_snap(snap["name"])
                        self._snap_remove(image, snap["name"])
                self.rbd.RBD().trash_remove(ioctx, spec["image_id"])
            except self.rbd.ImageNotFound:
                return
            except self.rbd.Error as exc:
                logger.warning("cannot purge trashed image %s: %s", spec["image_id"], exc)

    def _remove_unused_snaps(self, image, keep=lambda name: False):
        """Snapshots nobody depends on (left by an interrupted operation) go."""
        for snap in image.list_snaps():
            name = snap["name"]
            if keep(name):
                continue
            self._remove_snap(image, name, what=f"snapshot {name}")

    def _children(self, image, snap):
        image.set_snap(snap)
        try:
            return [f"{c['pool']}/{c['image']}" for c in image.list_children2()]
        finally:
            image.set_snap(None)

    def _snap_create(self, image, name):
        """Snapshots are self-managed: each create (and remove) is a pool
        op answered by the monitor. Two of them in flight at once on one
        client sometimes completed a waiter that had already returned, and
        librados aborted the process from its io_context thread
        (``std::system_error: Invalid argument``, a lock on a freed mutex),
        so they run one at a time per process; they cost a paxos round each
        (~50 ms), serialised by the monitor anyway. No quiesce: nothing in
        the guest listens for it, and a snapshot is crash-consistent."""
        with _SNAP_OPS:
            image.create_snap(name, self.rbd.RBD_SNAP_CREATE_SKIP_QUIESCE)

    def _snap_remove(self, image, name):
        with _SNAP_OPS:
            image.remove_snap(name)

    def _remove_snap(self, image, snap, what):
        children = self._children(image, snap)
        if children:
            raise StorageBusy(f"{what} has {len(children)} dependent clone(s) ({', '.join(children)}): flatten "
                              "or delete them first.")
        if image.is_protected_snap(snap):
            image.unprotect_snap(snap)
        self._snap_remove(image, snap)

    def _clone(self, src_pool, src_name, snap, dst_pool, dst_name, size, what, *, grow_only=True):
        """COW clone of ``src_pool/src_name@snap``, grown to ``size``;
        nothing left on failure."""
        with self._ioctx(src_pool) as src, self._ioctx(dst_pool) as dst, self._errors(what):
            try:
                with self.rbd.Image(src, src_name, snapshot=snap, read_only=True) as parent:
                    parent_size = parent.size()
            except self.rbd.ImageNotFound:
                raise StorageNotFound(f"{what}: {src_pool}/{src_name}@{snap} does not exist.") from None
            if size < parent_size and not grow_only:
                raise StorageError(f"{what}: {size} bytes is smaller than the source's {parent_size} bytes.")
            self.rbd.RBD().clone(src, src_name, snap, dst, dst_name, features=self._features())
            try:
                if size > parent_size:
                    with self.rbd.Image(dst, dst_name) as child:
                        child.resize(size)
            except BaseException:
                self.rbd.RBD().remove(dst, dst_name)
                raise

    def _features(self):
        # Layering, and deep-flatten so a flattened clone's own snapshots let
        # go of the parent too.  Not exclusive-lock (nor the object map that
        # needs it): with it librbd 16.2 aborts the process now and then
        # ("std::system_error: Invalid argument" in its io_context thread)
        # while clones are made from several threads; each image has one
        # writer here (its QEMU), so the lock protects nothing we need.
        return self.rbd.RBD_FEATURE_LAYERING | self.rbd.RBD_FEATURE_DEEP_FLATTEN

    def _copy_to_image(self, src_pool, src_name, image_id, what, *, hashed=True):
        """A self-contained image from the current content of an RBD image
        (a disk or a volume, possibly in use): snapshot it, clone the
        snapshot into the images pool, flatten, drop the snapshot. Then the
        image gets its own protected ``snap``."""
        name = self.image_name(image_id)
        tmp = name + TMP
        temp_snap = f"to-image-{image_id}"
        with self._ioctx(src_pool) as src, self._ioctx(self.pool_images) as images, self._errors(what):
            if self._exists(images, name):
                raise StorageError(f"Image {image_id} already has data in the store.")
            self._discard_image(images, tmp)
            try:
                with self.rbd.Image(src, src_name) as source:
                    if temp_snap in {s["name"] for s in source.list_snaps()}:
                        self._remove_snap(source, temp_snap, what)
                    self._snap_create(source, temp_snap)
                    try:
                        source.protect_snap(temp_snap)
                        self.rbd.RBD().clone(src, src_name, temp_snap, images, tmp, features=self._features())
                        try:
                            with self.rbd.Image(images, tmp) as copy:
                                copy.flatten()
                        except BaseException:
                            self._discard_image(images, tmp)
                            raise
                    finally:
                        self._remove_snap(source, temp_snap, what)
            except self.rbd.ImageNotFound:
                raise StorageNotFound(f"{what}: {src_pool}/{src_name} does not exist.") from None
            try:
                return self._seal_image(images, tmp, name, hashed=hashed)
            except BaseException:
                self._discard_image(images, tmp)
                raise

    def _seal_image(self, images, tmp, name, *, hashed=True):
        """Hash the image's bytes, give it a protected ``snap`` and its name.
        Unhashed (``hashed=False``), the image has no checksums, as Glance's
        images from Nova's RBD direct snapshots have none: hashing reads
        every byte of the virtual size (an 80 GB root disk: minutes of md5
        and sha512 over zeros)."""
        hashes = _Hashes()
        with self.rbd.Image(images, tmp) as image:
            size = image.size()
            allocated = self._allocated(image, size) if hashed else []
            offset = 0 if hashed else size
            while offset < size:
                length = min(CHUNK, size - offset)
                if any(start < offset + length and offset < end for start, end in allocated):
                    hashes.update(image.read(offset, length))
                else:
                    hashes.update(ZEROS[:length])
                offset += length
            self._snap_create(image, IMAGE_SNAP)
            image.protect_snap(IMAGE_SNAP)
        self.rbd.RBD().rename(images, tmp, name)
        if not hashed:
            return StoredImage(size=size, checksum=None, os_hash_value=None, disk_format="raw", virtual_size=size)
        return hashes.stored(size)

    def _allocated(self, image, size):
        """Extents that hold data; holes are hashed as zeros without reading."""
        extents = []
        image.diff_iterate(0, size, None, lambda offset, length, exists: extents.append(
            (offset, offset + length)) if exists else None, whole_object=True)
        return extents

    def _discard_image(self, ioctx, name):
        """Remove a half-made image (and its snapshots); idempotent."""
        try:
            with self.rbd.Image(ioctx, name) as image:
                for snap in image.list_snaps():
                    if image.is_protected_snap(snap["name"]):
                        image.unprotect_snap(snap["name"])
                    self._snap_remove(image, snap["name"])
            self.rbd.RBD().remove(ioctx, name)
        except self.rbd.ImageNotFound:
            pass

    # --- Images ---------------------------------------------------------------------------
    def store_image(self, image_id, chunks, declared_format, max_size=None):
        name = self.image_name(image_id)
        with tempfile.TemporaryDirectory(prefix="dc-rbd-upload-", dir=self.spool_dir) as folder:
            upload = Path(folder) / "upload"
            size = 0
            with open(upload, "wb") as out:
                # The iterator's own errors (the client went away, the caller's
                # cap) pass through unchanged; only our writes become StorageError.
                for chunk in chunks:
                    if not chunk:
                        continue
                    size += len(chunk)
                    if max_size is not None and size > max_size:
                        raise StorageError(f"Image data is larger than {max_size} bytes.")
                    try:
                        out.write(chunk)
                    except OSError as exc:
                        raise StorageError(f"Spooling the image failed: {exc.strerror or exc}.") from None
            info = qemu_img_info(upload)
            check_format(info, declared_format)
            raw = upload
            if info["format"] != "raw":
                # Converted once, here: only a raw RBD image can be cloned.
                raw = Path(folder) / "raw"
                _run(["qemu-img", "convert", "-q", "-f", info["format"], "-O", "raw", str(upload), str(raw)],
                     what="qemu-img convert")
                upload.unlink()
            return self._import_raw(raw, name)

    def _import_raw(self, path, name):
        tmp = name + TMP
        with self._ioctx(self.pool_images) as images, self._errors(f"image {name}"):
            if self._exists(images, name):
                raise StorageError(f"Image {name} already has data in the store.")
            self._discard_image(images, tmp)  # left by an interrupted upload
            size = path.stat().st_size
            hashes = _Hashes()
            self.rbd.RBD().create(images, tmp, size, old_format=False, features=self._features())
            try:
                with self.rbd.Image(images, tmp) as image, open(path, "rb") as source:
                    offset = 0
                    while block := source.read(CHUNK):
                        hashes.update(block)
                        if block != ZEROS[:len(block)]:  # thin: holes stay unallocated
                            image.write(block, offset)
                        offset += len(block)
                    self._snap_create(image, IMAGE_SNAP)
                    image.protect_snap(IMAGE_SNAP)
                self.rbd.RBD().rename(images, tmp, name)
            except BaseException:
                self._discard_image(images, tmp)
                raise
        return hashes.stored(size)

    def read_image(self, image_id, chunk_size=1 << 20):
        name = self.image_name(image_id)
        # Checked now, so that missing data is an error before a response
        # starts; opened by the first read, so that a download never started
        # holds nothing open (an unstarted generator never runs its finally).
        if not self.has_image(image_id):
            raise StorageError(f"Image {image_id} has no data in the store.")

        def chunks():
            with self._ioctx(self.pool_images) as images, self._errors(f"image {image_id}"):
                try:
                    image = self.rbd.Image(images, name, snapshot=IMAGE_SNAP, read_only=True)
                except self.rbd.ImageNotFound:
                    raise StorageError(f"Image {image_id} has no data in the store.") from None
                with image:
                    size = image.size()
                    offset = 0
                    while offset < size:
                        block = image.read(offset, min(chunk_size, size - offset))
                        offset += len(block)
                        yield block

        return chunks()

    def delete_image(self, image_id):
        """Idempotent. An image that clones still use goes to the trash
        (its clones keep working) and is purged with its last clone."""
        name = self.image_name(image_id)
        with self._ioctx(self.pool_images) as images, self._errors(f"image {image_id}"):
            self._discard_image(images, name + TMP)
            try:
                with self.rbd.Image(images, name) as image:
                    for snap in image.list_snaps():
                        if self._children(image, snap["name"]):
                            in_use = True
                            break
                        if image.is_protected_snap(snap["name"]):
                            image.unprotect_snap(snap["name"])
                        self._snap_remove(image, snap["name"])
                    else:
                        in_use = False
            except self.rbd.ImageNotFound:
                return
            if in_use:
                self.rbd.RBD().trash_move(images, name, 0)
            else:
                self.rbd.RBD().remove(images, name)

    def has_image(self, image_id):
        with self._ioctx(self.pool_images) as images:
            return self._exists(images, self.image_name(image_id))

    # --- Instance root disks --------------------------------------------------------------
    def _disk_spec(self, target, name, serial=None):
        from compute.drivers.base import DiskSpec

        auth = self.cephx
        return DiskSpec(target=target, source_type="rbd", name=name, format="raw", hosts=self.mon_hosts(),
                        auth_username=self.user if auth else None,
                        auth_secret_uuid=self.secret_uuid if auth else None, serial=serial)

    def create_instance_disk(self, instance_uuid, image_id, size_gb):
        """Idempotent: an existing disk is kept (and grown to ``size_gb``)."""
        name = self.disk_name(instance_uuid)
        spec = self._disk_spec("vda", f"{self.pool_disks}/{name}")
        with self._ioctx(self.pool_disks) as disks:
            exists = self._exists(disks, name)
        if exists:
            self.resize_instance_disk(instance_uuid, size_gb)
            return spec
        # Never smaller than the image: a flavor with disk 0 means "the image's size".
        try:
            self._clone(self.pool_images, self.image_name(image_id), IMAGE_SNAP, self.pool_disks, name,
                        int(size_gb) * GiB, f"instance {instance_uuid}'s disk")
        except StorageNotFound:
            raise StorageError(f"Image {image_id} has no data in the store.") from None
        return spec

    def resize_instance_disk(self, instance_uuid, size_gb):
        name = self.disk_name(instance_uuid)
        self._grow(self.pool_disks, name, int(size_gb) * GiB, f"instance {instance_uuid}'s disk")

    def _grow(self, pool, name, size, what):
        with self._ioctx(pool) as ioctx, self._errors(what):
            try:
                with self.rbd.Image(ioctx, name) as image:
                    if size > image.size():
                        image.resize(size)
            except self.rbd.ImageNotFound:
                raise StorageNotFound(f"{what} does not exist.") from None

    def delete_instance_disk(self, instance_uuid):
        name = self.disk_name(instance_uuid)
        what = f"instance {instance_uuid}'s disk"
        with self._ioctx(self.pool_disks) as disks, self._errors(what):
            try:
                with self.rbd.Image(disks, name) as image:
                    self._remove_unused_snaps(image)
            except self.rbd.ImageNotFound:
                return
            parent = self._remove(disks, name, what)
        self._purge_trashed_parent(parent)

    def snapshot_instance_disk(self, instance_uuid, image_id):
        name = self.disk_name(instance_uuid)
        try:
            return self._copy_to_image(self.pool_disks, name, image_id, f"instance {instance_uuid}'s disk",
                                       hashed=False)
        except StorageNotFound:
            raise StorageError(f"Instance {instance_uuid} has no disk.") from None

    def list_instance_disks(self):
        with self._ioctx(self.pool_disks) as disks, self._errors("the disks pool"):
            names = self.rbd.RBD().list(disks)
        return sorted(name[:-5] for name in names if name.endswith("_disk"))

    # --- Volumes --------------------------------------------------------------------------
    def _snapshot_index(self, ioctx, snapshot_id, volume_id=None, *, remove=False):
        """The snapshot id -> volume id map (create_volume_from_snapshot gets
        only the snapshot's id)."""
        if remove:
            with self.rados.WriteOpCtx() as op:
                ioctx.remove_omap_keys(op, (snapshot_id,))
                try:
                    ioctx.operate_write_op(op, SNAPSHOT_INDEX)
                except self.rados.ObjectNotFound:
                    pass
            return None
        if volume_id is not None:
            with self.rados.WriteOpCtx() as op:
                ioctx.set_omap(op, (snapshot_id,), (volume_id.encode(),))
                ioctx.operate_write_op(op, SNAPSHOT_INDEX)
            return volume_id
        with self.rados.ReadOpCtx() as op:
            values, _ = ioctx.get_omap_vals_by_keys(op, (snapshot_id,))
            try:
                ioctx.operate_read_op(op, SNAPSHOT_INDEX)
            except self.rados.ObjectNotFound:
                return None
            found = dict(values).get(snapshot_id)
        return found.decode() if found else None

    def _ensure_created(self, volume_id, size_gb):
        """A create that is retried finds the volume there: keep it, grown."""
        name = self.volume_name(volume_id)
        with self._ioctx(self.pool_volumes) as volumes:
            if not self._exists(volumes, name):
                return False
        self.extend_volume(volume_id, size_gb)
        return True

    def create_volume(self, volume_id, size_gb):
        name = self.volume_name(volume_id)
        if self._ensure_created(volume_id, size_gb):
            return
        with self._ioctx(self.pool_volumes) as volumes, self._errors(f"volume {volume_id}"):
            self.rbd.RBD().create(volumes, name, int(size_gb) * GiB, old_format=False, features=self._features())

    def create_volume_from_image(self, volume_id, image_id, size_gb):
        name = self.volume_name(volume_id)
        if self._ensure_created(volume_id, size_gb):
            return
        self._clone(self.pool_images, self.image_name(image_id), IMAGE_SNAP, self.pool_volumes, name,
                    int(size_gb) * GiB, f"volume {volume_id} from image {image_id}", grow_only=False)

    def create_volume_from_snapshot(self, volume_id, snapshot_id, size_gb):
        name = self.volume_name(volume_id)
        snap = self.snapshot_name(snapshot_id)
        if self._ensure_created(volume_id, size_gb):
            return
        with self._ioctx(self.pool_volumes) as volumes:
            source = self._snapshot_index(volumes, snapshot_id)
        if source is None:
            raise StorageNotFound(f"Volume snapshot {snapshot_id} does not exist in Ceph.")
        self._clone(self.pool_volumes, self.volume_name(source), snap, self.pool_volumes, name,
                    int(size_gb) * GiB, f"volume {volume_id} from snapshot {snapshot_id}", grow_only=False)

    def clone_volume(self, volume_id, source_volume_id, size_gb):
        """A full, independent copy taken at one point in time: a temporary
        snapshot of the source, cloned and flattened, then dropped. So the
        source can still be deleted (Cinder's COW clone of a volume would
        leave it with a hidden snapshot that blocks its deletion)."""
        name = self.volume_name(volume_id)
        source = self.volume_name(source_volume_id)
        if self._ensure_created(volume_id, size_gb):
            return
        what = f"volume {volume_id} from volume {source_volume_id}"
        temp_snap = f"clone-{volume_id}"
        with self._ioctx(self.pool_volumes) as volumes, self._errors(what):
            try:
                with self.rbd.Image(volumes, source) as image:
                    if temp_snap in {s["name"] for s in image.list_snaps()}:
                        self._remove_snap(image, temp_snap, what)
                    self._snap_create(image, temp_snap)
                    try:
                        image.protect_snap(temp_snap)
                        self._clone(self.pool_volumes, source, temp_snap, self.pool_volumes, name,
                                    int(size_gb) * GiB, what, grow_only=False)
                        try:
                            with self.rbd.Image(volumes, name) as copy:
                                copy.flatten()
                        except BaseException:
                            self.rbd.RBD().remove(volumes, name)
                            raise
                    finally:
                        self._remove_snap(image, temp_snap, what)
            except self.rbd.ImageNotFound:
                raise StorageNotFound(f"Volume {source_volume_id} does not exist in Ceph.") from None

    def extend_volume(self, volume_id, size_gb):
        self._grow(self.pool_volumes, self.volume_name(volume_id), int(size_gb) * GiB, f"volume {volume_id}")

    def delete_volume(self, volume_id):
        name = self.volume_name(volume_id)
        what = f"volume {volume_id}"
        with self._ioctx(self.pool_volumes) as volumes, self._errors(what):
            try:
                with self.rbd.Image(volumes, name) as image:
                    snapshots = [s["name"][9:] for s in image.list_snaps() if s["name"].startswith("snapshot-")]
                    if snapshots:
                        raise StorageBusy(f"Volume {volume_id} has {len(snapshots)} snapshot(s) "
                                          f"({', '.join(snapshots)}): delete them first.")
                    # Snapshots left by an interrupted clone or upload, unless still needed.
                    self._remove_unused_snaps(image)
            except self.rbd.ImageNotFound:
                return
            parent = self._remove(volumes, name, what)
        self._purge_trashed_parent(parent)

    def create_volume_snapshot(self, volume_id, snapshot_id):
        name = self.volume_name(volume_id)
        snap = self.snapshot_name(snapshot_id)
        what = f"snapshot {snapshot_id} of volume {volume_id}"
        with self._ioctx(self.pool_volumes) as volumes, self._errors(what):
            owner = self._snapshot_index(volumes, snapshot_id)
            if owner is not None and owner != volume_id:
                raise StorageError(f"Snapshot {snapshot_id} already belongs to volume {owner}.")
            try:
                with self.rbd.Image(volumes, name) as image:
                    if snap in {s["name"] for s in image.list_snaps()}:
                        if not image.is_protected_snap(snap):
                            image.protect_snap(snap)
                        self._snapshot_index(volumes, snapshot_id, volume_id)
                        return
                    self._snapshot_index(volumes, snapshot_id, volume_id)
                    try:
                        self._snap_create(image, snap)
                        image.protect_snap(snap)
                    except BaseException:
                        with contextlib.suppress(self.rbd.Error):
                            if snap in {s["name"] for s in image.list_snaps()}:
                                self._remove_snap(image, snap, what)
                        self._snapshot_index(volumes, snapshot_id, remove=True)
                        raise
            except self.rbd.ImageNotFound:
                raise StorageNotFound(f"Volume {volume_id} does not exist in Ceph.") from None

    def delete_volume_snapshot(self, volume_id, snapshot_id):
        name = self.volume_name(volume_id)
        snap = self.snapshot_name(snapshot_id)
        what = f"Snapshot {snapshot_id} of volume {volume_id}"
        with self._ioctx(self.pool_volumes) as volumes, self._errors(what):
            try:
                with self.rbd.Image(volumes, name) as image:
                    if snap in {s["name"] for s in image.list_snaps()}:
                        self._remove_snap(image, snap, what)
            except self.rbd.ImageNotFound:
                pass
            self._snapshot_index(volumes, snapshot_id, remove=True)

    def flatten_volume(self, volume_id):
        what = f"volume {volume_id}"
        with self._ioctx(self.pool_volumes) as volumes, self._errors(what):
            try:
                with self.rbd.Image(volumes, self.volume_name(volume_id)) as image:
                    parent = self._parent_spec(image)
                    if parent is None:
                        return
                    image.flatten()
            except self.rbd.ImageNotFound:
                raise StorageNotFound(f"Volume {volume_id} does not exist in Ceph.") from None
        self._purge_trashed_parent(parent)

    def _open_volume(self, volumes, volume_id):
        try:
            return self.rbd.Image(volumes, self.volume_name(volume_id), read_only=True)
        except self.rbd.ImageNotFound:
            raise StorageNotFound(f"Volume {volume_id} does not exist in Ceph.") from None

    def volume_parent(self, volume_id):
        with self._ioctx(self.pool_volumes) as volumes, self._errors(f"volume {volume_id}"), \
                self._open_volume(volumes, volume_id) as image:
            spec = self._parent_spec(image)
        if spec is None:
            return None
        return f"{spec['pool_name']}/{spec['image_name']}@{spec['snap_name']}"

    def volume_size(self, volume_id):
        with self._ioctx(self.pool_volumes) as volumes, self._errors(f"volume {volume_id}"), \
                self._open_volume(volumes, volume_id) as image:
            return image.size()

    def volume_to_image(self, volume_id, image_id, disk_format="raw"):
        """Stored raw whatever ``disk_format`` asks (only raw is cloneable):
        the StoredImage says so."""
        return self._copy_to_image(self.pool_volumes, self.volume_name(volume_id), image_id,
                                   f"volume {volume_id}")

    def volume_disk(self, volume_id, target):
        name = self.volume_name(volume_id)
        with self._ioctx(self.pool_volumes) as volumes:
            if not self._exists(volumes, name):
                raise StorageNotFound(f"Volume {volume_id} does not exist in Ceph.")
        return self._disk_spec(target, f"{self.pool_volumes}/{name}", serial=volume_id)

    def list_volumes(self):
        with self._ioctx(self.pool_volumes) as volumes, self._errors("the volumes pool"):
            names = self.rbd.RBD().list(volumes)
        return sorted(name[7:] for name in names if name.startswith("volume-") and not name.endswith(TMP))

    def list_volume_snapshots(self, volume_id):
        with self._ioctx(self.pool_volumes) as volumes, self._errors(f"volume {volume_id}"), \
                self._open_volume(volumes, volume_id) as image:
            return sorted(s["name"][9:] for s in image.list_snaps() if s["name"].startswith("snapshot-"))

    def capacity(self):
        """The cluster's raw figures (the mgr reports them to the mon)."""
        with self._in_use(), self._errors("the cluster's capacity"):
            stats = self.cluster.get_cluster_stats()
        return Capacity(backend=self.name, total=stats["kb"] * 1024, free=stats["kb_avail"] * 1024,
                        used=stats["kb_used"] * 1024)

    # --- what libvirt needs ---------------------------------------------------------------
    @property
    def cephx(self):
        """True when clients must authenticate (then disks carry a secret)."""
        with self._in_use():
            return "cephx" in (self.cluster.conf_get("auth_client_required") or "")

    def cephx_key(self):
        """The cephx key (base64, as a keyring holds it) of ``client.<user>``,
        for the libvirt secret QEMU authenticates with: from ``key`` in the
        configuration, else from the keyring (CEPH_KEYRING, or the
        ceph.conf's ``keyring`` search list). StorageError when there is none."""
        with self._in_use():
            cluster = self.cluster
            key = (cluster.conf_get("key") or "").strip()
            if key:
                return key
            paths = [self.keyring] if self.keyring else \
                [p.strip() for p in (cluster.conf_get("keyring") or "").split(",") if p.strip()]
        section = f"client.{self.user}"
        for path in paths:
            try:
                parser = configparser.ConfigParser()
                parser.read_string(Path(path).read_text())
            except (OSError, configparser.Error):
                continue
            if parser.has_option(section, "key"):
                return parser.get(section, "key").strip()
        raise StorageError(f"No cephx key for {section} in {', '.join(paths) or 'the configuration'}.")

    def mon_hosts(self):
        """((host, port), …) of the monitors, for QEMU: their v1 address
        where they have one (QEMU's ``host:port`` is a legacy address)."""
        if self._mon_hosts is None:
            with self._in_use(), self._errors("the monitor map"):
                ret, out, err = self.cluster.mon_command(json.dumps({"prefix": "mon dump", "format": "json"}), b"")
            if ret != 0:
                raise StorageError(f"Ceph refused 'mon dump': {err}")
            hosts = []
            for mon in json.loads(out)["mons"]:
                addrs = {a["type"]: a["addr"] for a in mon.get("public_addrs", {}).get("addrvec", [])}
                addr = addrs.get("v1") or addrs.get("v2") or mon["addr"].split("/")[0]
                host, _, port = addr.rpartition(":")
                hosts.append((host.strip("[]"), port))
            self._mon_hosts = tuple(hosts)
        return self._mon_hosts

    def rbd_uri(self, pool, name):
        """``rbd:pool/name:id=…:conf=…`` for qemu-img."""
        uri = f"rbd:{pool}/{name}:id={self.user}"
        if self.conf:
            uri += f":conf={self.conf}"
        if self.keyring:
            uri += f":keyring={self.keyring}"
        return uri

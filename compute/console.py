"""Serial console logs.

The guest's serial console is written by QEMU to a file under
INSTANCES_ROOT on its host. The web process reads it there, which holds for
the all-in-one host and for hosts sharing that folder; a multi-host
deployment without a shared folder needs a console proxy on each host
(not built yet).
"""

from pathlib import Path

from django.conf import settings

MAX_BYTES = 1 << 20


def console_path(instance):
    return Path(settings.INSTANCES_ROOT) / instance.pk / "console.log"


def console_output(instance, length=None):
    """The last ``length`` lines of the console (all when None), without
    the serial line's carriage returns."""
    path = console_path(instance)
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - MAX_BYTES))
            data = handle.read()
    except (FileNotFoundError, PermissionError):
        return ""
    text = data.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "")
    if length is not None:
        lines = text.splitlines()
        text = "\n".join(lines[-length:]) + ("\n" if lines and length else "") if length else ""
    return text

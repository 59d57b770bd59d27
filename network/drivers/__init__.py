"""Dataplane drivers, chosen by the ``NETWORK_DRIVER`` setting (``none`` or ``netns``)."""

from pathlib import Path


def get_driver(name: str | None = None):
    """Return the configured driver instance."""
    from django.conf import settings

    name = name or getattr(settings, "NETWORK_DRIVER", "none")
    if name == "none":
        from network.drivers.none import NoneDriver

        return NoneDriver()
    if name == "netns":
        from network.drivers.netns import NetnsDriver

        return NetnsDriver(state_dir=Path(settings.NETWORK_STATE_DIR), host_netns=settings.NETWORK_HOST_NETNS or None)
    raise ValueError(f"unknown NETWORK_DRIVER: {name!r}")

"""The libvirt compute driver: ``driver.LibvirtDriver`` (policy),
``guest`` (the thin wrapper, the only module importing libvirt) and
``config`` (domain XML as objects)."""

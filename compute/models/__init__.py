"""Compute's models, one module per resource."""

from .consoles import ConsoleToken
from .flavors import Flavor, FlavorAccess
from .hosts import Host
from .images import Image, ImageMember
from .instances import Instance, InstanceAction, InstanceFault, ServerGroup
from .keypairs import KeyPair

__all__ = ["ConsoleToken", "Flavor", "FlavorAccess", "Host", "Image", "ImageMember", "Instance", "InstanceAction",
           "InstanceFault", "KeyPair", "ServerGroup"]

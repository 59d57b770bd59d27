"""Microversion negotiation (Nova's ``OpenStack-API-Version``).

A service advertises only the versions whose shapes it implements. The
request's version is read from ``OpenStack-API-Version: <service> <v>`` (or
Nova's legacy header), ``latest`` means the maximum, a version outside the
range is 406, and the response echoes the version with ``Vary``.
"""

import re
from dataclasses import dataclass

from .errors import BadRequest, NotAcceptable

_VERSION_RE = re.compile(r"^([1-9]\d*)\.(0|[1-9]\d*)$")


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int

    @classmethod
    def parse(cls, text):
        match = _VERSION_RE.match(text.strip())
        if not match:
            raise BadRequest(f"Invalid microversion {text!r}.")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self):
        return f"{self.major}.{self.minor}"


@dataclass(frozen=True)
class Service:
    name: str  # as in the header: compute, volume, image, network
    min: Version
    max: Version
    legacy_header: str | None = None  # Nova's X-OpenStack-Nova-API-Version

    def negotiate(self, meta):
        """The version requested in the WSGI ``meta`` headers (min if none)."""
        requested = None
        header = meta.get("HTTP_OPENSTACK_API_VERSION")
        if header:
            for item in header.split(","):
                parts = item.strip().split(None, 1)
                if len(parts) == 2 and parts[0].lower() == self.name:
                    requested = parts[1]
        if requested is None and self.legacy_header:
            requested = meta.get("HTTP_" + self.legacy_header.upper().replace("-", "_"))
        if not requested:
            return self.min
        if requested.strip().lower() == "latest":
            return self.max
        version = Version.parse(requested)
        if not (self.min <= version <= self.max):
            raise NotAcceptable(
                f"Version {version} is not supported by the API. Minimum is {self.min} and maximum is {self.max}."
            )
        return version

    def response_headers(self, version):
        headers = {"OpenStack-API-Version": f"{self.name} {version}", "Vary": "OpenStack-API-Version"}
        if self.legacy_header:
            headers[self.legacy_header] = str(version)
            headers["Vary"] += ", " + self.legacy_header
        return headers


COMPUTE = Service("compute", Version(2, 1), Version(2, 1), legacy_header="X-OpenStack-Nova-API-Version")
VOLUME = Service("volume", Version(3, 0), Version(3, 0))

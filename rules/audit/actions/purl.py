"""Package URLs (https://github.com/package-url/purl-spec) in their canonical form.

Components are percent-encoded except letters, digits, `.-_~` and `:`; qualifier
values also keep `/`; qualifiers are sorted by key and empty ones dropped.  This is
the form packageurl-python prints, so the strings compare equal to what scanners
produce for the same package.
"""

from __future__ import annotations

from typing import Mapping, Optional
from urllib.parse import quote


def encode(value: str, safe: str = ":") -> str:
    return quote(value, safe=safe)


def package_url(kind: str, namespace: Optional[str], name: str, version: Optional[str],
                qualifiers: Optional[Mapping[str, str]] = None) -> str:
    text = f"pkg:{kind}/"
    if namespace:
        text += "/".join(encode(part) for part in namespace.split("/")) + "/"
    text += encode(name)
    if version:
        text += "@" + encode(version)
    pairs = sorted((key.lower(), value) for key, value in (qualifiers or {}).items() if value)
    if pairs:
        text += "?" + "&".join(f"{key}={encode(value, safe=':/')}" for key, value in pairs)
    return text


def deb_purl(name: str, version: str, architecture: str, distro: str, vendor: str = "debian") -> str:
    """`pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12`."""
    return package_url("deb", vendor, name, version, {"arch": architecture, "distro": distro})


def oci_purl(repository: str, manifest_digest: str, architecture: str = "", repository_url: str = "",
             tag: str = "") -> str:
    """`pkg:oci/app@sha256:...?arch=amd64&repository_url=registry/team/app&tag=latest`.

    The purl name is the last path segment of the repository, lowercased, as the oci type asks.
    """
    name = repository.rstrip("/").rsplit("/", 1)[-1].lower()
    return package_url("oci", None, name, manifest_digest,
                       {"arch": architecture, "repository_url": repository_url, "tag": tag})


def pypi_purl(name: str, version: str) -> str:
    """`pkg:pypi/oslo.config@10.0.0`: the pypi type lowercases the name and writes `_` as `-`."""
    return package_url("pypi", None, name.lower().replace("_", "-"), version)

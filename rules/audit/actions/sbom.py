"""Write an image's SPDX 2.3 JSON SBOM: `python -m audit.actions.sbom spec.json out.spdx.json`.

The spec (written by the `sbom` goal's rule) holds everything; nothing is read
from the host, not even the clock, so the same image gives the same bytes:

    {"document": {"name", "namespace", "created", "creators": [...]},
     "distro": "debian-12", "vendor": "debian",
     "images": [{"address", "repository", "manifest_digest", "architecture", "repository_url", "tag",
                 "supplier"}, ...]        # the image first, then its parent, grandparent, ...
     "packages": [{"name", "version", "architecture", "source", "deb_sha256", "download_location",
                   "supplier", "layer", "added_by"}],
     "python_packages": [{"name", "version", "wheel_sha256", "download_location", "layer", "added_by"}]}

The image is the described package (purpose CONTAINER, checksum = its manifest
digest, purl `pkg:oci/...`); each Debian package is a package it CONTAINS, with
the .deb's sha256, its purl `pkg:deb/<vendor>/...`, supplier and download location;
each Python distribution of the venv (rules/pypi) too, with its wheel's sha256 and URL and its
purl `pkg:pypi/<name>@<version>`.
Each image DESCENDANT_OF its parent, so the chain of base images is recorded.
Licenses are NOASSERTION: Debian states them per file in
/usr/share/doc/<package>/copyright, which this generator does not interpret.
"""

from __future__ import annotations

import json
import re
import sys
from typing import List, Mapping, Sequence

from .purl import deb_purl, oci_purl, pypi_purl

SPDX_VERSION = "SPDX-2.3"
NOASSERTION = "NOASSERTION"
UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9.-]+")
# SPDX 2.3 accepts a download URL only with a DNS host name that ends in a letters-only TLD (its validators
# refuse http://127.0.0.1:8080/...); such a location goes into the comment and the field says NOASSERTION.
SPDX_DOWNLOAD_URL = re.compile(
    r"^((git|hg|svn|bzr)\+)?(http|https|ftp|ftps)://[a-z0-9]+([\-.][a-z0-9]+)*\.[a-z]{2,5}(:[0-9]{1,5})?(/.*)?$")


def spdx_id(*parts: str) -> str:
    """An SPDX identifier: `SPDXRef-` then letters, digits, `.` and `-` only."""
    return "SPDXRef-" + "-".join(UNSAFE_ID_CHARS.sub("-", part).strip("-") for part in parts if part)


def image_id(index: int) -> str:
    return spdx_id("image") if index == 0 else spdx_id("image", "ancestor", str(index))


def deb_id(package: Mapping) -> str:
    return spdx_id("deb", package["name"], package["architecture"], package["deb_sha256"][:12])


def image_package(image: Mapping, index: int, created: str) -> dict:
    digest = image["manifest_digest"]
    return {
        "SPDXID": image_id(index),
        "name": image["repository"],
        "versionInfo": digest,
        "supplier": image.get("supplier") or NOASSERTION,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": False,
        "checksums": [{"algorithm": "SHA256", "checksumValue": digest.split(":", 1)[1]}],
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
        "primaryPackagePurpose": "CONTAINER",
        "builtDate": created,
        "comment": f"OCI image built from the Pants target {image['address']}; the checksum is its manifest digest.",
        "externalRefs": [purl_ref(oci_purl(image["repository"], digest, image.get("architecture", ""),
                                           image.get("repository_url", ""), image.get("tag", "")))],
    }


def download_location(url: str) -> str:
    return url if url and SPDX_DOWNLOAD_URL.match(url) else NOASSERTION


def deb_package(package: Mapping, distro: str, vendor: str) -> dict:
    url = package.get("download_location") or ""
    comment = f"Installed by layer {package['layer']}, added by {package['added_by']}."
    if url and download_location(url) == NOASSERTION:
        comment += f" Downloaded from {url}."
    value = {
        "SPDXID": deb_id(package),
        "name": package["name"],
        "versionInfo": package["version"],
        "supplier": package.get("supplier") or NOASSERTION,
        "downloadLocation": download_location(url),
        "filesAnalyzed": False,
        "checksums": [{"algorithm": "SHA256", "checksumValue": package["deb_sha256"]}],
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
        "comment": comment,
        "externalRefs": [purl_ref(deb_purl(package["name"], package["version"], package["architecture"],
                                           distro, vendor))],
    }
    if package.get("source") and package["source"] != package["name"]:
        value["sourceInfo"] = f"built package from: {package['source']}"
    return value


def pypi_id(package: Mapping) -> str:
    return spdx_id("pypi", package["name"], package["version"], package["wheel_sha256"][:12])


def pypi_package(package: Mapping) -> dict:
    """A Python distribution of the image's venv (rules/pypi), by the wheel it was installed from."""
    url = package.get("download_location") or ""
    return {
        "SPDXID": pypi_id(package),
        "name": package["name"],
        "versionInfo": package["version"],
        "supplier": NOASSERTION,
        "downloadLocation": download_location(url),
        "filesAnalyzed": False,
        "checksums": [{"algorithm": "SHA256", "checksumValue": package["wheel_sha256"]}],
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
        "comment": f"Installed from a wheel into the venv by layer {package['layer']}, added by {package['added_by']}.",
        "externalRefs": [purl_ref(pypi_purl(package["name"], package["version"]))],
    }


def purl_ref(purl: str) -> dict:
    return {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}


def relationship(element: str, kind: str, related: str) -> dict:
    return {"spdxElementId": element, "relationshipType": kind, "relatedSpdxElement": related}


def relationships(images: Sequence[Mapping], packages: Sequence[Mapping],
                  python_packages: Sequence[Mapping] = ()) -> List[dict]:
    found = [relationship("SPDXRef-DOCUMENT", "DESCRIBES", image_id(0))]
    found += [relationship(image_id(i), "DESCENDANT_OF", image_id(i + 1)) for i in range(len(images) - 1)]
    found += [relationship(image_id(0), "CONTAINS", deb_id(p)) for p in packages]
    found += [relationship(image_id(0), "CONTAINS", pypi_id(p)) for p in python_packages]
    return found


def build_sbom(spec: Mapping) -> dict:
    document = spec["document"]
    images = spec["images"]
    packages = sorted(spec.get("packages") or [], key=lambda p: (p["name"], p["architecture"], p["deb_sha256"]))
    python_packages = sorted(spec.get("python_packages") or [], key=lambda p: (p["name"], p["wheel_sha256"]))
    distro, vendor = spec.get("distro", "debian-12"), spec.get("vendor", "debian")
    return {
        "spdxVersion": SPDX_VERSION,
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": document["name"],
        "documentNamespace": document["namespace"],
        "creationInfo": {"created": document["created"], "creators": list(document["creators"])},
        "packages": [image_package(image, i, document["created"]) for i, image in enumerate(images)]
                    + [deb_package(p, distro, vendor) for p in packages]
                    + [pypi_package(p) for p in python_packages],
        "relationships": relationships(images, packages, python_packages),
    }


def write_sbom(spec: Mapping, path: str) -> dict:
    sbom = build_sbom(spec)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(sbom, f, sort_keys=True, indent=1, ensure_ascii=False)
        f.write("\n")
    return sbom


def main(argv: List[str]) -> int:
    spec_path, output = argv
    with open(spec_path, encoding="utf-8") as f:
        sbom = write_sbom(json.load(f), output)
    print(f"{sbom['name']}: {len(sbom['packages'])} packages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

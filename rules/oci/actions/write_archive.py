"""Write an OCI image layout as one tar file for `podman load`, `docker load` or `skopeo copy`.

    python -m oci.actions.write_archive --format docker-archive|oci-archive --layout DIR \
        --output FILE [--mtime N] [--repo-tag NAME:TAG ...]

docker-archive: `manifest.json` (config, RepoTags, layers) and the blobs it names, in the
  layout Docker itself writes since 25.0 (`blobs/sha256/<hex>`).  Layers stay gzip-compressed;
  podman and docker decompress them on load.  No `index.json`, so loaders cannot mistake it
  for an OCI archive and name the image after a bare tag.
oci-archive: the layout itself (`oci-layout`, `index.json`, `blobs/`, every platform of a
  multi-platform image), for `skopeo copy oci-archive:FILE:TAG ...` and other OCI-layout readers.

Written with the normalized tar writer, so the same layout gives the same bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from typing import Sequence

from .ocilayout import canonical_json
from .tarlayer import FILE, Entry, with_parent_dirs, write_tar

FORMATS = ("docker-archive", "oci-archive")


class ArchiveError(ValueError):
    pass


@dataclass(frozen=True)
class ImageFiles:
    """The blobs of the layout's single image, by digest."""

    config: str
    layers: tuple[str, ...]


def read_json(path: str):
    with open(path, "rb") as f:
        return json.load(f)


def blob_path(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != "sha256" or not hexdigest:
        raise ArchiveError(f"unsupported digest {digest!r}")
    return f"blobs/sha256/{hexdigest}"


def image_files(layout: str) -> ImageFiles:
    manifests = read_json(os.path.join(layout, "index.json")).get("manifests", [])
    digests = sorted({m["digest"] for m in manifests})
    if len(digests) != 1:
        raise ArchiveError(f"{layout} holds {len(digests)} images; an archive takes exactly one")
    manifest = read_json(os.path.join(layout, blob_path(digests[0])))
    return ImageFiles(manifest["config"]["digest"], tuple(layer["digest"] for layer in manifest["layers"]))


def docker_manifest(files: ImageFiles, repo_tags: Sequence[str]) -> bytes:
    return canonical_json([{
        "Config": blob_path(files.config),
        "RepoTags": list(repo_tags),
        "Layers": [blob_path(digest) for digest in files.layers],
    }])


def blob_entry(layout: str, digest: str) -> Entry:
    path = blob_path(digest)
    return Entry(path, FILE, 0o644, source=os.path.join(layout, path))


def docker_archive_entries(layout: str, repo_tags: Sequence[str]) -> list[Entry]:
    files = image_files(layout)
    # A layer used twice in one image is stored once.
    digests = sorted({files.config, *files.layers})
    return [
        Entry("manifest.json", FILE, 0o644, data=docker_manifest(files, repo_tags)),
        *(blob_entry(layout, digest) for digest in digests),
    ]


def oci_archive_entries(layout: str) -> list[Entry]:
    entries = []
    for directory, _, names in os.walk(layout):
        for name in names:
            path = os.path.join(directory, name)
            entries.append(Entry(os.path.relpath(path, layout), FILE, 0o644, source=path))
    return entries


def archive_entries(archive_format: str, layout: str, repo_tags: Sequence[str]) -> list[Entry]:
    if archive_format == "docker-archive":
        return docker_archive_entries(layout, repo_tags)
    if archive_format == "oci-archive":
        if repo_tags:
            raise ArchiveError("repo tags are only written into a docker-archive")
        return oci_archive_entries(layout)
    raise ArchiveError(f"unknown format {archive_format!r}; choose one of {', '.join(FORMATS)}")


def write_archive(archive_format: str, layout: str, output: str, repo_tags: Sequence[str], mtime: int) -> None:
    entries = with_parent_dirs(archive_entries(archive_format, layout, repo_tags))
    os.makedirs(os.path.dirname(output) or ".", exist_ok=True)
    with open(output, "wb") as out:
        write_tar(entries, out, mtime)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="write_archive")
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--layout", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--mtime", type=int, default=0)
    parser.add_argument("--repo-tag", action="append", default=[])
    args = parser.parse_args(argv)
    try:
        write_archive(args.format, args.layout, args.output, args.repo_tag, args.mtime)
    except (ArchiveError, OSError, KeyError) as e:
        print(f"write_archive: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

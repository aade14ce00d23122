"""Compare two OCI image layouts and say where they differ:
`python -m audit.actions.repro_diff CURRENT_DIR REFERENCE_DIR` prints a JSON report on stdout.

From the top down: the index (tags and manifest digests), then per manifest the config
(field by field) and the layers by position.  For a layer whose digests differ:
- same diff_id: only the compressed bytes differ, so the compressor differs (zlib
  version or level; see each build's provenance), not the content;
- otherwise both blobs are decompressed and their tar members compared: members only on
  one side, and per member the header fields and the content's sha256; for a small
  text file whose content differs, a unified diff of the two contents (as diffoscope would
  show it; binaries are left to diffoscope on the two blobs).
Every blob read is checked against its digest first, so a damaged reference is reported
as such rather than as a difference of the build.

    {"identical": bool, "current": digest, "reference": digest, "differences": [
        {"where": "index" | "config" | "layer", "what": "...", ...}]}
"""

from __future__ import annotations

import difflib
import gzip
import hashlib
import json
import os
import sys
import tarfile
from typing import Dict, Iterator, List, Optional, Tuple

MAX_MEMBER_DIFFERENCES = 20
MAX_TEXT_BYTES = 64 * 1024  # contents kept for a text diff
MAX_DIFF_LINES = 40
HEADER_FIELDS = ("type", "mode", "uid", "gid", "uname", "gname", "mtime", "size", "linkname")
INDEX_MEDIA_TYPES = ("application/vnd.oci.image.index.v1+json",
                     "application/vnd.docker.distribution.manifest.list.v2+json")


class LayoutError(Exception):
    pass


class Layout:
    def __init__(self, root: str):
        self.root = root

    def blob_path(self, digest: str) -> str:
        algorithm, hex_digest = digest.split(":", 1)
        return os.path.join(self.root, "blobs", algorithm, hex_digest)

    def read_blob(self, digest: str) -> bytes:
        path = self.blob_path(digest)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise LayoutError(f"{self.root}: blob {digest} is missing ({e.strerror})") from None
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise LayoutError(f"{self.root}: blob {digest} does not match its digest (damaged layout)")
        return data

    def json_blob(self, digest: str) -> dict:
        return json.loads(self.read_blob(digest))

    def index(self) -> dict:
        try:
            with open(os.path.join(self.root, "index.json"), "rb") as f:
                return json.load(f)
        except OSError as e:
            raise LayoutError(f"{self.root}: no index.json ({e.strerror}); is it an OCI image layout?") from None

    def verified_blob_stream(self, digest: str):
        """The blob as a stream; its digest is checked when the stream has been read to the end."""
        path = self.blob_path(digest)
        if not os.path.exists(path):
            raise LayoutError(f"{self.root}: blob {digest} is missing")
        return open(path, "rb")


def top_digest(index: dict) -> str:
    manifests = index.get("manifests") or []
    return manifests[0]["digest"] if manifests else ""


def ref_names(index: dict) -> Dict[str, str]:
    return {(m.get("annotations") or {}).get("org.opencontainers.image.ref.name", ""): m["digest"]
            for m in index.get("manifests") or []}


def json_differences(current, reference, path: str = "") -> List[Tuple[str, object, object]]:
    """(path, current value, reference value) for every leaf that differs."""
    if isinstance(current, dict) and isinstance(reference, dict):
        found = []
        for key in sorted(set(current) | set(reference)):
            found += json_differences(current.get(key), reference.get(key), f"{path}.{key}" if path else key)
        return found
    if isinstance(current, list) and isinstance(reference, list) and len(current) == len(reference):
        found = []
        for i, (a, b) in enumerate(zip(current, reference)):
            found += json_differences(a, b, f"{path}[{i}]")
        return found
    return [] if current == reference else [(path, current, reference)]


def tar_members(stream) -> Iterator[Tuple[tarfile.TarInfo, Optional[str], Optional[bytes]]]:
    """Each member of a gzip-compressed tar stream with the sha256 of its content (None for non-files)
    and the content itself when it is small enough to diff."""
    with gzip.GzipFile(fileobj=stream, mode="rb") as unzipped:
        with tarfile.open(fileobj=unzipped, mode="r|") as tar:
            for info in tar:
                content_hash, small = None, None
                if info.isfile():
                    digest = hashlib.sha256()
                    source = tar.extractfile(info)
                    kept = bytearray() if info.size <= MAX_TEXT_BYTES else None
                    for chunk in iter(lambda: source.read(1 << 20), b""):
                        digest.update(chunk)
                        if kept is not None:
                            kept += chunk
                    content_hash = digest.hexdigest()
                    small = bytes(kept) if kept is not None else None
                yield info, content_hash, small


def text_diff(current: Optional[bytes], reference: Optional[bytes], name: str) -> List[str]:
    """A unified diff of two small UTF-8 texts, else nothing."""
    if current is None or reference is None or b"\0" in current or b"\0" in reference:
        return []
    try:
        here, there = current.decode("utf-8"), reference.decode("utf-8")
    except UnicodeDecodeError:
        return []
    lines = list(difflib.unified_diff(there.splitlines(), here.splitlines(), f"reference/{name}",
                                      f"current/{name}", lineterm="", n=2))
    return lines[:MAX_DIFF_LINES] + ([f"... {len(lines) - MAX_DIFF_LINES} more lines"]
                                     if len(lines) > MAX_DIFF_LINES else [])


def member_record(info: tarfile.TarInfo, content_hash: Optional[str]) -> dict:
    record = {name: getattr(info, name) for name in HEADER_FIELDS}
    record["type"] = info.type.decode("latin-1") if isinstance(info.type, bytes) else str(info.type)
    record["mode"] = oct(info.mode)
    record["pax_headers"] = dict(sorted(info.pax_headers.items()))
    record["sha256"] = content_hash
    return record


def layer_members(layout: Layout, digest: str) -> Tuple[List[str], Dict[str, dict], Dict[str, bytes]]:
    order, records, contents = [], {}, {}
    stream = layout.verified_blob_stream(digest)
    hasher = hashlib.sha256()

    class Hashing:
        def read(self, size=-1):
            data = stream.read(size)
            hasher.update(data)
            return data

    with stream:
        for info, content_hash, small in tar_members(Hashing()):
            order.append(info.name)
            records[info.name] = member_record(info, content_hash)
            if small is not None:
                contents[info.name] = small
        hasher.update(stream.read())
    if "sha256:" + hasher.hexdigest() != digest:
        raise LayoutError(f"{layout.root}: blob {digest} does not match its digest (damaged layout)")
    return order, records, contents


def member_differences(current: Layout, reference: Layout, current_digest: str, reference_digest: str) -> dict:
    current_order, current_members, current_contents = layer_members(current, current_digest)
    reference_order, reference_members, reference_contents = layer_members(reference, reference_digest)
    only_current = [name for name in current_order if name not in reference_members]
    only_reference = [name for name in reference_order if name not in current_members]
    changed = []
    for name in current_order:
        if name in reference_members:
            fields = {key: {"current": value, "reference": reference_members[name][key]}
                      for key, value in current_members[name].items() if value != reference_members[name][key]}
            if fields:
                change = {"path": name, "fields": fields}
                if "sha256" in fields:
                    diff = text_diff(current_contents.get(name), reference_contents.get(name), name)
                    if diff:
                        change["text_diff"] = diff
                changed.append(change)
    common_order = [n for n in current_order if n in reference_members]
    reordered = common_order != [n for n in reference_order if n in current_members]
    return {
        "only_in_current": only_current[:MAX_MEMBER_DIFFERENCES],
        "only_in_reference": only_reference[:MAX_MEMBER_DIFFERENCES],
        "changed_members": changed[:MAX_MEMBER_DIFFERENCES],
        "changed_member_count": len(changed),
        "member_order_differs": reordered,
    }


def item_at(values: List[str], index: int) -> str:
    return values[index] if index < len(values) else ""


def compare_images(current: Layout, reference: Layout, current_manifest: str, reference_manifest: str,
                   platform: str = "") -> List[dict]:
    differences = []
    manifest_a, manifest_b = current.json_blob(current_manifest), reference.json_blob(reference_manifest)
    config_a = current.json_blob(manifest_a["config"]["digest"])
    config_b = reference.json_blob(manifest_b["config"]["digest"])
    for path, a, b in json_differences(config_a, config_b):
        if path.startswith("rootfs.diff_ids"):
            continue  # reported per layer below
        differences.append({"where": "config", "platform": platform, "field": path, "current": a, "reference": b})
    layers_a, layers_b = manifest_a.get("layers") or [], manifest_b.get("layers") or []
    if len(layers_a) != len(layers_b):
        differences.append({"where": "manifest", "platform": platform,
                            "what": f"{len(layers_a)} layers here, {len(layers_b)} in the reference"})
    diff_ids_a = (config_a.get("rootfs") or {}).get("diff_ids") or []
    diff_ids_b = (config_b.get("rootfs") or {}).get("diff_ids") or []
    history = [h for h in config_a.get("history") or [] if not h.get("empty_layer")]
    for index, (layer_a, layer_b) in enumerate(zip(layers_a, layers_b)):
        if layer_a["digest"] == layer_b["digest"]:
            continue
        entry = {"where": "layer", "platform": platform, "index": index,
                 "created_by": history[index].get("created_by", "") if index < len(history) else "",
                 "current": {"digest": layer_a["digest"], "diff_id": item_at(diff_ids_a, index)},
                 "reference": {"digest": layer_b["digest"], "diff_id": item_at(diff_ids_b, index)}}
        if entry["current"]["diff_id"] and entry["current"]["diff_id"] == entry["reference"]["diff_id"]:
            entry["what"] = ("same content (diff_id), different compressed bytes: the compressor differs "
                             "(zlib version or level; compare the builds' provenance)")
        else:
            entry["what"] = "different content"
            entry["members"] = member_differences(current, reference, layer_a["digest"], layer_b["digest"])
        differences.append(entry)
    return differences


def platform_manifests(layout: Layout, digest: str, media_type: str) -> Dict[str, str]:
    """platform -> manifest digest; a plain manifest is the single platform ''."""
    if media_type not in INDEX_MEDIA_TYPES:
        return {"": digest}
    index = layout.json_blob(digest)
    return {f"{(m.get('platform') or {}).get('os', '')}/{(m.get('platform') or {}).get('architecture', '')}":
            m["digest"] for m in index.get("manifests") or []}


def compare_layouts(current_root: str, reference_root: str) -> dict:
    current, reference = Layout(current_root), Layout(reference_root)
    index_a, index_b = current.index(), reference.index()
    top_a, top_b = top_digest(index_a), top_digest(index_b)
    report = {"identical": top_a == top_b, "current": top_a, "reference": top_b, "differences": []}
    if ref_names(index_a).keys() != ref_names(index_b).keys():
        report["differences"].append({"where": "index", "what": "tags differ", "current": sorted(ref_names(index_a)),
                                      "reference": sorted(ref_names(index_b))})
    if top_a == top_b:
        reference.read_blob(top_b)  # the reference claims the same image: make sure its bytes are that image
        return report
    media_a = (index_a.get("manifests") or [{}])[0].get("mediaType", "")
    media_b = (index_b.get("manifests") or [{}])[0].get("mediaType", "")
    platforms_a = platform_manifests(current, top_a, media_a)
    platforms_b = platform_manifests(reference, top_b, media_b)
    for platform in sorted(set(platforms_a) | set(platforms_b)):
        if platform not in platforms_a or platform not in platforms_b:
            report["differences"].append({"where": "index", "what": f"platform {platform} only on one side"})
            continue
        if platforms_a[platform] != platforms_b[platform]:
            report["differences"] += compare_images(current, reference, platforms_a[platform],
                                                    platforms_b[platform], platform)
    return report


def main(argv: List[str]) -> int:
    current_root, reference_root = argv
    try:
        report = compare_layouts(current_root, reference_root)
    except LayoutError as e:
        report = {"identical": False, "error": str(e), "differences": []}
    sys.stdout.write(json.dumps(report, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

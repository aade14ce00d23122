"""Unit tests of the audit actions (stdlib, run in sandboxes): SBOM, provenance, package summary, purls,
layout comparison."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import specs
from e2e_repo import faketime

from oci.actions.assemble_image import assemble
from oci.actions.build_layer import build_layer
from audit.actions.package_summary import summarize
from audit.actions.purl import deb_purl, oci_purl
from audit.actions.repro_diff import compare_layouts
from audit.actions.sbom import build_sbom

RULES = Path(__file__).resolve().parents[2] / "rules"
DIGEST = "sha256:" + "ab" * 32
PARENT_DIGEST = "sha256:" + "cd" * 32
DEB_SHA = "12" * 32


def sbom_spec() -> dict:
    return {
        "document": {"name": "images/app:app", "namespace": f"https://spdx.org/spdxdocs/oci-pants/app-{DIGEST[7:]}",
                     "created": "1970-01-01T00:00:00Z", "creators": ["Tool: oci-pants-0123456789ab", "Tool: pants-2.17.1"]},
        "distro": "debian-12",
        "vendor": "debian",
        "images": [
            {"address": "images/app:app", "repository": "team/app", "manifest_digest": DIGEST, "architecture": "amd64",
             "repository_url": "127.0.0.1:5000/team/app", "tag": "1.0", "supplier": ""},
            {"address": "images/base:base", "repository": "base", "manifest_digest": PARENT_DIGEST,
             "architecture": "amd64", "repository_url": "", "tag": "latest", "supplier": "Organization: Example"},
        ],
        "packages": [
            {"name": "libstdc++6", "version": "1:12.2.0-14+deb12u1", "architecture": "amd64", "source": "gcc-12",
             "deb_sha256": DEB_SHA, "download_location": "http://deb.debian.org/debian/pool/main/g/gcc-12/x.deb",
             "supplier": "Organization: Debian", "layer": "sha256:" + "33" * 32, "added_by": "images/base:base"},
            {"name": "tool", "version": "1.0-1", "architecture": "amd64", "source": "tool", "deb_sha256": "45" * 32,
             "download_location": "", "supplier": "", "layer": "sha256:" + "44" * 32, "added_by": "images/app:app"},
            {"name": "zlib1g", "version": "1:1.2.13", "architecture": "amd64", "source": "zlib",
             "deb_sha256": "46" * 32, "download_location": "http://127.0.0.1:8080/pool/z/zlib1g.deb", "supplier": "",
             "layer": "sha256:" + "44" * 32, "added_by": "images/app:app"},
        ],
    }


def pyspdxtools_validates(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "pyspdxtools"), "-i", str(path)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_purls_are_canonical_as_packageurl_python_prints_them():
    from packageurl import PackageURL

    cases = [
        deb_purl("libstdc++6", "1:12.2.0-14+deb12u1", "amd64", "debian-12"),
        deb_purl("python3", "3.11.2-1+b1", "arm64", "debian-12"),
        oci_purl("team/App", DIGEST, "amd64", "127.0.0.1:5000/team/App", "1.0"),
        oci_purl("base", DIGEST),
    ]
    for purl in cases:
        assert PackageURL.from_string(purl).to_string() == purl
    assert cases[0] == "pkg:deb/debian/libstdc%2B%2B6@1:12.2.0-14%2Bdeb12u1?arch=amd64&distro=debian-12"
    assert cases[2] == f"pkg:oci/app@{DIGEST}?arch=amd64&repository_url=127.0.0.1:5000/team/App&tag=1.0"


def test_sbom_is_valid_spdx_with_image_packages_and_relationships(tmp_path):
    sbom = build_sbom(sbom_spec())
    path = tmp_path / "app.spdx.json"
    path.write_text(json.dumps(sbom))
    result = pyspdxtools_validates(path)
    assert result.returncode == 0, result.stdout
    ids = [p["SPDXID"] for p in sbom["packages"]]
    assert ids[:2] == ["SPDXRef-image", "SPDXRef-image-ancestor-1"]
    assert ids[2] == f"SPDXRef-deb-libstdc-6-amd64-{DEB_SHA[:12]}"  # '+' is not allowed in SPDX ids
    libstdcxx = sbom["packages"][2]
    assert libstdcxx["sourceInfo"] == "built package from: gcc-12"
    assert libstdcxx["checksums"] == [{"algorithm": "SHA256", "checksumValue": DEB_SHA}]
    tool = sbom["packages"][3]
    assert tool["downloadLocation"] == "NOASSERTION" and tool["supplier"] == "NOASSERTION" and "sourceInfo" not in tool
    assert libstdcxx["downloadLocation"] == "http://deb.debian.org/debian/pool/main/g/gcc-12/x.deb"
    zlib1g = sbom["packages"][4]
    assert zlib1g["downloadLocation"] == "NOASSERTION"  # SPDX refuses IP hosts; kept in the comment
    assert zlib1g["comment"].endswith("Downloaded from http://127.0.0.1:8080/pool/z/zlib1g.deb.")
    kinds = sorted((r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"]) for r in sbom["relationships"])
    assert ("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-image") in kinds
    assert ("SPDXRef-image", "DESCENDANT_OF", "SPDXRef-image-ancestor-1") in kinds
    assert sum(1 for k in kinds if k[1] == "CONTAINS") == 3


def test_sbom_detects_invalid_documents(tmp_path):
    """The validator used by the tests does refuse a broken document (so a pass means something)."""
    sbom = build_sbom(sbom_spec())
    sbom["packages"][0]["SPDXID"] = "SPDXRef-image with spaces"
    path = tmp_path / "bad.spdx.json"
    path.write_text(json.dumps(sbom))
    assert pyspdxtools_validates(path).returncode != 0


def run_action(module: str, spec: dict, work: Path, env: dict | None = None, wrapper: tuple = ()) -> bytes:
    work.mkdir(parents=True, exist_ok=True)
    (work / "spec.json").write_text(json.dumps(spec))
    base_env = {"PYTHONPATH": str(RULES), "PATH": os.environ["PATH"]}
    subprocess.run([*wrapper, sys.executable, "-m", f"audit.actions.{module}", "spec.json", "out.json"], cwd=work,
                   env={**base_env, **(env or {})}, check=True, capture_output=True)
    return (work / "out.json").read_bytes()


def perturbations() -> list[tuple[dict, tuple]]:
    return [({"TZ": "UTC", "LC_ALL": "C.UTF-8"}, ()),
            ({"TZ": "Pacific/Chatham", "LC_ALL": "C"}, faketime("2033-03-03 03:03:03"))]


@pytest.mark.parametrize("module,spec", [("sbom", sbom_spec()), ("provenance", None)])
def test_sbom_and_provenance_bytes_do_not_depend_on_clock_zone_or_directory(module, spec, tmp_path):
    spec = spec or provenance_spec()
    outputs = {run_action(module, spec, tmp_path / f"run{i}" / ("deeper" * i), env, wrapper)
               for i, (env, wrapper) in enumerate(perturbations())}
    assert len(outputs) == 1


def provenance_spec() -> dict:
    return {
        "subjects": [{"name": "127.0.0.1:5000/team/app", "digest": {"sha256": DIGEST[7:]}}],
        "build_type": "https://oci-pants.invalid/build-types/oci-image/v1",
        "external_parameters": {"target": "images/app:app", "sourceDateEpoch": 0, "architecture": "amd64",
                                "lockfile": "3rdparty/debian/lock.yaml"},
        "internal_parameters": {"parentImages": ["images/base:base"]},
        "compression_level": 9,
        "resolved_dependencies": [{"name": "source", "digest": {"gitCommit": "a" * 40}},
                                  {"name": "pkg:deb/debian/tool@1.0-1?arch=amd64&distro=debian-12",
                                   "digest": {"sha256": DEB_SHA}, "uri": "http://127.0.0.1/pool/tool.deb"}],
        "builder": {"id": "https://ci.example/runner", "version": {"pants": "2.17.1", "oci-backend": "0" * 64}},
        "byproducts": [{"name": "config", "digest": {"sha256": "1" * 64}}],
    }


def test_provenance_is_an_in_toto_statement_with_the_interpreters_compressor(tmp_path):
    import zlib

    from google.protobuf import json_format
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1.statement import Statement
    from in_toto_attestation.v1.statement_pb2 import Statement as StatementProto

    text = run_action("provenance", provenance_spec(), tmp_path).decode()
    Statement.copy_from_pb(json_format.Parse(text, StatementProto())).validate()
    value = json.loads(text)
    json_format.ParseDict(value["predicate"], provenance_pb2.Provenance())
    compression = value["predicate"]["buildDefinition"]["internalParameters"]["compression"]
    assert compression == {"format": "gzip", "implementation": "zlib", "version": zlib.ZLIB_RUNTIME_VERSION,
                           "level": 9}
    dependencies = value["predicate"]["runDetails"]["builder"]["builderDependencies"]
    assert [d["name"] for d in dependencies] == ["python", "zlib"]


def test_package_summary_counts_file_bytes_once_and_lists_setid_files():
    metadata = {"packages": [{
        "name": "passwd", "version": "1:4.13", "architecture": "amd64", "source": "shadow", "dpkg_name": "passwd",
        "deb": {"path": "debs/x.deb", "sha256": DEB_SHA},
        "files": [
            {"path": "usr/bin/passwd", "kind": "file", "mode": 0o4755, "size": 100, "sha256": "0"},
            {"path": "usr/bin/chage", "kind": "file", "mode": 0o2755, "size": 50, "sha256": "1"},
            {"path": "usr/bin/passwd-link", "kind": "hardlink", "mode": 0o4755, "size": 100, "target": "usr/bin/passwd"},
            {"path": "usr/bin", "kind": "dir", "mode": 0o755},
            {"path": "usr/bin/pw", "kind": "symlink", "mode": 0o777, "target": "passwd"},
        ],
    }]}
    summary = summarize(metadata)["packages"][0]
    assert summary["installed_bytes"] == 150
    assert summary["files"] == 4
    assert summary["setuid"] == ["/usr/bin/chage", "/usr/bin/passwd", "/usr/bin/passwd-link"]
    assert summary["deb_sha256"] == DEB_SHA and summary["source"] == "shadow"


def make_layout(root: Path, files: dict[str, bytes], level: int = 6, mtime: int = 0, cmd: str = "/bin/true") -> Path:
    """A one-image OCI layout: a layer of `files` over a base layer."""
    root.mkdir(parents=True)
    sources = root.parent / f"{root.name}-sources"
    sources.mkdir()
    entries = []
    for index, (path, data) in enumerate(sorted(files.items())):
        (sources / str(index)).write_bytes(data)
        entries.append({"path": path, "source": str(sources / str(index))})
    (sources / "os-release").write_bytes(b"ID=test\n")
    base = build_layer(specs.files_layer([{"path": "etc/os-release", "source": str(sources / "os-release")}],
                                         "files of //base", level=level), str(root))
    layer = build_layer(specs.files_layer(entries, "files of //app", mtime, level), str(root))
    assemble(specs.image("//app", [base, layer], cmd=[cmd]), str(root))
    (root / "image.json").unlink()
    return root


def test_identical_layouts_compare_identical(tmp_path):
    a = make_layout(tmp_path / "a", {"srv/x": b"x\n"})
    b = make_layout(tmp_path / "b", {"srv/x": b"x\n"})
    report = compare_layouts(str(a), str(b))
    assert report["identical"] and report["differences"] == []


def test_a_differing_member_is_pinpointed_by_layer_path_and_field(tmp_path):
    a = make_layout(tmp_path / "a", {"srv/x": b"x\n", "srv/y": b"y\n"}, mtime=0)
    b = make_layout(tmp_path / "b", {"srv/x": b"x\n", "srv/y": b"Y\n", "srv/z": b"z"}, mtime=0)
    report = compare_layouts(str(a), str(b))
    assert not report["identical"]
    [layer] = [d for d in report["differences"] if d["where"] == "layer"]
    assert layer["index"] == 1 and layer["created_by"] == "files of //app" and layer["what"] == "different content"
    members = layer["members"]
    assert members["only_in_reference"] == ["srv/z"] and members["only_in_current"] == []
    [changed] = members["changed_members"]
    assert changed["path"] == "srv/y" and set(changed["fields"]) == {"sha256"}
    assert changed["text_diff"] == ["--- reference/srv/y", "+++ current/srv/y", "@@ -1 +1 @@", "-Y", "+y"]


def test_text_diffs_only_for_small_text_files(tmp_path):
    big = b"line\n" * 20000
    a = make_layout(tmp_path / "a", {"srv/bin": b"\x7fELF\0a", "srv/big": big + b"a\n", "srv/conf": b"a = 1\nb = 2\n"})
    b = make_layout(tmp_path / "b", {"srv/bin": b"\x7fELF\0b", "srv/big": big + b"b\n", "srv/conf": b"a = 1\nb = 3\n"})
    [layer] = [d for d in compare_layouts(str(a), str(b))["differences"] if d["where"] == "layer"]
    changed = {c["path"]: c for c in layer["members"]["changed_members"]}
    assert set(changed) == {"srv/bin", "srv/big", "srv/conf"}
    assert "text_diff" not in changed["srv/bin"] and "text_diff" not in changed["srv/big"]
    assert changed["srv/conf"]["text_diff"][-2:] == ["-b = 3", "+b = 2"]


def test_mtime_and_config_differences_are_named(tmp_path):
    a = make_layout(tmp_path / "a", {"srv/x": b"x\n"}, mtime=0, cmd="/bin/true")
    b = make_layout(tmp_path / "b", {"srv/x": b"x\n"}, mtime=1700000000, cmd="/bin/false")
    report = compare_layouts(str(a), str(b))
    config = [d for d in report["differences"] if d["where"] == "config"]
    assert {"where": "config", "platform": "", "field": "config.Cmd[0]", "current": "/bin/true",
            "reference": "/bin/false"} in config
    [layer] = [d for d in report["differences"] if d["where"] == "layer"]
    fields = {c["path"]: c["fields"] for c in layer["members"]["changed_members"]}
    assert fields["srv/x"] == {"mtime": {"current": 0, "reference": 1700000000}}


def test_compressor_only_difference_is_told_apart_from_content(tmp_path):
    a = make_layout(tmp_path / "a", {"srv/x": b"x" * 10000}, level=1)
    b = make_layout(tmp_path / "b", {"srv/x": b"x" * 10000}, level=9)
    report = compare_layouts(str(a), str(b))
    layers = [d for d in report["differences"] if d["where"] == "layer"]
    assert layers and all(d["what"].startswith("same content (diff_id), different compressed bytes") for d in layers)


def test_a_damaged_reference_is_reported_as_such(tmp_path):
    a = make_layout(tmp_path / "a", {"srv/x": b"x\n"})
    b = make_layout(tmp_path / "b", {"srv/x": b"X\n"})
    manifest = json.loads((b / "index.json").read_text())["manifests"][0]["digest"]
    blob = b / "blobs/sha256" / manifest[7:]
    blob.write_bytes(blob.read_bytes().replace(b"layers", b"Layers"))
    output = subprocess.run([sys.executable, "-m", "audit.actions.repro_diff", str(a), str(b)],
                            env={"PYTHONPATH": str(RULES)}, check=True, capture_output=True, text=True).stdout
    report = json.loads(output)
    assert not report["identical"] and "does not match its digest" in report["error"]

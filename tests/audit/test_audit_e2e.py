"""End to end: the audit goals on images with Debian packages from a signed fixture apt repository.

One module-scoped build (lock, package, sbom, provenance, image-report in one Pants run) serves
most assertions; `lint` and `update-cost` each add one run.  The SBOM is checked by the SPDX
project's own validator (`pyspdxtools`), purls by packageurl-python, the provenance by the
in-toto attestation library and the SLSA v1 protobuf schema.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aptrepo import DEFAULT_PACKAGES, AptRepo, DebSpec, serve_directory
from e2e_repo import make_repo, run_pants

pytestmark = pytest.mark.e2e

AUDIT_PACKAGES = (
    DebSpec("cpp-12", "12.2.0-14", depends="libc6"),
    DebSpec("gcc-12", "12.2.0-14", depends="cpp-12, libc6"),
    DebSpec("libssl-dev", "3.0.11-1", depends="openssl"),
    DebSpec("crudini", "0.9.4-1", architecture="all", depends="python3"),
)

IMAGES = {
    "images/users.yaml": "groups: {app: 42410}\nusers: {app: {uid: 42410, home: /var/lib/app}}\n",
    "images/base/BUILD": 'oci_image(essential=True, packages=["mawk", "ca-certificates"])\n',
    "images/app/BUILD": 'oci_image(parent="//images/base", packages=["tool"], users=["app"], user="app",\n'
                        '          entrypoint=["/usr/bin/tool"], registries=["registry.example:5000"],\n'
                        '          repository="team/app", max_size="1MB")\n',
    "images/builder/BUILD": 'oci_image(parent="//images/base", packages=["gcc-12", "libssl-dev"],\n'
                            '          entrypoint=["/bin/sh"])\n',
    "images/config/BUILD": 'oci_image(parent="//images/base", packages=["crudini"], cmd=["crudini"],\n'
                           '          policy_allow=["config-time-packages", "root-user"])\n',
    "images/plain/BUILD": 'image_files(name="f", sources=["hello"], destination="/srv")\n'
                          'oci_image(parent="//images/app", files=[":f"], max_packages=5, max_size="10B")\n',
    "images/plain/hello": "hello\n",
}


def packages(tool_version: str = "1.0-1") -> tuple[DebSpec, ...]:
    specs = [dataclasses.replace(spec, version=tool_version) if spec.name == "tool" else spec
             for spec in DEFAULT_PACKAGES]
    return (*specs, *AUDIT_PACKAGES)


def publish(root: Path, url: str, keys, specs) -> AptRepo:
    return AptRepo(root=root, suite="fixture", key=keys.trusted, packages=tuple(specs), url=url).build(keys.deb_cache)


def sources_yaml(repo: AptRepo, keyring: str) -> str:
    return yaml.safe_dump({"architectures": ["amd64"], "sources": [{
        "name": "fixture", "url": repo.url, "suites": [repo.suite], "components": ["main"], "keyring": keyring,
    }]})


@dataclasses.dataclass(frozen=True)
class Audited:
    repo: Path
    apt: AptRepo
    output: str
    store: Path
    env: dict
    work: Path
    served: tuple

    @property
    def dist(self) -> Path:
        return self.repo / "dist"

    def pants(self, *args: str):
        # A layer per package (up to 12 per image), so that a package update shows what layering saves.
        return run_pants(self.repo, *args, f"--debian-deb-cache={self.work / 'debs'}", "--debian-own-layer-bytes=1",
                         store=self.store, env=self.env)


@pytest.fixture(scope="module")
def audited(tmp_path_factory, apt_keys) -> Audited:
    root = tmp_path_factory.mktemp("apt")
    with serve_directory(root) as url:
        apt = publish(root, url, apt_keys, packages())
        work = tmp_path_factory.mktemp("audit")
        files = {**IMAGES, "3rdparty/debian/sources.yaml": sources_yaml(apt, apt_keys.trusted.keyring)}
        repo = make_repo(work / "repo", files)
        with (repo / "pants.toml").open("a") as toml:  # the fixture source's supplier, as a user would set it
            toml.write('\n[oci-sbom]\nsuppliers = {fixture = "Organization: Fixture Archive"}\n')
        env = {"XDG_CACHE_HOME": str(work / "xdg")}
        audited = Audited(repo, apt, "", work / "store", env, work, (root, url, apt_keys))
        lock = audited.pants("generate-lockfiles", "--resolve=debian")
        assert lock.returncode == 0, lock.output
        run = audited.pants("package", "sbom", "provenance", "image-report", "--image-report-why=cpp-12",
                            "--image-report-why=libc6", "::")
        assert run.returncode == 0, run.output
        yield dataclasses.replace(audited, output=run.output)


def sbom_of(audited: Audited, image: str) -> dict:
    return json.loads((audited.dist / f"images.{image}/{image}.spdx.json").read_text())


def layout_manifest_digest(audited: Audited, image: str) -> str:
    return json.loads((audited.dist / f"images.{image}/{image}/index.json").read_text())["manifests"][0]["digest"]


def tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)


@pytest.mark.parametrize("image", ["base", "app", "builder", "config", "plain"])
def test_sbom_is_valid_spdx(audited, image):
    path = audited.dist / f"images.{image}/{image}.spdx.json"
    result = subprocess.run([tool("pyspdxtools"), "-i", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert result.returncode == 0 and "invalid" not in result.stdout, result.stdout


def test_sbom_describes_the_image_and_every_package(audited):
    from packageurl import PackageURL

    sbom = sbom_of(audited, "app")
    digest = layout_manifest_digest(audited, "app")
    image, *rest = sbom["packages"]
    assert image["SPDXID"] == "SPDXRef-image" and image["primaryPackagePurpose"] == "CONTAINER"
    assert image["checksums"] == [{"algorithm": "SHA256", "checksumValue": digest.split(":")[1]}]
    image_purl = image["externalRefs"][0]["referenceLocator"]
    assert image_purl == f"pkg:oci/app@{digest}?arch=amd64&repository_url=registry.example:5000/team/app&tag=latest"
    assert PackageURL.from_string(image_purl).to_string() == image_purl
    assert sbom["documentNamespace"].endswith(digest.split(":")[1])
    assert sbom["creationInfo"]["created"] == "1970-01-01T00:00:00Z"

    debs = {p["name"]: p for p in rest if p["SPDXID"].startswith("SPDXRef-deb-")}
    lock = yaml.safe_load((audited.repo / "3rdparty/debian/lock.yaml").read_text())
    closure = lock["images"]["images/app:app"]["amd64"]["closure"]
    assert sorted(debs) == sorted(closure)
    tool_deb = debs["tool"]
    assert tool_deb["versionInfo"] == "1.0-1"
    assert tool_deb["checksums"][0]["checksumValue"] == hashlib.sha256(audited.apt.debs["tool"].read_bytes()).hexdigest()
    # SPDX wants a DNS name in a download URL: the loopback mirror's URL goes into the comment instead.
    assert tool_deb["downloadLocation"] == "NOASSERTION"
    assert tool_deb["comment"].endswith(f"Downloaded from {audited.apt.url}/{lock['architectures']['amd64']['tool']['url']}.")
    assert tool_deb["supplier"] == "Organization: Fixture Archive"
    purl = tool_deb["externalRefs"][0]["referenceLocator"]
    assert purl == "pkg:deb/debian/tool@1.0-1?arch=amd64&distro=debian-12"
    python3 = debs["python3"]["externalRefs"][0]["referenceLocator"]
    assert python3 == "pkg:deb/debian/python3@3.11.2-1%2Bb1?arch=amd64&distro=debian-12"
    for p in debs.values():
        locator = p["externalRefs"][0]["referenceLocator"]
        assert PackageURL.from_string(locator).to_string() == locator
    contains = {r["relatedSpdxElement"] for r in sbom["relationships"] if r["relationshipType"] == "CONTAINS"}
    assert contains == {p["SPDXID"] for p in debs.values()}
    assert {"spdxElementId": "SPDXRef-image", "relationshipType": "DESCENDANT_OF",
            "relatedSpdxElement": "SPDXRef-image-ancestor-1"} in sbom["relationships"]


def test_provenance_is_a_valid_slsa_statement(audited):
    from google.protobuf import json_format
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
    from in_toto_attestation.v1.statement import Statement
    from in_toto_attestation.v1.statement_pb2 import Statement as StatementProto

    text = (audited.dist / "images.app/app.intoto.json").read_text()
    statement = Statement.copy_from_pb(json_format.Parse(text, StatementProto()))
    statement.validate()
    value = json.loads(text)
    predicate = json_format.ParseDict(value["predicate"], provenance_pb2.Provenance())  # unknown fields refused
    for dependency in predicate.build_definition.resolved_dependencies:
        ResourceDescriptor.copy_from_pb(dependency).validate()
    assert value["predicateType"] == "https://slsa.dev/provenance/v1"
    digest = layout_manifest_digest(audited, "app")
    assert value["subject"] == [{"name": "registry.example:5000/team/app", "digest": {"sha256": digest[7:]}}]


def test_provenance_records_inputs_builder_and_compressor(audited):
    value = json.loads((audited.dist / "images.app/app.intoto.json").read_text())
    definition = value["predicate"]["buildDefinition"]
    dependencies = definition["resolvedDependencies"]
    assert dependencies[0] == {"name": "source", "annotations": {"revision": "unknown"}}  # no git in the fixture
    lock_bytes = (audited.repo / "3rdparty/debian/lock.yaml").read_bytes()
    assert {"name": "3rdparty/debian/lock.yaml", "digest": {"sha256": hashlib.sha256(lock_bytes).hexdigest()}} \
        in dependencies
    debs = {d["name"]: d for d in dependencies if d["name"].startswith("pkg:deb/")}
    tool_deb = debs["pkg:deb/debian/tool@1.0-1?arch=amd64&distro=debian-12"]
    assert tool_deb["digest"]["sha256"] == hashlib.sha256(audited.apt.debs["tool"].read_bytes()).hexdigest()
    assert tool_deb["uri"].startswith(audited.apt.url)
    compression = definition["internalParameters"]["compression"]
    assert compression["format"] == "gzip" and compression["implementation"] == "zlib"
    assert compression["level"] == 6 and compression["version"].count(".") >= 2
    builder = value["predicate"]["runDetails"]["builder"]
    assert builder["version"]["pants"] == "2.17.1" and len(builder["version"]["oci-backend"]) == 64
    manifest = json.loads((audited.dist / "images.app/app/blobs/sha256" / layout_manifest_digest(audited, "app")[7:])
                          .read_text())
    byproducts = value["predicate"]["runDetails"]["byproducts"]
    assert [b["digest"]["sha256"] for b in byproducts] == \
        [manifest["config"]["digest"][7:], *(layer["digest"][7:] for layer in manifest["layers"])]
    assert "startedOn" not in json.dumps(value) and "metadata" not in value["predicate"]["runDetails"]


def test_image_report_sizes_why_and_graph(audited):
    report = json.loads((audited.dist / "image-report/report.json").read_text())
    images = {i["address"]: i for i in report["images"]}
    base, app, plain = images["images/base:base"], images["images/app:app"], images["images/plain:plain"]
    assert app["total_bytes"] == base["total_bytes"] + app["own_bytes"]
    assert plain["total_bytes"] == app["total_bytes"] + plain["own_bytes"]
    assert app["shared_bytes"] == app["total_bytes"]  # base's layers (shared with siblings), its own (with plain)
    assert plain["shared_bytes"] == app["total_bytes"]
    assert images["images/builder:builder"]["own_packages"] == 3  # gcc-12, cpp-12, libssl-dev (openssl: base)
    layers = {}
    for image in ("base", "app", "builder", "config", "plain"):
        manifest = json.loads((audited.dist / f"images.{image}/{image}/blobs/sha256" /
                               layout_manifest_digest(audited, image)[7:]).read_text())
        layers.update({layer["digest"]: layer["size"] for layer in manifest["layers"]})
    assert report["set"]["unique_bytes"] == sum(layers.values())
    # Siblings share package layers too (python3 and its dependencies in app and config), not just their parent's.
    assert report["set"]["unique_bytes"] < base["total_bytes"] + sum(
        i["own_bytes"] for a, i in images.items() if a != "images/base:base")
    assert report["why"]["cpp-12"]["images/builder:builder"] == {"root_image": "images/builder:builder",
                                                                   "path": ["gcc-12", "cpp-12"]}
    assert "images/builder:builder declares gcc-12: gcc-12 -> cpp-12" in audited.output
    assert set(report["why"]["libc6"]) == set(images)
    tree = (audited.dist / "image-report/tree.txt").read_text()
    assert tree.splitlines()[0].startswith("images/base:base") and "└── images/plain:plain" in tree
    svg = (audited.dist / "image-report/tree.svg").read_text() if shutil.which("dot") else None
    if svg is not None:
        assert svg.lstrip().startswith("<?xml") and "images/builder:builder" in svg and "shares" in svg


def test_lint_reports_violations_with_fixes(audited):
    run = audited.pants("lint", "::")
    assert run.returncode != 0
    out = run.output
    assert "images/app:app: ok" in out and "images/config:config: ok" in out  # allowed by policy_allow
    assert "error [compilers] gcc-12 12.2.0-14 (added by images/builder:builder)" in out
    assert "error [compilers] cpp-12 12.2.0-14" in out
    assert "why: images/builder:builder declares gcc-12: gcc-12 -> cpp-12" in out
    assert "error [dev-packages] libssl-dev 3.0.11-1" in out
    assert 'add `policy_allow=["compilers"]` to images/builder:builder' in out
    assert "error [root-user] runs `/bin/sh` as root (no `user` set)" in out
    assert "images/plain:plain: 2 violations" in out
    assert "error [package-budget]" in out and "error [size-budget]" in out
    assert "info  [setuid] /usr/bin/tool-setuid (tool)" in out


def test_update_cost_counts_only_changed_layers(audited, tmp_path):
    root, url, keys = audited.served
    old_lock = tmp_path / "old-lock.yaml"
    shutil.copy2(audited.repo / "3rdparty/debian/lock.yaml", old_lock)
    publish(root, url, keys, packages(tool_version="1.0-2"))
    lock = audited.pants("generate-lockfiles", "--resolve=debian")
    assert lock.returncode == 0, lock.output
    run = audited.pants("update-cost", f"--update-cost-old-lock={old_lock}", "::")
    assert run.returncode == 0, run.output
    report = json.loads((audited.dist / "update-cost/report.json").read_text())
    images = {i["address"]: i for i in report["images"]}
    assert images["images/base:base"]["layered_bytes"] == 0 and images["images/base:base"]["run_style_bytes"] == 0
    pulled = images["images/app:app"]["pulled_layers"]
    assert [p["created_by"].split()[0] for p in pulled] == ["packages", "system"]
    assert "tool=1.0-2" in pulled[0]["created_by"]
    assert images["images/plain:plain"]["pulled_layers"] == pulled  # its own files layer is unchanged
    assert images["images/app:app"]["layered_bytes"] < images["images/app:app"]["run_style_bytes"]
    assert report["set"]["layered_bytes"] == images["images/app:app"]["layered_bytes"]
    assert images["images/builder:builder"]["layered_bytes"] == 0
    assert "upgraded    tool 1.0-1 -> 1.0-2" in run.output

"""The zero-day drill on a fixture: a library's security update, from the signed mirror to published images.

A signed mirror on 127.0.0.1 with a `fixture` and a `fixture-security` suite, and Debian's
docker-registry on 127.0.0.1, both started and stopped here. The set is published once (the
immutable tag of the first lock and `latest`); then libzd1 1.0-1+deb12u1, whose changelog names
two CVEs, appears in fixture-security and `ci/security_refresh.py` runs the response. Offline,
five Pants runs; it runs by default, under the markers `e2e` and `zeroday`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from aptrepo import DEFAULT_PACKAGES, AptRepo, DebSpec, FileSpec, serve_directory
from e2e_repo import REPO_ROOT, make_repo, run_pants
from services import docker_registry

pytestmark = [pytest.mark.e2e, pytest.mark.zeroday]

OLD_CVE = "CVE-2025-1111"  # fixed by 1.0-1, already in the images: must not be reported
NEW_CVES = ["CVE-2026-0042", "CVE-2026-12345"]

CHANGELOG_1 = f"""zd (1.0-1) unstable; urgency=medium

  * Initial release, with the fix for {OLD_CVE}.

 -- Test Maintainer <test@example.invalid>  Sat, 01 Jan 2000 00:00:00 +0000
"""
CHANGELOG_2 = f"""zd (1.0-1+deb12u1) fixture-security; urgency=high

  * Fix {NEW_CVES[1]}: heap overflow in the parser.
  * Fix {NEW_CVES[0]}: use after free (closes: #1).

 -- Test Maintainer <test@example.invalid>  Sun, 02 Jan 2000 00:00:00 +0000

""" + CHANGELOG_1


def libzd(version: str, changelog: str) -> DebSpec:
    return DebSpec("libzd1", version, source=f"zd ({version})", multi_arch="same", depends="libc6", files=(
        FileSpec("/usr/lib/x86_64-linux-gnu/libzd.so.1", f"\x7fELF libzd {version}\n".encode()),
        FileSpec("/usr/share/doc/libzd1/changelog.Debian.gz", gzip.compress(changelog.encode(), mtime=0)),
    ))


ZDTOOL = DebSpec("zdtool", "1.0-1", depends="libzd1 (>= 1.0)", source="zd (1.0-1)",
                 files=(FileSpec("/usr/bin/zdtool", b"#!/bin/sh\necho zd\n", 0o755),))

IMAGES = {
    "images/users.yaml": "groups: {}\nusers: {}\n",
    "images/base/BUILD": 'oci_image(essential=True, packages=["mawk"])\n',
    "images/app/BUILD": 'oci_image(parent="//images/base", packages=["tool"])\n',
    "images/secure/BUILD": 'oci_image(parent="//images/base", packages=["zdtool"])\n',
    "images/secure-child/BUILD": 'oci_image(parent="//images/secure", packages=["gawk"])\n',
}
IMAGE_NAMES = ("base", "app", "secure", "secure-child")
AFFECTED = {"images/secure:secure", "images/secure-child:secure-child"}


def sources_yaml(url: str, keyring: str) -> str:
    return yaml.safe_dump({"architectures": ["amd64"], "sources": [{
        "name": "fixture", "url": url, "suites": ["fixture", "fixture-security"], "components": ["main"],
        "keyring": keyring}]})


def immutable_tag(lock_file: Path) -> str:
    lock = yaml.safe_load(lock_file.read_text())
    return f"{lock['snapshot_timestamp'][:8]}-{hashlib.sha256(lock_file.read_bytes()).hexdigest()[:12]}"


def registry_digest(registry: str, reference: str) -> str | None:
    result = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{registry}/{reference}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return "sha256:" + hashlib.sha256(result.stdout).hexdigest() if result.returncode == 0 else None


def history(repo: Path, name: str) -> list[str]:
    layout = repo / "dist" / f"images.{name}" / name
    (entry,) = json.loads((layout / "index.json").read_text())["manifests"]
    manifest = json.loads((layout / "blobs/sha256" / entry["digest"][7:]).read_text())
    config = json.loads((layout / "blobs/sha256" / manifest["config"]["digest"][7:]).read_text())
    return [h.get("created_by", "") for h in config["history"]]


@dataclass(frozen=True)
class Drill:
    repo: Path
    registry: str  # host:port
    store: Path
    env: dict
    first_tag: str
    before: dict  # image name -> digest of zd/<name>:latest before the response
    report: dict  # report.json of the response
    report_dir: Path
    output: str


def without_pants_variables() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("PANTS_")}


@pytest.fixture(scope="module")
def drill(tmp_path_factory, apt_keys):
    """The set published from the first lock, then the response to libzd1's security update."""
    work = tmp_path_factory.mktemp("zeroday")
    mirror = work / "mirror"
    mirror.mkdir()
    with serve_directory(mirror) as url, docker_registry(work / "registry") as registry:
        def suite(name: str, packages) -> AptRepo:
            return AptRepo(root=mirror, suite=name, key=apt_keys.trusted, packages=tuple(packages),
                           url=url).build(apt_keys.deb_cache)

        suite("fixture", [*DEFAULT_PACKAGES, libzd("1.0-1", CHANGELOG_1), ZDTOOL])
        suite("fixture-security", [])
        repo = make_repo(work / "repo", {**IMAGES, "3rdparty/debian/sources.yaml":
                                         sources_yaml(url, apt_keys.trusted.keyring)})
        (repo / "ci").mkdir()
        shutil.copy2(REPO_ROOT / "ci/security_refresh.py", repo / "ci/security_refresh.py")
        env = {"XDG_CACHE_HOME": str(work / "xdg"), "PANTS_DEBIAN_DEB_CACHE": str(work / "debs")}
        store = work / "store"
        set_options = (f"--oci-publish-registries=['{registry.address}']", "--oci-publish-namespace=zd",
                       f"--oci-publish-insecure-registries=['{registry.address}']")

        lock = run_pants(repo, "generate-lockfiles", "--resolve=debian", store=store, env=env)
        assert lock.returncode == 0, lock.output
        first_tag = immutable_tag(repo / "3rdparty/debian/lock.yaml")
        first = run_pants(repo, *set_options, f"--oci-publish-immutable-tag={first_tag}", "package", "publish", "::",
                          store=store, env=env)
        assert first.returncode == 0, first.output
        before = {name: registry_digest(registry.address, f"zd/{name}:latest") for name in IMAGE_NAMES}
        assert all(before.values()), first.output

        # Debian's security team publishes the fixed library.
        suite("fixture-security", [libzd("1.0-1+deb12u1", CHANGELOG_2)])
        report_dir = work / "report"
        response = subprocess.run(
            [sys.executable, "ci/security_refresh.py", "--registry", registry.address, "--namespace", "zd",
             "--insecure-registry", registry.address, "--skip-service-checks", "--report-dir", str(report_dir)],
            cwd=repo, env={**without_pants_variables(), **env, "PANTS_LOCAL_STORE_DIR": str(store),
                           "PANTS_NAMED_CACHES_DIR": f"{store}-named"},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
        assert response.returncode == 0, response.stdout
        report = json.loads((report_dir / "report.json").read_text())
        yield Drill(repo, registry.address, store, env, first_tag, before, report, report_dir, response.stdout)


def published_history(drill: Drill, name: str) -> list[str]:
    config = subprocess.run(["skopeo", "inspect", "--config", "--tls-verify=false",
                             f"docker://{drill.registry}/zd/{name}:latest"], stdout=subprocess.PIPE, check=True).stdout
    return [h.get("created_by", "") for h in json.loads(config)["history"]]


def test_the_report_names_the_cves_for_exactly_the_images_holding_the_library(drill):
    report = drill.report
    assert report["ok"], drill.output
    assert {image["address"] for image in report["images"]} == AFFECTED
    assert set(report["unaffected"]) == {"images/base:base", "images/app:app"}
    for image in report["images"]:
        (package,) = image["packages"]
        assert (package["name"], package["old_version"], package["new_version"]) == ("libzd1", "1.0-1",
                                                                                    "1.0-1+deb12u1")
        assert package["cves"] == NEW_CVES and image["cves"] == NEW_CVES
        assert package["changelog_entries"] == ["1.0-1+deb12u1"]
    assert OLD_CVE not in json.dumps(report)
    assert report["immutable_tag"] == immutable_tag(drill.repo / "3rdparty/debian/lock.yaml") != drill.first_tag
    markdown = (drill.report_dir / "report.md").read_text()
    for address in AFFECTED:
        assert f"| {address} | libzd1 1.0-1 → 1.0-1+deb12u1 | {' '.join(NEW_CVES)} |" in markdown
    assert [step["name"] for step in report["steps"]] == [
        "refresh the lock", "rebuild and analyse", "read the registry", "service checks", "publish",
        "verify the registry"]
    assert all(step["ok"] for step in report["steps"])
    assert report["steps"][0]["detail"] == "changed: libzd1 1.0-1 -> 1.0-1+deb12u1"
    assert report["steps"][3]["detail"] == "skipped (--skip-service-checks)"


def test_only_the_layers_holding_the_library_were_rebuilt(drill):
    ran = drill.report["processes_ran"]
    package_layers = [p for p in ran if p.startswith("Build package layer")]
    holding = {h for name in ("secure", "secure-child") for h in published_history(drill, name) if "libzd1=" in h}
    assert len(holding) == 1 and len(package_layers) == len(holding), ran
    assert all("libzd1" in p for p in package_layers), ran
    assert {p for p in ran if p.startswith("Build system layer")} == {
        f"Build system layer of {address}" for address in AFFECTED}
    assert {p.split(" (")[0] for p in ran if p.startswith("Assemble")} == {f"Assemble {a}" for a in AFFECTED}
    for image in drill.report["images"]:
        pulled = [layer["created_by"] for layer in image["pulled_layers"]]
        assert any("libzd1=1.0-1+deb12u1" in c for c in pulled) or image["address"] != "images/secure:secure"
        assert image["pull_bytes"] == sum(layer["size"] for layer in image["pulled_layers"]) > 0


def test_old_tags_still_resolve_and_the_new_tags_name_the_new_digests(drill):
    new_tag = drill.report["immutable_tag"]
    new = {image["address"].rsplit(":", 1)[1]: image for image in drill.report["images"]}
    for name in IMAGE_NAMES:
        assert registry_digest(drill.registry, f"zd/{name}:{drill.first_tag}") == drill.before[name]
        if name in new:
            digest = new[name]["new_digest"]
            assert digest != drill.before[name]
            assert registry_digest(drill.registry, f"zd/{name}:latest") == digest
            assert registry_digest(drill.registry, f"zd/{name}:{new_tag}") == digest
            assert new[name]["old_digest"] == {f"{drill.registry}/zd/{name}:latest": drill.before[name]}
        else:
            assert registry_digest(drill.registry, f"zd/{name}:latest") == drill.before[name]
            assert registry_digest(drill.registry, f"zd/{name}:{new_tag}") is None


def test_repro_check_confirms_the_published_digests_from_sources(drill):
    tag = drill.report["immutable_tag"]
    expect = [f"--repro-check-expect=images/{name}:{name}={registry_digest(drill.registry, f'zd/{name}:{tag}')}"
              for name in ("secure", "secure-child")]
    run = run_pants(drill.repo, "--no-local-cache", "repro-check", *expect, "images/secure", "images/secure-child",
                    store=drill.store, env=drill.env)
    assert run.returncode == 0, run.output
    assert run.output.count("confirmed") == 2 and "2 of 2 images reproduced." in run.output


def test_an_immutable_tag_is_never_moved(drill):
    tag = drill.report["immutable_tag"]
    secure = registry_digest(drill.registry, f"zd/secure:{tag}")
    other_image = drill.repo / "dist/images.app/app"  # another digest, as a changed build would have
    push = subprocess.run(
        [sys.executable, "-m", "oci.actions.push_image", "--skopeo", shutil.which("skopeo"), "--layout",
         str(other_image), "--tag", "latest", "--registry", drill.registry, "--repository", "zd/secure",
         "--insecure", f"--immutable-tag={tag}"],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "rules")}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    assert push.returncode == 1, push.stdout
    assert f"the immutable tag {drill.registry}/zd/secure:{tag} already names {secure}" in push.stdout
    assert registry_digest(drill.registry, "zd/secure:latest") == secure  # the floating tag did not move

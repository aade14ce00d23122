"""A mirror that moves on: the lock's version vanishes as Debian drops it; the .deb archive keeps the build going.

Offline (a signed fixture mirror and Debian's docker-registry, both on 127.0.0.1) and about a
minute and a half: it runs by default, under the markers `e2e` and `archive`.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from aptrepo import DEFAULT_PACKAGES, AptRepo, serve_directory
from e2e_repo import layout_files, make_repo, run_pants
from services import docker_registry

pytestmark = [pytest.mark.e2e, pytest.mark.archive]

IMAGES = {
    "images/users.yaml": "groups: {}\nusers: {}\n",
    "images/base/BUILD": 'oci_image(essential=True, packages=["mawk"])\n',
    "images/app/BUILD": 'oci_image(parent="//images/base", packages=["tool"])\n',
}


def sources_yaml(repo: AptRepo, keyring: str) -> str:
    return yaml.safe_dump({"architectures": ["amd64"], "sources": [{
        "name": "fixture", "url": repo.url, "suites": [repo.suite], "components": ["main"], "keyring": keyring}]})


def publish(root: Path, url: str, keys, tool_version: str) -> AptRepo:
    packages = [dataclasses.replace(p, version=tool_version) if p.name == "tool" else p for p in DEFAULT_PACKAGES]
    return AptRepo(root=root, suite="fixture", key=keys.trusted, packages=tuple(packages), url=url).build(keys.deb_cache)


def test_a_mirror_that_moves_on_builds_from_the_archive_with_the_same_digests(tmp_path, apt_keys):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with serve_directory(mirror) as url, docker_registry(tmp_path / "registry") as registry:
        apt = publish(mirror, url, apt_keys, "1.0-1")
        repo = make_repo(tmp_path / "repo", {**IMAGES, "3rdparty/debian/sources.yaml":
                                             sources_yaml(apt, apt_keys.trusted.keyring)})
        env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
        archive = f"--debian-archive={registry.address}/debian/archive"
        lock = run_pants(repo, "generate-lockfiles", "--resolve=debian", store=tmp_path / "s0", env=env)
        assert lock.returncode == 0, lock.output
        locked = yaml.safe_load((repo / "3rdparty/debian/lock.yaml").read_text())
        assert re.fullmatch(r"\d{8}T\d{6}Z", locked["snapshot_timestamp"])
        tool = locked["architectures"]["amd64"]["tool"]

        first = run_pants(repo, archive, f"--debian-deb-cache={tmp_path / 'debs1'}", "archive-debs", "package", "::",
                          store=tmp_path / "s1", env=env)
        assert first.returncode == 0, first.output
        count = len(locked["architectures"]["amd64"])
        assert f"Archived the {count} .debs of 3rdparty/debian/lock.yaml in {registry.address}/debian/archive: " \
               f"{count} pushed" in first.output
        built = layout_files(repo / "dist")

        # Debian publishes tool 1.1-1 and deletes the locked 1.0-1 from the pool.
        publish(mirror, url, apt_keys, "1.1-1")
        (mirror / tool["url"]).unlink()

        # A fresh clone (empty store, empty .deb cache) without the archive: a clear error.
        without = run_pants(repo, "--debian-fetch-order=['cache', 'mirror']", f"--debian-deb-cache={tmp_path / 'debs2'}",
                            "package", "::", store=tmp_path / "s2", env=env)
        assert without.returncode != 0
        assert f"tool {tool['version']} (amd64, sha256 {tool['sha256']}" in without.output
        assert f"{url}/{tool['url']}: HTTP 404" in without.output
        assert "Debian keeps only the newest version" in without.output and "pants archive-debs" in without.output
        assert "IntrinsicError" not in without.output and "Traceback" not in without.output

        # With the archive: the same bytes as the first build; a damaged cached .deb heals on the way.
        damaged = tmp_path / "debs3" / f"{locked['architectures']['amd64']['libc6']['sha256']}.deb"
        damaged.parent.mkdir()
        damaged.write_bytes(b"!<arch>\nnot libc6\n")
        (repo / "dist").rename(tmp_path / "dist1")
        again = run_pants(repo, archive, f"--debian-deb-cache={tmp_path / 'debs3'}", "archive-debs", "package", "::",
                          store=tmp_path / "s3", env=env)
        assert again.returncode == 0, again.output
        assert f"0 pushed (0.0 MB), {count} already there" in again.output
        assert f"from archive {registry.address}/debian/archive" in again.output
        assert re.search(r"libc6 2\.36-9: the cached \w+\.deb did not match the lock; moved aside", again.output)
        assert layout_files(repo / "dist") == built

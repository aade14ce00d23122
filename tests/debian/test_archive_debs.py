"""The .deb archive in an OCI registry: pushed once, skipped after, read back by sha256 by the fetch."""

from __future__ import annotations

import base64
import json
import sys
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "rules"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from debian.actions.archive_debs import DEB_MEDIA_TYPE, ArchivedDeb, ArchiveSpec, push_all  # noqa: E402
from debian.actions.fetch_debs import fetch_all, failure_message, report  # noqa: E402
from debian.actions.registry import RegistryClient, RegistryError, parse_archive  # noqa: E402
from services import docker_registry, free_port  # noqa: E402
from test_fetch_debs import make_debs, spec_for  # noqa: E402

# bcrypt of "publish-secret" for user ci, as in tests/oci/test_publish.py (docker-registry wants bcrypt)
HTPASSWD = "ci:$2b$04$zp.aZzaGD1H0.T3MFTQxjOSfgPzQO0kGCn5dMuHIRYkewhFKoqjrm\n"


def archive_spec(made, sandbox: Path, archive: str) -> ArchiveSpec:
    debs = []
    for deb, content in made:
        (sandbox / deb.filename).parent.mkdir(parents=True, exist_ok=True)
        (sandbox / deb.filename).write_bytes(content)
        debs.append(ArchivedDeb(str(sandbox / deb.filename), deb.sha256, deb.size, {
            "org.debian.package": deb.name, "org.debian.version": deb.version,
            "org.debian.architecture": deb.architecture, "org.debian.suite": "fixture/fixture"}))
    return ArchiveSpec(archive, "lock-test", {"dev.oci-pants.lock.sha256": "0" * 64}, tuple(debs), 10.0)


def test_push_is_idempotent_and_the_fetch_reads_the_archive(tmp_path):
    made = make_debs(3)
    with docker_registry(tmp_path / "registry") as registry:
        archive = f"{registry.address}/debian/archive"
        spec = archive_spec(made, tmp_path / "sandbox", archive)
        client = RegistryClient(parse_archive(archive), 10.0)
        first = push_all(spec, client)
        assert (first["pushed"], first["skipped"]) == (3, 0)
        again = push_all(spec, client)
        assert (again["pushed"], again["skipped"], again["manifest"]) == (0, 3, first["manifest"])
        request = urllib.request.Request(f"http://{archive.replace('/debian', '/v2/debian', 1)}/manifests/lock-test",
                                         headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        manifest = json.load(urllib.request.urlopen(request))
        assert [layer["mediaType"] for layer in manifest["layers"]] == [DEB_MEDIA_TYPE] * 3
        assert manifest["layers"][0]["annotations"]["org.debian.package"] == "pkg0"
        # The mirror is gone; the archive serves every .deb, checked against the lock.
        fetch = spec_for(made, tmp_path / "cache", f"http://127.0.0.1:{free_port()}", archive=archive)
        outcomes = fetch_all(fetch, str(tmp_path / "out"))
    assert report(outcomes)["served"] == {f"archive {archive}": 3}
    for deb, content in made:
        assert (tmp_path / "out" / deb.filename).read_bytes() == content
        assert (tmp_path / "cache" / f"{deb.sha256}.deb").read_bytes() == content


def test_a_registry_refusing_access_is_named_with_the_fix(tmp_path, monkeypatch):
    made = make_debs(1)
    with docker_registry(tmp_path / "registry", htpasswd=HTPASSWD) as registry:
        # After the start: docker-registry reads REGISTRY_* variables as its configuration.
        monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "no-auth.json"))
        archive = f"{registry.address}/debs"
        fetch = spec_for(made, None, f"http://127.0.0.1:{free_port()}", archive=archive)
        outcomes = fetch_all(fetch, str(tmp_path / "out"))
        message = failure_message(outcomes, fetch)
        spec = archive_spec(made, tmp_path / "sandbox", archive)
        with pytest.raises(RegistryError, match=r"pushing .* to 127.0.0.1:\d+/debs failed: HTTP 401 .*skopeo login"):
            push_all(spec, RegistryClient(parse_archive(archive), 10.0))
        # With the credentials `skopeo login` would write, both directions work.
        auth = base64.b64encode(b"ci:publish-secret").decode()
        (tmp_path / "auth.json").write_text(json.dumps({"auths": {registry.address: {"auth": auth}}}))
        monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "auth.json"))
        assert push_all(spec, RegistryClient(parse_archive(archive), 10.0))["pushed"] == 1
        assert report(fetch_all(fetch, str(tmp_path / "out2")))["served"] == {f"archive {archive}": 1}
    assert f"/v2/debs/blobs/sha256:{made[0][0].sha256}: HTTP 401" in message
    assert "refused access: log in" in message


def test_archive_names_are_checked():
    assert parse_archive("127.0.0.1:5000/a/b").base == "http://127.0.0.1:5000"
    assert parse_archive("registry.example.org/debs").base == "https://registry.example.org"
    with pytest.raises(RegistryError, match="host\\[:port\\]/repository"):
        parse_archive("registry.example.org")

"""End to end: `pants publish ::` pushes the e2e repository's images to a loopback docker-registry."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from e2e_repo import IMAGE_DIRS, IMAGES, make_repo, run_pants
from services import docker_registry, free_port

pytestmark = pytest.mark.e2e

# bcrypt (cost 4) of "publish-secret", made once with the bcrypt package: docker-registry's htpasswd
# auth takes bcrypt only, and a fixed hash keeps bcrypt out of the test dependencies.
HTPASSWD = "ci:$2b$04$zp.aZzaGD1H0.T3MFTQxjOSfgPzQO0kGCn5dMuHIRYkewhFKoqjrm\n"
CREDENTIALS = "ci:publish-secret"

# A multi-platform image next to the e2e ones: its tag points at an image index.
MULTI = {"images/multi/BUILD": """\
image_files(name="etc", sources=["motd"], destination="/etc")
oci_image(files=[":etc"], platforms=["linux/amd64", "linux/arm64"], tags=["v1"])
""", "images/multi/motd": "on two platforms\n"}
IMAGE_LAYOUTS = {**IMAGE_DIRS, "multi": "images.multi/multi"}


def set_registries(repo: Path, registries: list[str]) -> None:
    """Every oci_image under images/ pushes to `registries` (a BUILD-file default, no target edits)."""
    (repo / "images/BUILD").write_text(f"__defaults__({{'oci_image': dict(registries={registries!r})}})\n")


def insecure(*registries: str) -> str:
    return f"--oci-publish-insecure-registries={list(registries)!r}"


def dist_tags(repo: Path, image: str) -> dict[str, str]:
    """tag -> manifest digest, from the packaged layout's index.json."""
    index = json.loads((repo / "dist" / IMAGE_LAYOUTS[image] / "index.json").read_text())
    return {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"] for m in index["manifests"]}


def registry_digest(reference: str, *extra: str) -> str:
    result = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", *extra, f"docker://{reference}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    return "sha256:" + hashlib.sha256(result.stdout).hexdigest()


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with docker_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="module")
def secured_registry(tmp_path_factory):
    with docker_registry(tmp_path_factory.mktemp("secured-registry"), htpasswd=HTPASSWD) as reg:
        yield reg


@pytest.fixture(scope="module")
def published(tmp_path_factory, registry):
    """One `./pants package publish ::`: dist/ and the registry from the same run."""
    base = tmp_path_factory.mktemp("publish")
    repo = make_repo(base / "repo", {**IMAGES, **MULTI})
    set_registries(repo, [registry.address])
    run = run_pants(repo, insecure(registry.address), "package", "publish", "::", store=base / "store")
    assert run.returncode == 0, run.output
    return repo, run, base / "store"


def test_every_tag_is_published_with_the_built_digest(published, registry):
    repo, run, _ = published
    for image in IMAGE_LAYOUTS:
        for tag, digest in dist_tags(repo, image).items():
            reference = f"{registry.address}/{image}:{tag}"
            assert f"✓ {reference} published." in run.output
            assert f"Pushed {reference}@{digest}" in run.output
            assert registry_digest(reference) == digest


def test_pulled_image_is_the_packaged_one(published, registry, tmp_path):
    repo, _, _ = published
    pulled = tmp_path / "pulled"
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{registry.address}/worker:latest",
                    f"oci:{pulled}:latest"], check=True)
    (digest,) = [m["digest"] for m in json.loads((pulled / "index.json").read_text())["manifests"]]
    assert digest == dist_tags(repo, "worker")["latest"]
    packaged = repo / "dist" / IMAGE_DIRS["worker"] / "blobs/sha256"
    for blob in (pulled / "blobs/sha256").iterdir():
        assert blob.read_bytes() == (packaged / blob.name).read_bytes()


def test_multi_platform_image_is_published_with_every_platform(published, registry):
    repo, _, _ = published
    reference = f"{registry.address}/multi:v1"
    assert registry_digest(reference) == dist_tags(repo, "multi")["v1"]  # the image index itself
    for architecture in ("amd64", "arm64"):
        config = subprocess.run(["skopeo", "inspect", "--config", "--tls-verify=false",
                                 f"--override-arch={architecture}", f"docker://{reference}"],
                                stdout=subprocess.PIPE, check=True).stdout
        assert json.loads(config)["architecture"] == architecture


def test_second_publish_succeeds_without_uploading_blobs(published, registry):
    repo, _, store = published
    uploads = registry.blob_uploads()
    again = run_pants(repo, insecure(registry.address), "publish", "::", store=store)
    assert again.returncode == 0, again.output
    assert again.output.count(" published.") == sum(len(dist_tags(repo, image)) for image in IMAGE_LAYOUTS)
    assert again.processes == set()  # nothing rebuilt
    assert registry.blob_uploads() == uploads  # skopeo found every blob in the registry


def test_failed_pushes_exit_non_zero_and_name_registry_and_tags(published, registry, secured_registry):
    repo, _, store = published
    down = f"127.0.0.1:{free_port()}"
    set_registries(repo, [registry.address, down, secured_registry.address])
    try:
        run = run_pants(repo, insecure(registry.address, down, secured_registry.address),
                        "--oci-publish-retry-times=0", "publish", "images/app", store=store)
    finally:
        set_registries(repo, [registry.address])
    assert run.returncode != 0, run.output
    for tag in ("latest", "1.0"):
        assert f"✓ {registry.address}/app:{tag} published." in run.output
        assert f"✕ {down}/app:{tag} failed." in run.output
        assert f"✕ {secured_registry.address}/app:{tag} failed." in run.output
    assert f"cannot reach the registry {down}" in run.output
    assert f"the registry {secured_registry.address} refused the push: missing or wrong credentials" in run.output


def test_credentials_come_from_registry_auth_file(published, registry, secured_registry, tmp_path):
    repo, _, store = published
    auth = base64.b64encode(CREDENTIALS.encode()).decode()
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"auths": {secured_registry.address: {"auth": auth}}}))
    set_registries(repo, [secured_registry.address])
    try:
        run = run_pants(repo, insecure(secured_registry.address), "publish", "images/tool", store=store,
                        env={"REGISTRY_AUTH_FILE": str(auth_file)})
    finally:
        set_registries(repo, [registry.address])
    assert run.returncode == 0, run.output
    reference = f"{secured_registry.address}/tool:latest"
    assert f"✓ {reference} published." in run.output
    assert registry_digest(reference, f"--creds={CREDENTIALS}") == dist_tags(repo, "tool")["latest"]

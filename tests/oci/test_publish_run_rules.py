"""RuleRunner tests of the publish, run and tarball rules (no registry, no podman run)."""

from __future__ import annotations

import io
import json
import re
import tarfile

import pytest
from pants.core.goals.package import BuiltPackage, BuiltPackageArtifact
from pants.core.goals.publish import PublishProcesses
from pants.core.goals.run import RunRequest
from pants.core.subsystems import python_bootstrap
from pants.core.target_types import FilesGeneratorTarget, FileTarget
from pants.core.util_rules import source_files, system_binaries
from pants.engine.addresses import Address
from pants.engine.fs import EMPTY_DIGEST, Digest, DigestContents
from pants.engine.internals.scheduler import ExecutionError
from pants.testutil.rule_runner import QueryRule, RuleRunner

import plugin as register
from oci.actions.push_image import diagnose
from oci.publish import OciImagePublishFieldSet, PublishOciImageRequest
from oci.run import OciImageRunFieldSet
from oci.tarball import OciImageTarballFieldSet


@pytest.fixture
def rule_runner() -> RuleRunner:
    runner = RuleRunner(
        rules=[
            *register.rules(),
            *python_bootstrap.rules(),
            *source_files.rules(),
            *system_binaries.rules(),
            QueryRule(PublishProcesses, [PublishOciImageRequest]),
            QueryRule(RunRequest, [OciImageRunFieldSet]),
            QueryRule(BuiltPackage, [OciImageTarballFieldSet]),
            QueryRule(DigestContents, [Digest]),
        ],
        target_types=[*register.target_types(), FileTarget, FilesGeneratorTarget],
    )
    runner.set_options(["--python-bootstrap-search-path=['/usr/bin']"], env_inherit={"PATH"})
    return runner


IMAGE_BUILD = """
file(name="motd", source="motd")
oci_image(name="app", files=[":motd"], registries=["registry.example:5000", "mirror.example"],
          tags=["latest", "1.0"])
oci_image(name="local", files=[":motd"])
oci_image(name="Bad", files=[":motd"], registries=["registry.example"])
oci_image_tarball(name="docker", image=":app")
oci_image_tarball(name="named", image=":app", repo_tags=["registry.example/team/app:v1"])
oci_image_tarball(name="oci", image=":app", format="oci-archive")
oci_image_tarball(name="oci-named", image=":app", format="oci-archive", repo_tags=["app:v1"])
oci_image_tarball(name="not-an-image", image=":motd")
"""


def publish(rule_runner: RuleRunner, name: str, *options: str) -> PublishProcesses:
    rule_runner.set_options(["--python-bootstrap-search-path=['/usr/bin']", *options], env_inherit={"PATH"})
    target = rule_runner.get_target(Address("img", target_name=name))
    package = BuiltPackage(EMPTY_DIGEST, (BuiltPackageArtifact(f"img/{name}"),))
    request = PublishOciImageRequest(OciImagePublishFieldSet.create(target), (package,))
    return rule_runner.request(PublishProcesses, [request])


def test_publish_pushes_each_tag_to_each_registry(rule_runner):
    rule_runner.write_files({"img/BUILD": IMAGE_BUILD, "img/motd": "hi\n"})
    jobs = publish(rule_runner, "app", "--oci-publish-insecure-registries=['registry.example:5000']")
    assert [job.names for job in jobs] == [
        ("registry.example:5000/app:latest",), ("registry.example:5000/app:1.0",),
        ("mirror.example/app:latest",), ("mirror.example/app:1.0",),
    ]
    argv = [job.process.process.argv for job in jobs]
    assert all("oci.actions.push_image" in args and "--layout" in args for args in argv)
    assert ["--insecure" in args for args in argv] == [True, True, False, False]
    assert argv[1][argv[1].index("--tag") + 1] == "1.0"


def test_publish_skips_an_image_without_registries(rule_runner):
    rule_runner.write_files({"img/BUILD": IMAGE_BUILD, "img/motd": "hi\n"})
    (job,) = publish(rule_runner, "local")
    assert job.process is None and "no `registries`" in (job.description or "")


def test_publish_refuses_a_repository_registries_refuse(rule_runner):
    rule_runner.write_files({"img/BUILD": IMAGE_BUILD, "img/motd": "hi\n"})
    with pytest.raises(ExecutionError, match="repository 'Bad'"):
        publish(rule_runner, "Bad")


def test_set_registries_and_namespace_apply_to_images_without_their_own(rule_runner):
    rule_runner.write_files({"img/BUILD": IMAGE_BUILD + 'oci_image(name="team", files=[":motd"], repository="team/x")\n',
                             "img/motd": "hi\n"})
    options = ("--oci-publish-registries=['127.0.0.1:5000']", "--oci-publish-namespace=openstack.kolla")
    (local,) = publish(rule_runner, "local", *options)
    assert local.names == ("127.0.0.1:5000/openstack.kolla/local:latest",)
    # An image's own `registries` wins over the set's; its own `repository` is taken as written.
    assert [job.names for job in publish(rule_runner, "app", *options)][:2] == [
        ("registry.example:5000/openstack.kolla/app:latest",), ("registry.example:5000/openstack.kolla/app:1.0",)]
    (team,) = publish(rule_runner, "team", *options)
    assert team.names == ("127.0.0.1:5000/team/x:latest",)


def test_immutable_tag_goes_first_and_every_push_guards_it(rule_runner):
    rule_runner.write_files({"img/BUILD": IMAGE_BUILD, "img/motd": "hi\n"})
    jobs = publish(rule_runner, "local", "--oci-publish-registries=['127.0.0.1:5000']",
                   "--oci-publish-immutable-tag=20261201-0123456789ab")
    assert [job.names for job in jobs] == [("127.0.0.1:5000/local:20261201-0123456789ab",),
                                           ("127.0.0.1:5000/local:latest",)]
    for job in jobs:
        argv = job.process.process.argv
        assert "--immutable-tag=20261201-0123456789ab" in argv
        assert argv[argv.index("--source-tag") + 1] == "latest"  # the layout's tag that names the image


@pytest.mark.parametrize("option, message", [
    ("--oci-publish-namespace=Kolla", "[oci-publish].namespace is 'Kolla'"),
    ("--oci-publish-registries=['https://registry.example']", "[oci-publish].registries has 'https://registry.example'"),
    ("--oci-publish-immutable-tag=-bad", "[oci-publish].immutable_tag is '-bad'"),
])
def test_bad_set_options_are_refused_with_the_option_named(rule_runner, option, message):
    rule_runner.write_files({"img/BUILD": IMAGE_BUILD, "img/motd": "hi\n"})
    with pytest.raises(ExecutionError, match=re.escape(message)):
        publish(rule_runner, "local", "--oci-publish-registries=['127.0.0.1:5000']", option)


@pytest.mark.parametrize("stderr, explanation", [
    ('pinging container registry r:1: Get "http://r:1/v2/": dial tcp r:1: connect: connection refused',
     "cannot reach the registry r:1"),
    ("http: server gave HTTP response to HTTPS client", "speaks plain HTTP"),
    ("x509: certificate signed by unknown authority", "TLS certificate of r:1 is not trusted"),
    ("checking whether a blob exists in r:1/app: unauthorized: authentication required",
     "refused the push: missing or wrong credentials"),
    ("something else entirely", "skopeo could not push to r:1"),
])
def test_push_failures_are_explained(stderr, explanation):
    assert explanation in diagnose(stderr, "r:1")


def test_run_uses_podman_on_the_layout_named_after_the_repository(rule_runner):
    rule_runner.write_files({"img/BUILD": IMAGE_BUILD, "img/motd": "hi\n"})
    target = rule_runner.get_target(Address("img", target_name="app"))
    request = rule_runner.request(RunRequest, [OciImageRunFieldSet.create(target)])
    args = list(request.args)
    podman = args.index("{chroot}") + 1
    assert args[podman].endswith("/podman")
    assert args[podman + 1:podman + 10] == ["--runtime", "runc", "run", "--rm", "--network=none",
                                          "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
    assert args[-1] == "oci:app:latest"
    files = {fc.path for fc in rule_runner.request(DigestContents, [request.digest])}
    assert "app/index.json" in files and "app/oci-layout" in files


def tarball(rule_runner: RuleRunner, name: str) -> tuple[BuiltPackage, dict[str, bytes]]:
    target = rule_runner.get_target(Address("img", target_name=name))
    package = rule_runner.request(BuiltPackage, [OciImageTarballFieldSet.create(target)])
    (content,) = rule_runner.request(DigestContents, [package.digest])
    with tarfile.open(fileobj=io.BytesIO(content.content)) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    return package, members


def test_docker_archive_names_the_image_after_repository_and_tags(rule_runner):
    rule_runner.write_files({"img/BUILD": IMAGE_BUILD, "img/motd": "hi\n"})
    package, members = tarball(rule_runner, "docker")
    assert package.artifacts[0].relpath == "img/docker.tar"
    (manifest,) = json.loads(members["manifest.json"])
    assert manifest["RepoTags"] == ["app:latest", "app:1.0"]
    assert {manifest["Config"], *manifest["Layers"]} == set(members) - {"manifest.json"}
    _, named = tarball(rule_runner, "named")
    assert json.loads(named["manifest.json"])[0]["RepoTags"] == ["registry.example/team/app:v1"]


def test_oci_archive_is_the_layout(rule_runner):
    rule_runner.write_files({"img/BUILD": IMAGE_BUILD, "img/motd": "hi\n"})
    _, members = tarball(rule_runner, "oci")
    assert {"oci-layout", "index.json"} <= set(members) and "manifest.json" not in members
    with pytest.raises(ExecutionError, match="only a docker-archive holds"):
        tarball(rule_runner, "oci-named")


def test_tarball_of_something_else_than_an_image_fails(rule_runner):
    rule_runner.write_files({"img/BUILD": IMAGE_BUILD, "img/motd": "hi\n"})
    with pytest.raises(ExecutionError, match="must be an `oci_image`"):
        tarball(rule_runner, "not-an-image")

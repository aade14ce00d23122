"""RuleRunner tests of the oci backend's rules."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest
from pants.core.subsystems import python_bootstrap
from pants.core.target_types import FilesGeneratorTarget, FileTarget
from pants.core.util_rules import source_files, system_binaries
from pants.engine.addresses import Address
from pants.engine.fs import Digest, DigestContents
from pants.engine.internals.scheduler import ExecutionError
from pants.engine.target import InferredDependencies
from pants.testutil.rule_runner import QueryRule, RuleRunner

import plugin as register
from oci.image import BuildImageRequest, BuiltImage, InferOciImageDependencies, OciImageDependenciesInferenceFieldSet
from oci.platforms import ImageLayout, ImageLayoutRequest


@pytest.fixture
def rule_runner() -> RuleRunner:
    runner = RuleRunner(
        rules=[
            *register.rules(),
            *python_bootstrap.rules(),
            *source_files.rules(),
            *system_binaries.rules(),
            QueryRule(BuiltImage, [BuildImageRequest]),
            QueryRule(ImageLayout, [ImageLayoutRequest]),
            QueryRule(DigestContents, [Digest]),
            QueryRule(InferredDependencies, [InferOciImageDependencies]),
        ],
        target_types=[*register.target_types(), FileTarget, FilesGeneratorTarget],
    )
    runner.set_options(["--python-bootstrap-search-path=['/usr/bin']"], env_inherit={"PATH"})
    return runner


BASE_BUILD = """
image_files(name="etc", sources=["motd", "conf/*.conf"], destination="/etc/app", mode="0640", owner="42400:42401")
oci_image(name="base", files=[":etc"], env={"LANG": "C.UTF-8"}, labels={"tier": "base"})
"""


def build(rule_runner: RuleRunner, spec: str) -> BuiltImage:
    return rule_runner.request(BuiltImage, [BuildImageRequest(Address(*spec.split(":")))])


def layer_members(rule_runner: RuleRunner, image: BuiltImage, index: int) -> dict[str, tarfile.TarInfo]:
    contents = {fc.path: fc.content for fc in rule_runner.request(DigestContents, [image.layout])}
    blob = contents["blobs/sha256/" + image.layers[index]["digest"].split(":")[1]]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_files_land_at_destination_with_mode_and_owner(rule_runner):
    rule_runner.write_files({"img/BUILD": BASE_BUILD, "img/motd": "hi\n", "img/conf/a.conf": "a=1\n"})
    image = build(rule_runner, "img:base")
    members = layer_members(rule_runner, image, 0)
    assert sorted(n for n, m in members.items() if m.isfile()) == ["etc/app/conf/a.conf", "etc/app/motd"]
    motd = members["etc/app/motd"]
    assert (motd.mode, motd.uid, motd.gid, motd.mtime) == (0o640, 42400, 42401, 0)
    config = json.loads(image.image_json)["config"]
    assert config["config"] == {"Env": ["LANG=C.UTF-8"], "Labels": {"tier": "base"}}


def test_child_reuses_parent_layers_and_only_rebuilds_its_own(rule_runner):
    rule_runner.write_files({
        "img/BUILD": BASE_BUILD, "img/motd": "hi\n", "img/conf/a.conf": "a=1\n",
        "app/BUILD": 'file(name="run", source="run.sh")\n'
                     'oci_image(name="app", parent="//img:base", files=[":run"], entrypoint=["/run.sh"], user="42400")',
        "app/run.sh": "#!/bin/sh\n",
    })
    parent, child = build(rule_runner, "img:base"), build(rule_runner, "app:app")
    assert child.layers[0] == parent.layers[0] and len(child.layers) == 2
    assert "run.sh" in layer_members(rule_runner, child, 1)
    config = json.loads(child.image_json)["config"]
    assert config["config"]["Entrypoint"] == ["/run.sh"] and config["config"]["User"] == "42400"
    assert config["config"]["Env"] == ["LANG=C.UTF-8"]


def test_same_inputs_same_digest_and_content_change_moves_it(rule_runner):
    rule_runner.write_files({"img/BUILD": BASE_BUILD, "img/motd": "hi\n", "img/conf/a.conf": "a=1\n"})
    first = build(rule_runner, "img:base").manifest_digest
    rule_runner.write_files({"img/motd": "changed\n"})
    assert build(rule_runner, "img:base").manifest_digest != first
    rule_runner.write_files({"img/motd": "hi\n"})
    assert build(rule_runner, "img:base").manifest_digest == first


def test_dependencies_are_inferred_from_parent_and_files(rule_runner):
    rule_runner.write_files({
        "img/BUILD": BASE_BUILD, "img/motd": "", "img/conf/a.conf": "",
        "app/BUILD": 'oci_image(name="app", parent="//img:base", files=["//img:etc"])',
    })
    target = rule_runner.get_target(Address("app", target_name="app"))
    inferred = rule_runner.request(
        InferredDependencies, [InferOciImageDependencies(OciImageDependenciesInferenceFieldSet.create(target))]
    )
    assert set(inferred.include) == {Address("img", target_name="base"), Address("img", target_name="etc")}


@pytest.mark.parametrize(
    "build_files, expected",
    [
        ({"a/BUILD": 'oci_image(name="a", parent="//b:b")', "b/BUILD": 'oci_image(name="b", parent="//a:a")'},
         r"form a cycle: a:a -> b:b -> a:a"),
        ({"a/BUILD": 'oci_image(name="a", parent="//a:f")\nfile(name="f", source="x")', "a/x": ""},
         r"is a `file`, not an `oci_image`"),
        ({"a/BUILD": 'oci_image(name="a", parent="//nowhere:x")'}, r"nowhere"),
        ({"a/BUILD": 'image_files(name="one", sources=["x"], destination="/etc")\n'
                     'oci_image(name="a", files=[":one", "//b:two"])',
          "b/BUILD": 'image_files(name="two", sources=["x"], destination="/etc")',
          "a/x": "1", "b/x": "2"},
         r"/etc/x is declared twice, from a/x \(a:one\) and b/x \(b:two\)"),
    ],
)
def test_bad_declarations_fail_with_clear_errors(rule_runner, build_files, expected):
    rule_runner.write_files(build_files)
    with pytest.raises(ExecutionError, match=expected):
        build(rule_runner, "a:a")


def test_invalid_fields_name_the_target(rule_runner):
    rule_runner.write_files({"a/BUILD": 'image_files(name="f", sources=["x"], destination="etc")\n'
                                        'oci_image(name="a", files=[":f"])', "a/x": ""})
    with pytest.raises(ExecutionError, match=r"destination.*a:f.*absolute"):
        build(rule_runner, "a:a")


def test_overrides_must_name_the_targets_own_files(rule_runner):
    rule_runner.write_files({"a/BUILD": 'image_files(name="f", sources=["x"], destination="/etc", '
                                        'overrides=["/etc/y"])\noci_image(name="a", files=[":f"])', "a/x": ""})
    with pytest.raises(ExecutionError, match=r"a:f: `overrides` lists /etc/y, which is not one of its files "
                                             r"\(it places /etc/x\)"):
        build(rule_runner, "a:a")
    rule_runner.write_files({"a/BUILD": 'image_files(name="f", sources=["x"], destination="/etc", '
                                        'overrides=["etc/x"])\noci_image(name="a", files=[":f"])'})
    with pytest.raises(ExecutionError, match=r"overrides.*a:f.*normalized absolute paths"):
        build(rule_runner, "a:a")


def test_layer_budget_overflow_names_the_image_and_the_fix(rule_runner):
    chain = {"img/BUILD": "\n".join(
        f'image_files(name="f{i}", sources=["f{i}"], destination="/srv")\n'
        f'oci_image(name="i{i}", files=[":f{i}"]' + (f', parent=":i{i - 1}")' if i else ")")
        for i in range(3)
    )}
    rule_runner.write_files({**chain, **{f"img/f{i}": str(i) for i in range(3)}})
    rule_runner.set_options(["--python-bootstrap-search-path=['/usr/bin']", "--oci-max-layers=2"],
                            env_inherit={"PATH"})
    assert len(build(rule_runner, "img:i1").layers) == 2
    with pytest.raises(ExecutionError, match=r"img:i2 would have 3 layers \(2 from its parents\), more than the 2"):
        build(rule_runner, "img:i2")


def test_multi_platform_image_is_an_index_of_per_platform_manifests(rule_runner):
    rule_runner.write_files({
        "img/BUILD": 'image_files(name="f", sources=["f"], destination="/srv")\n'
                     'oci_image(name="base", files=[":f"], platforms=["linux/amd64", "linux/arm64"], tags=["v1"])\n'
                     'oci_image(name="child", parent=":base", platforms=["linux/arm64"])\n'
                     'oci_image(name="wider", parent=":child", platforms=["linux/amd64", "linux/arm64"])\n',
        "img/f": "same bytes on every platform\n",
    })
    layout = rule_runner.request(ImageLayout, [ImageLayoutRequest(Address("img", target_name="base"))])
    contents = {fc.path: fc.content for fc in rule_runner.request(DigestContents, [layout.layout])}
    index = json.loads(contents["index.json"])
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "v1"
    assert index["manifests"][0]["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert index["manifests"][0]["digest"] == layout.digest
    image_index = json.loads(contents["blobs/sha256/" + layout.digest.split(":")[1]])
    assert [m["platform"] for m in image_index["manifests"]] == [
        {"architecture": "amd64", "os": "linux"}, {"architecture": "arm64", "os": "linux"}]
    manifests = [json.loads(contents["blobs/sha256/" + m["digest"].split(":")[1]]) for m in image_index["manifests"]]
    assert manifests[0]["layers"] == manifests[1]["layers"]  # the files layer is shared
    configs = [json.loads(contents["blobs/sha256/" + m["config"]["digest"].split(":")[1]]) for m in manifests]
    assert [c["architecture"] for c in configs] == ["amd64", "arm64"]

    child = rule_runner.request(ImageLayout, [ImageLayoutRequest(Address("img", target_name="child"))])
    assert child.architectures == ("arm64",)
    with pytest.raises(ExecutionError, match=r"img:child is built for linux/arm64, but img:wider needs it for "
                                             r"linux/amd64. Add linux/amd64 to the `platforms` of img:child"):
        rule_runner.request(ImageLayout, [ImageLayoutRequest(Address("img", target_name="wider"))])

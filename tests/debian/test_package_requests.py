"""RuleRunner tests of what an image's package declaration asks the lock for."""

from __future__ import annotations

import pytest
from pants.engine.addresses import Address
from pants.engine.internals.scheduler import ExecutionError
from pants.testutil.rule_runner import QueryRule, RuleRunner

import plugin as register
from debian.debian_lock import OptionalImagePackageRequest, PackageRequestFor


@pytest.fixture
def rule_runner() -> RuleRunner:
    return RuleRunner(
        rules=[*register.rules(), QueryRule(OptionalImagePackageRequest, [PackageRequestFor])],
        target_types=register.target_types(),
    )


def request_for(rule_runner: RuleRunner, spec: str):
    return rule_runner.request(OptionalImagePackageRequest, [PackageRequestFor(Address(*spec.split(":")))]).request


def test_exclusions_are_part_of_the_request_only_when_declared(rule_runner):
    rule_runner.write_files({"img/BUILD": """
oci_image(name="base", packages=["tool"], exclude_packages={"ping": "never run in the image"})
oci_image(name="files-only", parent=":base")
oci_image(name="leaf", parent=":files-only", packages=["gawk"])
"""})
    base = request_for(rule_runner, "img:base")
    assert base.to_json() == {"packages": ["tool"], "recommends": False, "essential": False, "parent": None,
                              "exclude": {"ping": "never run in the image"}}
    assert request_for(rule_runner, "img:files-only") is None
    # Without exclusions the request keeps the shape older locks recorded.
    assert request_for(rule_runner, "img:leaf").to_json() == {
        "packages": ["gawk"], "recommends": False, "essential": False, "parent": "img:base"}


def test_an_image_that_only_excludes_passes_its_exclusions_down(rule_runner):
    rule_runner.write_files({"img/BUILD": """
oci_image(name="base", packages=["tool"])
oci_image(name="slim", parent=":base", exclude_packages={"ping": "never run"})
oci_image(name="leaf", parent=":slim", packages=["gawk"])
"""})
    assert dict(request_for(rule_runner, "img:slim").exclude) == {"ping": "never run"}
    assert request_for(rule_runner, "img:leaf").parent == "img:slim"


@pytest.mark.parametrize("build_file, expected", [
    ('oci_image(name="a", packages=["tool"], exclude_packages={"ping": " "})',
     r"exclude_packages.*img:a gives no reason for leaving out 'ping'"),
    ('oci_image(name="a", packages=["ping (>= 1)"], exclude_packages={"ping": "x"})',
     r"img:a: ping is both in `packages` and in `exclude_packages`"),
])
def test_bad_exclusions_name_the_target_and_the_fix(rule_runner, build_file, expected):
    rule_runner.write_files({"img/BUILD": build_file})
    with pytest.raises(ExecutionError, match=expected):
        request_for(rule_runner, "img:a")

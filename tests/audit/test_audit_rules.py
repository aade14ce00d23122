"""RuleRunner tests of the audit goals on images without packages (no lock needed): fast checks of the
rule graph, the files each goal writes and the lint result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pants.core.goals import lint
from pants.core.subsystems import python_bootstrap
from pants.core.target_types import FilesGeneratorTarget, FileTarget
from pants.core.util_rules import source_files, system_binaries
from pants.core.goals.lint import LintResult
from pants.core.util_rules.partitions import _EmptyMetadata
from pants.engine.addresses import Address
from pants.testutil.rule_runner import QueryRule, RuleRunner

import plugin as register
from audit.policy import OciPolicyFieldSet, OciPolicyRequest
from audit.provenance import ProvenanceGoal
from audit.report import ImageReportGoal
from audit.repro import ReproCheckGoal
from audit.sbom import SbomGoal

BUILD = """
image_files(name="etc", sources=["motd"], destination="/etc")
oci_image(name="base", files=[":etc"], labels={"org.opencontainers.image.vendor": "Example"})
oci_image(name="svc", parent=":base", cmd=["/bin/true"], tags=["1.0"], registries=["r.example"])
oci_image(name="ok", parent=":base", cmd=["/bin/true"], user="42400", max_size="1kB")
oci_image(name="job", parent=":base", cmd=["/bin/true"], policy_allow=["root-user"], skip_oci_policy=False)
oci_image(name="multi", files=[":etc"], platforms=["linux/amd64", "linux/arm64"], skip_oci_policy=True)
"""


@pytest.fixture
def rule_runner() -> RuleRunner:
    runner = RuleRunner(
        rules=[*register.rules(), *python_bootstrap.rules(), *source_files.rules(), *system_binaries.rules(),
               *lint.rules(), QueryRule(LintResult, [OciPolicyRequest.Batch])],
        target_types=[*register.target_types(), FileTarget, FilesGeneratorTarget],
    )
    runner.write_files({"img/BUILD": BUILD, "img/motd": "hi\n"})
    return runner


OPTIONS = ["--python-bootstrap-search-path=['/usr/bin']"]


def dist(rule_runner: RuleRunner) -> Path:
    return Path(rule_runner.build_root) / "dist"


def test_sbom_and_provenance_goals_write_next_to_the_layout(rule_runner):
    result = rule_runner.run_goal_rule(SbomGoal, global_args=OPTIONS, args=["img::"], env_inherit={"PATH"})
    assert result.exit_code == 0, result.stderr
    assert "Wrote dist/img/svc.spdx.json (0 packages)" in result.stdout
    sbom = json.loads((dist(rule_runner) / "img/svc.spdx.json").read_text())
    assert [p["name"] for p in sbom["packages"]] == ["svc", "base"]
    assert sbom["packages"][0]["supplier"] == "Organization: Example"  # from the vendor label
    assert "repository_url=r.example/svc&tag=1.0" in sbom["packages"][0]["externalRefs"][0]["referenceLocator"]
    result = rule_runner.run_goal_rule(ProvenanceGoal, global_args=OPTIONS, args=["img:svc"], env_inherit={"PATH"})
    assert result.exit_code == 0, result.stderr
    statement = json.loads((dist(rule_runner) / "img/svc.intoto.json").read_text())
    assert statement["subject"][0]["name"] == "r.example/svc"
    assert statement["subject"][0]["digest"]["sha256"] == sbom["packages"][0]["versionInfo"][7:]


def test_a_multi_platform_image_gets_one_sbom_and_statement_per_platform(rule_runner):
    for goal in (SbomGoal, ProvenanceGoal):
        result = rule_runner.run_goal_rule(goal, global_args=OPTIONS, args=["img:multi"], env_inherit={"PATH"})
        assert result.exit_code == 0, result.stderr
    for architecture in ("amd64", "arm64"):
        sbom = json.loads((dist(rule_runner) / f"img/multi.{architecture}.spdx.json").read_text())
        assert f"arch={architecture}" in sbom["packages"][0]["externalRefs"][0]["referenceLocator"]
        statement = json.loads((dist(rule_runner) / f"img/multi.{architecture}.intoto.json").read_text())
        assert statement["subject"][0]["digest"]["sha256"] == sbom["packages"][0]["versionInfo"][7:]
        assert statement["predicate"]["buildDefinition"]["externalParameters"]["architecture"] == architecture


def lint_images(rule_runner: RuleRunner, *names: str) -> LintResult:
    rule_runner.set_options(OPTIONS, env_inherit={"PATH"})
    field_sets = tuple(OciPolicyFieldSet.create(rule_runner.get_target(Address("img", target_name=name)))
                       for name in names)
    return rule_runner.request(LintResult, [OciPolicyRequest.Batch("oci-policy", field_sets, _EmptyMetadata())])


def test_lint_reports_root_services_and_budgets(rule_runner):
    result = lint_images(rule_runner, "base", "svc", "ok", "job")
    assert result.exit_code == 1
    output = result.stdout
    assert "img:svc: 1 violation" in output and "error [root-user] runs `/bin/true` as root" in output
    assert "img:job: ok" in output and "img:base: ok" in output  # allowed; no command
    assert "img:ok: ok" in output
    assert lint_images(rule_runner, "base", "ok", "job").exit_code == 0


def test_lint_runs_as_part_of_the_lint_goal(rule_runner):
    result = rule_runner.run_goal_rule(lint.Lint, global_args=OPTIONS, args=["img::"], env_inherit={"PATH"})
    assert result.exit_code == 1 and "oci-policy failed" in result.stderr


def test_image_report_without_graph(rule_runner):
    result = rule_runner.run_goal_rule(ImageReportGoal, global_args=OPTIONS,
                                       args=["--image-report-graph=false", "img::"], env_inherit={"PATH"})
    assert result.exit_code == 0, result.stderr
    report = json.loads((dist(rule_runner) / "image-report/report.json").read_text())
    sizes = {i["address"]: i for i in report["images"]}
    base = sizes["img:base"]
    assert base["shared_bytes"] == base["total_bytes"] == base["own_bytes"]
    assert report["set"]["unique_bytes"] == base["total_bytes"]  # the children add no layers
    assert "5 images:" in result.stdout


def test_repro_check_needs_something_to_compare_with(rule_runner):
    result = rule_runner.run_goal_rule(ReproCheckGoal, global_args=OPTIONS, args=["img::"], env_inherit={"PATH"})
    assert result.exit_code == 2 and "--against=DIR" in result.stderr

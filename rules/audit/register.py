"""The `audit` backend: SBOM, provenance, policy lint, size and update-cost reports and
reproducibility checks and the security report of `oci_image` targets, reading what the oci and debian backends built.
One module per goal, like Pants' own backends; see docs/audits.md."""

from pants.core.util_rules import distdir  # the goals write under dist/; core registers it too

from audit import facts, fields, origins, policy, provenance, report, repro, sbom, security_report, update_cost


def rules():
    return [
        *facts.rules(), *fields.rules(), *origins.rules(),
        *sbom.rules(), *provenance.rules(), *policy.rules(), *report.rules(), *update_cost.rules(),
        *repro.rules(), *security_report.rules(), *distdir.rules(),
    ]

"""Audits of `oci_image` targets: SBOM, provenance, policy lint, size and update-cost reports,
reproducibility checks.  One module per goal, like Pants' own backends; see docs/audits.md."""


def rules():
    from pants.core.util_rules import distdir  # the goals write under dist/; core registers it too

    from oci.audit import facts, fields, origins, policy, provenance, report, repro, sbom, update_cost

    return [
        *facts.rules(), *fields.rules(), *origins.rules(),
        *sbom.rules(), *provenance.rules(), *policy.rules(), *report.rules(), *update_cost.rules(),
        *repro.rules(), *distdir.rules(),
    ]

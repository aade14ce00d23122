"""Audits of `oci_image` targets: SBOM, provenance, policy lint, size and update-cost reports,
reproducibility checks.  One module per goal, like Pants' own backends; see docs/audits.md."""


def rules():
    from oci.audit import facts, origins, provenance, sbom

    return [*facts.rules(), *origins.rules(), *sbom.rules(), *provenance.rules()]

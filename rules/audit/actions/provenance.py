"""Write an image's provenance: `python -m audit.actions.provenance spec.json out.intoto.json`.

An in-toto Statement v1 whose predicate is SLSA Provenance v1.  The spec (from
the `provenance` goal's rule) carries the subjects, the source revision, the lock
and every .deb, the layer and config digests, and the build options.  This
action adds what only the interpreter that ran the build actions knows: the zlib
that compressed the layers and the Python around it, so that a compressed blob
digest that differs elsewhere can be explained (diff_ids do not depend on them).

No timestamps, no host names, no paths: the same spec on the same interpreter
gives the same bytes.  The Pants cache keys the action on the interpreter's
fingerprint, which includes its zlib version.
"""

from __future__ import annotations

import json
import platform
import sys
import zlib
from typing import List, Mapping

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"


def compressor(level: int) -> dict:
    """The layer compressor as this interpreter runs it: gzip framing around zlib's deflate."""
    return {"format": "gzip", "implementation": "zlib", "version": zlib.ZLIB_RUNTIME_VERSION, "level": level}


def interpreter_dependencies() -> List[dict]:
    python = platform.python_version()
    return [
        {"name": "python", "uri": f"pkg:generic/python@{python}",
         "annotations": {"implementation": platform.python_implementation()}},
        {"name": "zlib", "uri": f"pkg:generic/zlib@{zlib.ZLIB_RUNTIME_VERSION}",
         "annotations": {"compile_time_version": zlib.ZLIB_VERSION}},
    ]


def build_statement(spec: Mapping) -> dict:
    internal = dict(spec.get("internal_parameters") or {})
    internal["compression"] = compressor(int(spec["compression_level"]))
    builder = dict(spec["builder"])
    builder["builderDependencies"] = list(builder.get("builderDependencies") or []) + interpreter_dependencies()
    return {
        "_type": STATEMENT_TYPE,
        "subject": list(spec["subjects"]),
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": spec["build_type"],
                "externalParameters": dict(spec.get("external_parameters") or {}),
                "internalParameters": internal,
                "resolvedDependencies": list(spec.get("resolved_dependencies") or []),
            },
            "runDetails": {
                "builder": builder,
                "byproducts": list(spec.get("byproducts") or []),
            },
        },
    }


def write_statement(spec: Mapping, path: str) -> dict:
    statement = build_statement(spec)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(statement, f, sort_keys=True, indent=1, ensure_ascii=False)
        f.write("\n")
    return statement


def main(argv: List[str]) -> int:
    spec_path, output = argv
    with open(spec_path, encoding="utf-8") as f:
        statement = write_statement(json.load(f), output)
    digest = statement["subject"][0]["digest"]["sha256"]
    print(f"provenance of sha256:{digest}, zlib {zlib.ZLIB_RUNTIME_VERSION}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

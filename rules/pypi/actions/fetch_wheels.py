"""Fetch an image's wheels by the lock's sha256: `python -m pypi.actions.fetch_wheels spec.json`.

The spec is a `WheelFetchSpec`. Each wheel comes from the local cache (`<cache_dir>/<sha256>.whl`,
shared by every checkout of the machine) or from the lock's URL, and is written to
`wheels/<sha256>/<file name>` only after its sha256 matches the lock; a cached file that does
not match is moved aside and fetched again. The lock's hashes key the Process, so the fetch runs
once per set of wheels.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import urllib.error
from typing import List, Sequence

from oci.actions.httpget import HttpGetter
from oci.actions.ocilayout import file_sha256
from oci.actions.specs import load_spec

from .specs import LockedWheel, WheelFetchSpec


class WheelFetchError(Exception):
    pass


def from_cache(wheel: LockedWheel, cache_dir: str, target: str) -> bool:
    cached = os.path.join(cache_dir, f"{wheel.sha256}.whl") if cache_dir else ""
    if not cached or not os.path.exists(cached):
        return False
    if file_sha256(cached) != wheel.sha256:
        os.replace(cached, f"{cached}.damaged")
        return False
    shutil.copyfile(cached, target)
    return True


def download(wheel: LockedWheel, target: str, http: HttpGetter) -> None:
    try:
        with http.get(wheel.url) as response, open(target, "wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, OSError) as error:
        raise WheelFetchError(f"{wheel.name} {wheel.version}: {wheel.url}: {error}") from error
    actual = file_sha256(target)
    if actual != wheel.sha256:
        os.unlink(target)
        raise WheelFetchError(f"{wheel.name} {wheel.version}: {wheel.url} has sha256 {actual}, the lock says "
                              f"{wheel.sha256}; the index changed the file: regenerate the lockfile")


def keep_in_cache(wheel: LockedWheel, cache_dir: str, source: str) -> None:
    if not cache_dir:
        return
    try:
        os.makedirs(cache_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".wheel-")
        os.close(fd)
        shutil.copyfile(source, tmp)
        os.replace(tmp, os.path.join(cache_dir, f"{wheel.sha256}.whl"))
    except OSError as error:
        print(f"warning: could not keep {wheel.filename} in {cache_dir}: {error}", file=sys.stderr)


def fetch_all(spec: WheelFetchSpec) -> List[str]:
    fetched, failures = [], []
    http = HttpGetter(spec.timeout)  # one lookup of the index's host, one kept-alive connection
    for wheel in sorted(spec.wheels, key=lambda w: w.sha256):
        target = wheel.sandbox_path
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if from_cache(wheel, spec.cache_dir, target):
            continue
        try:
            download(wheel, target, http)
        except WheelFetchError as error:
            failures.append(str(error))
            continue
        keep_in_cache(wheel, spec.cache_dir, target)
        fetched.append(wheel.filename)
    if failures:
        raise WheelFetchError("could not fetch:\n  " + "\n  ".join(failures))
    return fetched


def main(argv: Sequence[str]) -> int:
    spec_path, = argv
    spec = WheelFetchSpec.from_json(load_spec(spec_path))
    try:
        fetched = fetch_all(spec)
    except WheelFetchError as error:
        print(str(error), file=sys.stderr)
        return 2
    print(f"{len(spec.wheels)} wheels, {len(fetched)} downloaded", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

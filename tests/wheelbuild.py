"""Small wheels for tests, and a PEP 503 simple index of them served on 127.0.0.1.

A wheel is written as the format says (METADATA, WHEEL, entry_points.txt, RECORD with sha256 of
every member), with fixed zip timestamps so that the same arguments give the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import tarfile
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

ZIP_TIME = (2000, 1, 1, 0, 0, 0)


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def safe(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name)


@dataclass(frozen=True)
class WheelSpec:
    name: str
    version: str
    files: Dict[str, bytes]  # member path -> bytes (purelib/platlib root)
    requires: Tuple[str, ...] = ()
    console_scripts: Dict[str, str] = field(default_factory=dict)
    scripts: Dict[str, bytes] = field(default_factory=dict)  # .data/scripts
    executables: Tuple[str, ...] = ()  # members with mode 0755
    tag: str = "py3-none-any"
    requires_python: str = ">=3.9"

    @property
    def filename(self) -> str:
        return f"{safe(self.name)}-{self.version}-{self.tag}.whl"

    @property
    def dist_info(self) -> str:
        return f"{safe(self.name)}-{self.version}.dist-info"


def metadata_text(spec: WheelSpec) -> bytes:
    lines = ["Metadata-Version: 2.1", f"Name: {spec.name}", f"Version: {spec.version}",
             f"Requires-Python: {spec.requires_python}"]
    lines += [f"Requires-Dist: {r}" for r in spec.requires]
    return ("\n".join(lines) + "\n").encode()


def wheel_members(spec: WheelSpec) -> Dict[str, bytes]:
    pure = spec.tag.endswith("-none-any")
    members = dict(spec.files)
    data_dir = f"{safe(spec.name)}-{spec.version}.data"
    members.update({f"{data_dir}/scripts/{name}": data for name, data in spec.scripts.items()})
    members[f"{spec.dist_info}/METADATA"] = metadata_text(spec)
    members[f"{spec.dist_info}/WHEEL"] = (f"Wheel-Version: 1.0\nGenerator: wheelbuild\nRoot-Is-Purelib: "
                                          f"{'true' if pure else 'false'}\nTag: {spec.tag}\n").encode()
    if spec.console_scripts:
        members[f"{spec.dist_info}/entry_points.txt"] = ("[console_scripts]\n" + "".join(
            f"{k} = {v}\n" for k, v in sorted(spec.console_scripts.items()))).encode()
    return members


def build_wheel(spec: WheelSpec, out_dir: Path) -> Path:
    members = wheel_members(spec)
    record = "".join(f"{path},{record_hash(data)},{len(data)}\n" for path, data in sorted(members.items()))
    record += f"{spec.dist_info}/RECORD,,\n"
    path = out_dir / spec.filename
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in [*sorted(members.items()), (f"{spec.dist_info}/RECORD", record.encode())]:
            info = zipfile.ZipInfo(name, ZIP_TIME)
            executable = name in spec.executables or "/scripts/" in name
            info.external_attr = (0o100755 if executable else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


def build_sdist(name: str, version: str, out_dir: Path) -> Path:
    """An sdist with PKG-INFO and a setup.py: something the PyPI source must refuse to build."""
    path = out_dir / f"{safe(name)}-{version}.tar.gz"
    root = f"{safe(name)}-{version}"
    files = {f"{root}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
             f"{root}/setup.py": f"from setuptools import setup\nsetup(name={name!r}, version={version!r})\n".encode()}
    with tarfile.open(path, "w:gz") as tar:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_simple_index(root: Path, files: Sequence[Tuple[str, Path]]) -> None:
    """`root/simple/<project>/index.html` (PEP 503) linking `root/files/<name>#sha256=...`."""
    by_project: Dict[str, list] = {}
    for project, path in files:
        by_project.setdefault(re.sub(r"[-_.]+", "-", project).lower(), []).append(path)
    (root / "files").mkdir(parents=True, exist_ok=True)
    for project, paths in by_project.items():
        links = []
        for path in sorted(paths):
            target = root / "files" / path.name
            if path != target:
                target.write_bytes(path.read_bytes())
            digest = hashlib.sha256(target.read_bytes()).hexdigest()
            links.append(f'<a href="../../files/{html.escape(path.name)}#sha256={digest}">{html.escape(path.name)}</a>')
        page = root / "simple" / project / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text("<!DOCTYPE html><html><body>\n" + "<br/>\n".join(links) + "\n</body></html>\n")
    index = root / "simple" / "index.html"
    index.write_text("<!DOCTYPE html><html><body>\n" + "".join(
        f'<a href="{p}/">{p}</a>\n' for p in sorted(by_project)) + "</body></html>\n")


def elf_extension(needed: Tuple[str, ...], soname: Optional[str] = None) -> bytes:
    from elfbuild import shared_object

    return shared_object(soname, needed=needed)

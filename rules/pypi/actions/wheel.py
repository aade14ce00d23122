"""Install a wheel into a venv as data, per the binary distribution format (PEP 427, PEP 376).

No pip and no interpreter of the image run: each member of the wheel becomes a venv path with
a fixed mode, so the same wheels give the same bytes on any host. Decisions:
- purelib and platlib both go to `lib/pythonX.Y/site-packages` (`lib64` is a link to `lib`);
  `.data/scripts` to `bin`, `.data/headers` to `include/site/pythonX.Y/<name>`, `.data/data`
  to the venv root, as pip installs them;
- `#!python` script shebangs and console-script entry points get one fixed shebang, the venv's
  python3, whatever the host's interpreter or path;
- every member is checked against the wheel's RECORD; the installed RECORD is written anew,
  sorted by path, with INSTALLER; no `direct_url.json` (it would name a sandbox path), no
  RECORD signatures; no .pyc here (build_venv_layer.py compiles on `compile_python` and writes
  RECORD again with them);
- a member that would leave the venv, or a wheel whose metadata disagrees with its lock entry,
  is refused.
"""

from __future__ import annotations

import base64
import configparser
import csv
import hashlib
import io
import posixpath
import re
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from typing import Callable, Dict, List, Optional, Sequence, Tuple

INSTALLER = b"oci-pants\n"
SCRIPT_TEMPLATE = """{shebang}
# -*- coding: utf-8 -*-
import re
import sys
from {module} import {head}
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit({call}())
"""
DROPPED_DIST_INFO = ("RECORD", "RECORD.jws", "RECORD.p7s", "INSTALLER", "direct_url.json", "REQUESTED")


class WheelError(ValueError):
    """A wheel that cannot be installed as it is."""


def normalize_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


@dataclass(frozen=True)
class VenvLayout:
    shebang: str  # "#!/var/lib/kolla/venv/bin/python3"
    python_version: str  # "3.11"

    @property
    def site_packages(self) -> str:
        return f"lib/python{self.python_version}/site-packages"


@dataclass(frozen=True)
class VenvFile:
    """A file of the venv, relative to its root, with its bytes or a way to read them."""

    path: str
    mode: int
    size: int
    digest: str  # RECORD form: sha256=<urlsafe base64>
    data: Optional[bytes] = None
    opener: Optional[Callable[[], Tuple[io.BufferedIOBase, int]]] = None


@dataclass(frozen=True)
class InstalledDistribution:
    name: str  # as the wheel's METADATA spells it
    version: str
    files: Tuple[VenvFile, ...]  # RECORD included


class Wheel:
    def __init__(self, path: str, label: str):
        self.label = label
        try:
            self.zip = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as error:
            raise WheelError(f"{label}: not a readable wheel ({error})") from error
        self.members = {info.filename: info for info in self.zip.infolist() if not info.is_dir()}
        self.dist_info = self.find_dist_info()

    def find_dist_info(self) -> str:
        roots = {name.split("/", 1)[0] for name in self.members if name.split("/", 1)[0].endswith(".dist-info")}
        if len(roots) != 1:
            raise WheelError(f"{self.label}: a wheel has one .dist-info directory, this one has {sorted(roots)}")
        return roots.pop()

    def read(self, name: str) -> bytes:
        return self.zip.read(self.members[name])

    def metadata(self, file: str) -> dict:
        member = f"{self.dist_info}/{file}"
        if member not in self.members:
            raise WheelError(f"{self.label}: no {member}")
        return dict(HeaderParser().parsestr(self.read(member).decode("utf-8")).items())

    def recorded_hashes(self) -> Dict[str, str]:
        rows = csv.reader(io.StringIO(self.read(f"{self.dist_info}/RECORD").decode("utf-8")))
        return {row[0]: row[1] for row in rows if row and len(row) >= 2}


def install_wheel(path: str, name: str, version: str, layout: VenvLayout) -> InstalledDistribution:
    """The venv files one wheel installs, RECORD and INSTALLER included; `name`/`version` from the lock."""
    wheel = Wheel(path, f"{name} {version} ({posixpath.basename(path)})")
    wheel_info, metadata = wheel.metadata("WHEEL"), wheel.metadata("METADATA")
    if not wheel_info.get("Wheel-Version", "").startswith("1."):
        raise WheelError(f"{wheel.label}: Wheel-Version {wheel_info.get('Wheel-Version')!r} is not 1.x")
    if normalize_name(metadata.get("Name", "")) != normalize_name(name) or metadata.get("Version") != version:
        raise WheelError(f"{wheel.label}: its METADATA says {metadata.get('Name')} {metadata.get('Version')}, "
                         "not what the lock pins; regenerate the lockfile")
    recorded = wheel.recorded_hashes()
    files = [member_file(wheel, member, layout, recorded) for member in sorted(wheel.members)
             if not dropped(wheel, member)]
    files += entry_point_scripts(wheel, layout)
    files.append(memory_file(f"{layout.site_packages}/{wheel.dist_info}/INSTALLER", INSTALLER, 0o644))
    check_unique(wheel, files)
    files.append(record_file(wheel, files, layout))
    return InstalledDistribution(metadata["Name"], version, tuple(sorted(files, key=lambda f: f.path)))


def dropped(wheel: Wheel, member: str) -> bool:
    directory, _, base = member.rpartition("/")
    return directory == wheel.dist_info and base in DROPPED_DIST_INFO


def target_path(wheel: Wheel, member: str, layout: VenvLayout) -> Tuple[str, bool]:
    """Where a member goes, relative to the venv root, and whether it is a script."""
    parts = member.split("/")
    if any(part in ("", ".", "..") for part in parts) or member.startswith("/"):
        raise WheelError(f"{wheel.label}: member {member!r} would be written outside the venv")
    data_dir = wheel.dist_info[: -len(".dist-info")] + ".data"
    if parts[0] != data_dir:
        return f"{layout.site_packages}/{member}", False
    if len(parts) < 3:
        raise WheelError(f"{wheel.label}: {member!r} is in no scheme of {data_dir}/")
    scheme, rest = parts[1], "/".join(parts[2:])
    if scheme in ("purelib", "platlib"):
        return f"{layout.site_packages}/{rest}", False
    if scheme == "scripts":
        return f"bin/{rest}", True
    if scheme == "headers":
        return f"include/site/python{layout.python_version}/{wheel.dist_info.split('-')[0]}/{rest}", False
    if scheme == "data":
        return rest, False
    raise WheelError(f"{wheel.label}: {member!r} names the unknown scheme {scheme!r}")


def member_file(wheel: Wheel, member: str, layout: VenvLayout, recorded: Dict[str, str]) -> VenvFile:
    info = wheel.members[member]
    path, is_script = target_path(wheel, member, layout)
    data = wheel.read(member)
    expected = recorded.get(member)
    if expected is None or (expected and expected != record_hash(data)):
        raise WheelError(f"{wheel.label}: {member} is {'not in' if expected is None else 'changed from'} the "
                         "wheel's RECORD; the wheel is damaged or was edited")
    executable = bool((info.external_attr >> 16) & 0o111)
    if is_script:
        if data.startswith(b"#!python"):
            data = layout.shebang.encode() + data[len(data.split(b"\n", 1)[0]):]
        return memory_file(path, data, 0o755)
    mode = 0o755 if executable else 0o644
    return VenvFile(path, mode, info.file_size, record_hash(data),
                    opener=lambda: (wheel.zip.open(info), info.file_size))


def memory_file(path: str, data: bytes, mode: int) -> VenvFile:
    return VenvFile(path, mode, len(data), record_hash(data), data=data)


def entry_point_scripts(wheel: Wheel, layout: VenvLayout) -> List[VenvFile]:
    member = f"{wheel.dist_info}/entry_points.txt"
    if member not in wheel.members:
        return []
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # script names keep their case
    parser.read_string(wheel.read(member).decode("utf-8"))
    scripts = []
    for section in ("console_scripts", "gui_scripts"):
        for script, value in sorted(parser.items(section)) if parser.has_section(section) else []:
            scripts.append(memory_file(f"bin/{script}", script_text(wheel, script, value, layout), 0o755))
    return scripts


def script_text(wheel: Wheel, script: str, value: str, layout: VenvLayout) -> bytes:
    target = value.split("[", 1)[0].strip()
    module, _, attribute = target.partition(":")
    if not module or not attribute or "/" in script:
        raise WheelError(f"{wheel.label}: entry point {script} = {value!r} is not `module:attribute`")
    head = attribute.split(".", 1)[0]
    return SCRIPT_TEMPLATE.format(shebang=layout.shebang, module=module.strip(), head=head.strip(),
                                  call=attribute.strip()).encode()


def check_unique(wheel: Wheel, files: List[VenvFile]) -> None:
    seen = set()
    for file in files:
        if file.path in seen:
            raise WheelError(f"{wheel.label}: installs {file.path} twice (a member and an entry point?)")
        seen.add(file.path)


def record_file(wheel: Wheel, files: List[VenvFile], layout: VenvLayout) -> VenvFile:
    return installed_record(f"{layout.site_packages}/{wheel.dist_info}/RECORD", files, layout)


def installed_record(record_path: str, files: Sequence[VenvFile], layout: VenvLayout) -> VenvFile:
    """The installed RECORD: one row per file, paths relative to site-packages, sorted."""
    rows = sorted([(posixpath.relpath(f.path, layout.site_packages), f.digest, str(f.size)) for f in files]
                  + [(posixpath.relpath(record_path, layout.site_packages), "", "")])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows(rows)
    return memory_file(record_path, out.getvalue().encode("utf-8"), 0o644)

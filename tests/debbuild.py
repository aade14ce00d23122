"""Build .debs for tests: real ones with dpkg-deb, hostile ones by writing the ar and tars by hand."""

from __future__ import annotations

import io
import lzma
import os
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

DPKG_ENV = {"SOURCE_DATE_EPOCH": "1700000000", "LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}


@dataclass
class DebTree:
    """A package tree for dpkg-deb: files, dirs, symlinks and hardlinks under a root, plus control data."""

    name: str
    version: str = "1.0"
    architecture: str = "amd64"
    extra_fields: Dict[str, str] = field(default_factory=dict)
    files: Dict[str, Tuple[bytes, int]] = field(default_factory=dict)  # path -> (content, mode)
    dirs: Dict[str, int] = field(default_factory=dict)  # path -> mode
    symlinks: Dict[str, str] = field(default_factory=dict)
    hardlinks: Dict[str, str] = field(default_factory=dict)  # new path -> existing file path
    scripts: Dict[str, str] = field(default_factory=dict)
    conffiles: List[str] = field(default_factory=list)
    triggers: str = ""

    def file(self, path: str, content: bytes, mode: int = 0o644) -> "DebTree":
        self.files[path] = (content, mode)
        return self

    def build(self, out_dir: Path) -> Path:
        root = out_dir / f"{self.name}-tree"
        self.populate(root)
        deb = out_dir / f"{self.name}_{self.version}_{self.architecture}.deb"
        subprocess.run(["dpkg-deb", "--build", "--root-owner-group", "-Zxz", str(root), str(deb)],
                       check=True, env=DPKG_ENV, stdout=subprocess.DEVNULL)
        return deb

    def populate(self, root: Path) -> None:
        (root / "DEBIAN").mkdir(parents=True)
        for path, mode in self.dirs.items():
            (root / path).mkdir(parents=True, exist_ok=True)
        for path, (content, mode) in self.files.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(content)
        for path, target in self.symlinks.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, root / path)
        for path, existing in self.hardlinks.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            os.link(root / existing, root / path)
        for path, (_, mode) in self.files.items():
            os.chmod(root / path, mode)  # after mkdir/link, which a umask could otherwise change
        for path, mode in self.dirs.items():
            os.chmod(root / path, mode)
        self.write_control(root / "DEBIAN")

    def write_control(self, debian: Path) -> None:
        fields = {"Package": self.name, "Version": self.version, "Architecture": self.architecture,
                  "Maintainer": "Test <test@example.org>", **self.extra_fields,
                  "Description": "test package\n A package built by the tests."}
        (debian / "control").write_text("".join(f"{k}: {v}\n" for k, v in fields.items()))
        for name, text in self.scripts.items():
            (debian / name).write_text(text)
            os.chmod(debian / name, 0o755)
        if self.conffiles:
            (debian / "conffiles").write_text("".join(f"{c}\n" for c in self.conffiles))
        if self.triggers:
            (debian / "triggers").write_text(self.triggers)


# ---------------------------------------------------------------- by hand


def tar_member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", mode: int = 0o644,
               linkname: str = "") -> Tuple[tarfile.TarInfo, Optional[bytes]]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uname = info.gname = "root"
    info.linkname = linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (data if kind == tarfile.REGTYPE else None)


def tar_bytes(members, compression: str = "xz", tar_format: int = tarfile.GNU_FORMAT) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tar_format) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return compress(raw.getvalue(), compression)


def compress(data: bytes, compression: str) -> bytes:
    if compression == "xz":
        return lzma.compress(data)
    if compression == "gz":
        import gzip
        return gzip.compress(data, mtime=0)
    if compression == "bz2":
        import bz2
        return bz2.compress(data)
    return data


def control_text(name: str, version: str = "1.0", architecture: str = "amd64") -> bytes:
    return (f"Package: {name}\nVersion: {version}\nArchitecture: {architecture}\n"
            "Maintainer: Test <test@example.org>\nDescription: hand-made\n").encode()


def control_tar(name: str, compression: str = "xz", extra: Optional[Dict[str, bytes]] = None) -> bytes:
    members = [tar_member("./", tarfile.DIRTYPE, mode=0o755), tar_member("./control", data=control_text(name))]
    members += [tar_member(f"./{n}", data=d) for n, d in (extra or {}).items()]
    return tar_bytes(members, compression)


def ar_archive(members: List[Tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    out.write(b"!<arch>\n")
    for name, data in members:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{0o100644:<8o}{len(data):<10}".encode() + b"`\n"
        out.write(header + data + (b"\n" if len(data) % 2 else b""))
    return out.getvalue()


def hand_made_deb(path: Path, name: str, data_members, compression: str = "xz",
                  control_compression: str = "xz", debian_binary: bytes = b"2.0\n") -> Path:
    suffix = {"xz": ".xz", "gz": ".gz", "bz2": ".bz2", "none": "", "zst": ".zst"}
    control = control_tar(name, "xz" if control_compression == "zst" else control_compression)
    path.write_bytes(ar_archive([
        ("debian-binary", debian_binary),
        (f"control.tar{suffix[control_compression]}", control),
        (f"data.tar{suffix[compression]}", tar_bytes(data_members, compression)),
    ]))
    return path

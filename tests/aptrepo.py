"""A real, small, signed apt repository for tests, served on 127.0.0.1.

The .debs are built by `dpkg-deb` from `DebSpec`s (with setuid files, symlinks,
hardlinks and files under /bin and /lib for the layer code), the indexes are
written the way the archive writes them (Packages, Packages.xz, Release with
SHA256, clear-signed InRelease), and the key is a throwaway one in a
temporary GNUPGHOME.  Helpers tamper with a built repository to exercise the
verification failures.

Fixtures (imported by conftest.py): `apt_keys` (session), `apt_repo_factory`,
`apt_repo` (the default repository, served).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import lzma
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import pytest

FIXED_DATE = "Sat, 01 Jan 2000 00:00:00 UTC"
FAR_FUTURE = "Fri, 01 Jan 2100 00:00:00 UTC"


@dataclass(frozen=True)
class FileSpec:
    """One entry of a package's data: kind is file, dir, symlink or hardlink (target = the linked path)."""

    path: str
    content: bytes = b""
    mode: int = 0o644
    kind: str = "file"
    target: str = ""


@dataclass(frozen=True)
class DebSpec:
    name: str
    version: str
    architecture: str = "amd64"
    depends: str = ""
    pre_depends: str = ""
    recommends: str = ""
    provides: str = ""
    essential: bool = False
    priority: str = "optional"
    multi_arch: str = ""
    section: str = "misc"
    source: str = ""
    files: Tuple[FileSpec, ...] = ()
    scripts: Tuple[Tuple[str, str], ...] = ()  # (postinst, "#!/bin/sh\n...")
    conffiles: Tuple[str, ...] = ()  # absolute paths of some of `files`

    @property
    def deb_name(self) -> str:
        version = self.version.split(":", 1)[-1]
        return f"{self.name}_{version}_{self.architecture}.deb"

    @property
    def pool_path(self) -> str:
        source = self.source.split()[0] if self.source else self.name
        return f"pool/main/{source[0]}/{source}/{self.deb_name}"

    def control(self) -> str:
        fields = [("Package", self.name), ("Version", self.version), ("Architecture", self.architecture),
                  ("Maintainer", "Test Maintainer <test@example.invalid>"),
                  ("Installed-Size", str(self.installed_size())), ("Source", self.source),
                  ("Essential", "yes" if self.essential else ""), ("Multi-Arch", self.multi_arch),
                  ("Pre-Depends", self.pre_depends), ("Depends", self.depends), ("Recommends", self.recommends),
                  ("Provides", self.provides), ("Section", self.section), ("Priority", self.priority),
                  ("Description", f"{self.name} for tests\n A package built by tests/aptrepo.py.")]
        return "".join(f"{name}: {value}\n" for name, value in fields if value)

    def installed_size(self) -> int:
        return max(1, sum(len(f.content) for f in self.files if f.kind == "file") // 1024)


def sample_files(name: str) -> Tuple[FileSpec, ...]:
    """Everything the layer code must handle: setuid, symlinks (absolute and relative), a hardlink, /bin and /lib."""
    return (
        FileSpec(f"/bin/{name}", b"#!/bin/sh\necho " + name.encode() + b"\n", 0o755),
        FileSpec(f"/bin/{name}-setuid", b"\x7fELF fake setuid binary\n", 0o4755),
        FileSpec(f"/lib/{name}/lib{name}.so.1", b"\x7fELF fake library\n", 0o644),
        FileSpec(f"/lib/{name}/lib{name}.so", kind="symlink", target=f"lib{name}.so.1"),
        FileSpec(f"/usr/bin/{name}-abs", kind="symlink", target=f"/bin/{name}"),
        FileSpec(f"/usr/bin/{name}-hardlink", kind="hardlink", target=f"/bin/{name}"),
        FileSpec(f"/etc/{name}/{name}.conf", b"setting = 1\n", 0o640),
        FileSpec(f"/usr/share/doc/{name}/" + "long-name-" * 12 + "end.txt", b"a long path\n"),
        FileSpec(f"/var/lib/{name}", kind="dir", mode=0o750),
    )


# A miniature distribution: essential set, alternatives, virtual packages (one
# versioned), a cycle, Recommends, arch-all packages, Multi-Arch qualifiers.
DEFAULT_PACKAGES: Tuple[DebSpec, ...] = (
    DebSpec("libc6", "2.36-9", priority="required", multi_arch="same",
            files=(FileSpec("/lib/x86_64-linux-gnu/libc.so.6", b"\x7fELF libc\n", 0o755),)),
    DebSpec("base-files", "12.4", essential=True, priority="required",
            files=(FileSpec("/etc/os-release", b"ID=fixture\n"),)),
    DebSpec("bash", "5.2-2", essential=True, priority="required", pre_depends="libc6 (>= 2.36)",
            files=(FileSpec("/bin/bash", b"#!fake bash\n", 0o755),)),
    DebSpec("init-system-helpers", "1.65", architecture="all", essential=True, priority="required",
            depends="usrmerge | usr-is-merged"),
    DebSpec("usrmerge", "35", architecture="all", depends="perl-base"),
    DebSpec("usr-is-merged", "35", architecture="all", multi_arch="foreign"),
    DebSpec("perl-base", "5.36.0-7", essential=True, priority="required", pre_depends="libc6 (>= 2.36)",
            multi_arch="foreign"),
    DebSpec("mawk", "1.3.4-1", priority="required", provides="awk", depends="libc6", multi_arch="foreign"),
    DebSpec("gawk", "5.2.1-2", provides="awk", depends="libc6", multi_arch="foreign"),
    DebSpec("media-types", "10.0.0", architecture="all", multi_arch="foreign"),
    DebSpec("python3.11", "3.11.2-6", depends="libc6 (>= 2.36), media-types | mime-support",
            recommends="ca-certificates", multi_arch="allowed", source="python3.11",
            files=(FileSpec("/usr/bin/python3.11", b"#!fake python\n", 0o755),)),
    DebSpec("python3", "3.11.2-1+b1", depends="python3.11 (>= 3.11.2), libpython3-abi (= 3.11)",
            provides="python3-profiler", multi_arch="allowed", source="python3-defaults (3.11.2-1)",
            files=(FileSpec("/usr/bin/python3", kind="symlink", target="python3.11"),)),
    DebSpec("libpython3.11-stdlib", "3.11.2-6", provides="libpython3-abi (= 3.11)", multi_arch="same",
            depends="libc6", source="python3.11"),
    DebSpec("ca-certificates", "20230311", architecture="all", depends="openssl (>= 1.1.1), debconf | debconf-2.0"),
    DebSpec("openssl", "3.0.11-1", depends="libc6", files=sample_files("openssl")),
    DebSpec("debconf", "1.5.82", architecture="all", priority="important", provides="debconf-2.0",
            depends="perl-base"),
    DebSpec("tool", "1.0-1", depends="python3:any, awk, ping | pong", files=sample_files("tool"),
            scripts=(("postinst", "#!/bin/sh\nset -e\necho configured\n"),)),
    DebSpec("ping", "1.0-1", depends="pong"),
    DebSpec("pong", "1.0-1", depends="ping"),
)


@dataclass(frozen=True)
class SigningKey:
    fingerprint: str
    gnupghome: str
    keyring: str  # the exported public key, usable with `gpgv --keyring`


def generate_signing_key(home: str, name: str) -> SigningKey:
    os.makedirs(home, mode=0o700, exist_ok=True)
    env = {**os.environ, "GNUPGHOME": home}
    gpg = ["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    subprocess.run([*gpg, "--quick-gen-key", f"{name} <{name}@example.invalid>", "ed25519", "sign", "never"],
                   env=env, check=True, capture_output=True)
    listing = subprocess.run(["gpg", "--batch", "--with-colons", "--list-keys"], env=env, check=True,
                             capture_output=True, text=True).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    keyring = os.path.join(home, "keyring.gpg")
    with open(keyring, "wb") as f:
        f.write(subprocess.run(["gpg", "--batch", "--export", fingerprint], env=env, check=True,
                               capture_output=True).stdout)
    return SigningKey(fingerprint, home, keyring)


def stop_gpg_agents(top: str) -> None:
    """Stop the gpg-agent of every GNUPGHOME under `top` (gpg starts one per home)."""
    for home, _, files in os.walk(top):
        if "pubring.kbx" in files:
            subprocess.run(["gpgconf", "--kill", "gpg-agent"], env={**os.environ, "GNUPGHOME": home},
                           capture_output=True)


def clearsign(key: SigningKey, text: bytes, *more_keys: SigningKey) -> bytes:
    """Clear-sign `text` with `key` (and with `more_keys` too: one signature each, like the Debian archive)."""
    if more_keys:
        key = merged_home(key, *more_keys)
    users = [arg for k in (key, *more_keys) for arg in ("--local-user", k.fingerprint)]
    return subprocess.run(
        ["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", *users, "--digest-algo", "SHA512",
         "--clearsign"],
        input=text, env={**os.environ, "GNUPGHOME": key.gnupghome}, check=True, capture_output=True,
    ).stdout


def merged_home(key: SigningKey, *more_keys: SigningKey) -> SigningKey:
    """A GNUPGHOME holding the secret keys of all of them (gpg signs from one home)."""
    home = os.path.join(key.gnupghome, "merged-" + "-".join(k.fingerprint[-8:] for k in more_keys))
    if not os.path.isdir(home):
        os.makedirs(home, mode=0o700)
        for k in (key, *more_keys):
            secret = subprocess.run(
                ["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", "--export-secret-keys",
                 k.fingerprint], env={**os.environ, "GNUPGHOME": k.gnupghome}, check=True, capture_output=True,
            ).stdout
            subprocess.run(["gpg", "--batch", "--import"], input=secret, env={**os.environ, "GNUPGHOME": home},
                           check=True, capture_output=True)
    return SigningKey(key.fingerprint, home, key.keyring)


def build_deb(spec: DebSpec, out_dir: Path) -> Path:
    """Build the .deb of `spec` with dpkg-deb (reproducibly: SOURCE_DATE_EPOCH=0, root owner)."""
    with tempfile.TemporaryDirectory(prefix="debroot-") as scratch:
        root = Path(scratch) / "root"
        _make_dir(root / "DEBIAN", 0o755)
        (root / "DEBIAN" / "control").write_text(spec.control())
        for script, text in spec.scripts:
            (root / "DEBIAN" / script).write_text(text)
            os.chmod(root / "DEBIAN" / script, 0o755)
        if spec.conffiles:
            (root / "DEBIAN" / "conffiles").write_text("".join(f"{path}\n" for path in spec.conffiles))
        for entry in sorted(spec.files, key=lambda f: f.kind == "hardlink"):  # link targets exist first
            _place(root, entry)
        out_dir.mkdir(parents=True, exist_ok=True)
        deb = out_dir / spec.deb_name
        subprocess.run(["dpkg-deb", "--build", "--root-owner-group", "-Zxz", str(root), str(deb)],
                       env={**os.environ, "SOURCE_DATE_EPOCH": "0"}, check=True, capture_output=True)
    return deb


def _make_dir(path: Path, mode: int = 0o755) -> None:
    """mkdir -p with fixed modes (not the umask's), so that the .deb is the same on every machine."""
    if not path.parent.exists():
        _make_dir(path.parent)
    path.mkdir(exist_ok=True)
    os.chmod(path, mode)


def _place(root: Path, entry: FileSpec) -> None:
    path = root / entry.path.lstrip("/")
    if not path.parent.exists():
        _make_dir(path.parent)
    if entry.kind == "dir":
        _make_dir(path, entry.mode)
    elif entry.kind == "symlink":
        os.symlink(entry.target, path)
    elif entry.kind == "hardlink":
        os.link(root / entry.target.lstrip("/"), path)
    else:
        path.write_bytes(entry.content)
        os.chmod(path, entry.mode)


@functools.lru_cache(maxsize=None)
def _built_deb(spec: DebSpec, cache_dir: str) -> bytes:
    # dpkg-deb is the slow part of making a repository; the same spec always gives the same bytes.
    return build_deb(spec, Path(cache_dir)).read_bytes()


@dataclass
class AptRepo:
    """One suite of a generated repository under `root`; `url` is set once it is served."""

    root: Path
    suite: str
    key: SigningKey
    packages: Tuple[DebSpec, ...]
    components: Tuple[str, ...] = ("main",)
    architectures: Tuple[str, ...] = ("amd64",)
    valid_until: Optional[str] = FAR_FUTURE
    acquire_by_hash: bool = False
    url: str = ""
    debs: Dict[str, Path] = field(default_factory=dict)  # by package name; with several architectures, the last

    @property
    def dists(self) -> Path:
        return self.root / "dists" / self.suite

    def index_path(self, component: str = "main", architecture: str = "amd64", name: str = "Packages.xz") -> Path:
        return self.dists / component / f"binary-{architecture}" / name

    def source_json(self, name: str = "fixture", keyring: Optional[str] = None,
                    suites: Optional[Sequence[str]] = None) -> dict:
        """This repository as an entry of a lock request's `sources`."""
        return {"name": name, "url": self.url, "suites": list(suites or [self.suite]),
                "components": list(self.components), "architectures": list(self.architectures),
                "keyring": keyring or self.key.keyring}

    # Tampering, to check that the verification notices.

    def tamper_signed_text(self) -> None:
        """Change a byte inside the signed part of InRelease: a bad signature."""
        data = (self.dists / "InRelease").read_bytes()
        (self.dists / "InRelease").write_bytes(data.replace(b"Suite: ", b"Suite:  ", 1))

    def sign_with(self, key: SigningKey, *more_keys: SigningKey) -> None:
        """Re-sign InRelease with other keys (say one that the client's keyring lacks)."""
        (self.dists / "InRelease").write_bytes(clearsign(key, (self.dists / "Release").read_bytes(), *more_keys))

    def double_message(self) -> None:
        """Two signed messages in one InRelease file: gpgv cannot say which one it verified."""
        signed = (self.dists / "InRelease").read_bytes()
        (self.dists / "InRelease").write_bytes(signed + signed)

    def strip_signature(self) -> None:
        """Serve the unsigned Release text as InRelease."""
        shutil.copyfile(self.dists / "Release", self.dists / "InRelease")

    def corrupt_index(self, component: str = "main", architecture: str = "amd64", keep_size: bool = True) -> None:
        """Change Packages.xz after signing: a hash mismatch (same size) or a size mismatch."""
        path = self.index_path(component, architecture)
        data = bytearray(path.read_bytes())
        if keep_size:
            data[len(data) // 2] ^= 0xFF
        else:
            data += b"\0"
        path.write_bytes(bytes(data))

    def replace_index(self, packages_text: str, component: str = "main", architecture: str = "amd64",
                      resign: bool = True) -> None:
        """Publish another Packages text (for malformed-index tests), re-signed by default."""
        _write_index_files(self.index_path(component, architecture, "Packages").parent, packages_text)
        if resign:
            self.publish_release()

    # Building.

    def build(self, cache_dir: Path) -> "AptRepo":
        for spec in self.packages:
            target = self.root / spec.pool_path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_built_deb(spec, str(cache_dir)))
            self.debs[spec.name] = target
        for component in self.components:
            for architecture in self.architectures:
                directory = self.index_path(component, architecture).parent
                _write_index_files(directory, self.packages_text(architecture))
        self.publish_release()
        return self

    def packages_text(self, architecture: str) -> str:
        paragraphs = []
        for spec in sorted(self.packages, key=lambda s: (s.name, s.version)):
            if spec.architecture not in (architecture, "all"):
                continue
            deb = (self.root / spec.pool_path).read_bytes()
            control = spec.control().rstrip("\n")
            paragraphs.append(f"{control}\nFilename: {spec.pool_path}\nSize: {len(deb)}\n"
                              f"MD5sum: {hashlib.md5(deb).hexdigest()}\nSHA256: {hashlib.sha256(deb).hexdigest()}\n")
        return "\n".join(paragraphs)

    def publish_release(self) -> None:
        lines = ["Origin: Fixture", "Label: Fixture", f"Suite: {self.suite}", f"Codename: {self.suite}",
                 f"Date: {FIXED_DATE}"]
        if self.valid_until:
            lines.append(f"Valid-Until: {self.valid_until}")
        if self.acquire_by_hash:
            lines.append("Acquire-By-Hash: yes")
        lines += [f"Architectures: {' '.join(self.architectures)}", f"Components: {' '.join(self.components)}",
                  "Description: a repository generated by tests", "SHA256:"]
        for path in sorted(p for p in self.dists.rglob("Packages*") if "by-hash" not in p.parts):
            data = path.read_bytes()
            lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data):8d} {path.relative_to(self.dists)}")
            if self.acquire_by_hash:
                by_hash = path.parent / "by-hash" / "SHA256" / hashlib.sha256(data).hexdigest()
                by_hash.parent.mkdir(parents=True, exist_ok=True)
                by_hash.write_bytes(data)
        release = ("\n".join(lines) + "\n").encode()
        (self.dists / "Release").write_bytes(release)
        (self.dists / "InRelease").write_bytes(clearsign(self.key, release))


def _write_index_files(directory: Path, text: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Packages").write_text(text)
    (directory / "Packages.xz").write_bytes(lzma.compress(text.encode(), preset=6))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """Serve `directory` over HTTP on a free loopback port; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # A short poll interval: shutdown() waits for the next poll.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="apt-repo-server",
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass(frozen=True)
class AptKeys:
    trusted: SigningKey  # signs the repositories; its keyring is what clients use
    other: SigningKey  # a key no client trusts
    deb_cache: Path


@pytest.fixture(scope="session")
def apt_keys() -> Iterator[AptKeys]:
    # A short path of its own: gpg-agent's socket path has a length limit.
    home = tempfile.mkdtemp(prefix="aptkeys-")
    keys = AptKeys(generate_signing_key(os.path.join(home, "trusted"), "fixture-archive"),
                   generate_signing_key(os.path.join(home, "other"), "stranger"),
                   Path(home) / "debs")
    try:
        yield keys
    finally:
        stop_gpg_agents(home)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def apt_repo_factory(tmp_path: Path, apt_keys: AptKeys):
    """make(packages=DEFAULT_PACKAGES, suite="fixture", **AptRepo options) -> a built AptRepo, served.

    Repositories made by one test share a root (and URL), so several suites can
    live side by side.
    """
    root = tmp_path / "repo"
    root.mkdir()
    with serve_directory(root) as url:
        def make(packages: Sequence[DebSpec] = DEFAULT_PACKAGES, suite: str = "fixture", **options) -> AptRepo:
            repo = AptRepo(root=root, suite=suite, key=apt_keys.trusted, packages=tuple(packages), url=url, **options)
            return repo.build(apt_keys.deb_cache)
        yield make


@pytest.fixture
def apt_repo(apt_repo_factory) -> AptRepo:
    return apt_repo_factory()


def debs_of(repo: AptRepo) -> List[Path]:
    return [repo.debs[name] for name in sorted(repo.debs)]

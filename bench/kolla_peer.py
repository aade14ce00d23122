#!/usr/bin/env python3
"""The Kolla-style peer: the same image definitions as Containerfiles with RUN apt-get, built by buildah.

    python3 bench/kolla_peer.py                              # base -> python-base -> openstack-base -> keystone
    python3 bench/kolla_peer.py --images all --reps 2        # the whole images/ set
    python3 bench/kolla_peer.py --images all --json kolla.json --markdown docs/benchmarks.md

The Kolla/tcib way: one Containerfile per image, `FROM` its parent,
`RUN apt-get update && apt-get install -y --no-install-recommends <packages> && apt-get clean &&
rm -rf /var/lib/apt/lists/*`, COPY for its files, then ENV/LABEL/USER/WORKDIR/EXPOSE/ENTRYPOINT/CMD.
Accounts with fixed ids are created in the base image (as Kolla's base does), with adduser's
system-id range widened so that packages' `adduser --system` accept them. Each Containerfile is
generated from `./pants peek` of the same targets, so both sides build the same definitions.

The base is debian:bookworm as its official image is made (mmdebstrap --variant=minbase, plus
usr-is-merged and `Acquire::Languages "none"`), since no registry is reachable: the rootfs
tarball is made once and put into each fresh buildah storage with `FROM scratch` + `ADD`
(timed apart as "import base"). Builds run `buildah bud --isolation chroot --timestamp 0
--layers`, up to --jobs images at once as soon as their parent is built (kolla-build's threads).

.deb cache: with --apt-cache warm (default) a volume at /var/cache/apt/archives is pre-filled with
hardlinks to the same .debs our build reads (under apt's file names), so neither side downloads a
package; `apt-get update` still fetches the indexes, as it does in Kolla. With --apt-cache cold,
apt downloads everything from deb.debian.org (compare with bench/images_set.py's empty cache).

Measured side by side, alternating which side goes first: cold build of the set (ours: empty
store; buildah: empty storage), wall/CPU/peak RSS; export of the buildah images to OCI layouts
(gzip, what a push does; ours writes layouts as part of the build); sizes; whether two cold
builds give the same digests (and, where not, which files differ); no-op and one-leaf-file
rebuilds; and a base package bump (bench/bumps.py: openssl/libssl3 between bookworm and
bookworm-security): rebuild time and the bytes a host holding every image must pull.
Standard library only (Python 3.9+); needs buildah, mmdebstrap and gpgv.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as B  # noqa: E402
import bumps  # noqa: E402
from images_set import LEAF_FILE, Ours  # noqa: E402

KEY = "kolla"
DEFAULT_CHAIN = ["base", "python-base", "openstack-base", "keystone"]
SOURCES = [
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
]


# --------------------------------------------------------------------------------------------
# Containerfiles from `pants peek`


def peek(repo: Path, logs: Path) -> Dict[str, dict]:
    log = logs / "peek.log"
    out = logs / "peek.json"
    result = subprocess.run(["./pants", "--no-pantsd", "peek", "images::"], cwd=repo, env=B.clean_env(),
                            stdout=open(out, "wb"), stderr=open(log, "wb"))
    if result.returncode:
        raise SystemExit(f"error: ./pants peek failed, see {log}")
    return {t["address"]: t for t in json.loads(out.read_text())}


def image_name(address: str) -> str:
    """`keystone` for images/keystone:keystone, `source/keystone` for images/source/keystone:keystone."""
    path = address.split(":")[0]
    return path[len("images/"):] if path.startswith("images/") else path


def image_tag(address: str) -> str:
    """The buildah tag (and context directory) of an image: one path segment, `source-keystone`."""
    return "localhost/kolla/" + image_name(address).replace("/", "-")


@dataclass(frozen=True)
class ExtraSteps:
    """What a caller adds to an image's generated Containerfile, right after its package install:
    Debian packages (into the same apt-get line), RUN/ENV lines, and files those lines read."""
    packages: Tuple[str, ...] = ()
    lines: Tuple[str, ...] = ()
    files: Tuple[Tuple[str, str], ...] = ()  # (name in the build context, text)


def parent_address(target: dict) -> Optional[str]:
    parent = target.get("parent")
    if not parent:
        return None
    path = parent.lstrip("/").split(":")[0]
    return f"{path}:{parent.split(':')[1] if ':' in parent else path.split('/')[-1]}"


def resolve_files(target: dict, targets: Dict[str, dict]) -> List[dict]:
    address = target["address"]
    directory = address.split(":")[0]
    out = []
    for spec in target.get("files") or []:
        full = f"{directory}{spec}" if spec.startswith(":") else spec.lstrip("/")
        out.append(targets[full])
    return out


def quote(value: str) -> str:
    return json.dumps(value)


def install_line(packages: Sequence[str], recommends: bool, apt_cache: str, extra: Sequence[str] = ()) -> str:
    """Kolla's package macro. With the cache volume apt-get clean would empty the volume; what it removes
    from the image itself (pkgcache.bin, srcpkgcache.bin) is removed by name instead."""
    flags = "" if recommends else " --no-install-recommends"
    downgrade = " --allow-downgrades" if extra else ""
    clean = "rm -f /var/cache/apt/*.bin" if apt_cache == "warm" else "apt-get clean"
    return (f"RUN apt-get update && apt-get install -y{flags}{downgrade} {' '.join([*packages, *extra])} && "
            f"{clean} && rm -rf /var/lib/apt/lists/*")


def accounts_line(users: dict, names: Sequence[str]) -> str:
    groups = users.get("groups") or {}
    table = users.get("users") or {}
    commands = [
        # Kolla's ids are above adduser's system range; widen it so `adduser --system` in maintainer
        # scripts accepts the accounts made here instead of failing.
        "sed -i -e 's/^#\\?LAST_SYSTEM_UID=.*/LAST_SYSTEM_UID=59999/' -e 's/^#\\?LAST_SYSTEM_GID=.*/LAST_SYSTEM_GID=59999/' "
        "-e 's/^#\\?FIRST_UID=.*/FIRST_UID=60000/' -e 's/^#\\?FIRST_GID=.*/FIRST_GID=60000/' /etc/adduser.conf",
    ]
    wanted_groups = {name: groups.get(name, table[name]["uid"]) for name in names}
    for name in names:
        for group in table[name].get("groups") or []:
            wanted_groups[group] = groups[group]
    for group, gid in sorted(wanted_groups.items(), key=lambda kv: kv[1]):
        commands.append(f"groupadd --force --gid {gid} {group}")
    for name in sorted(names, key=lambda n: table[n]["uid"]):
        user = table[name]
        gid = groups.get(name, user["uid"])
        extra = ",".join(user.get("groups") or [])
        commands.append(f"useradd -l -M --uid {user['uid']} --gid {gid}" + (f" --groups {extra}" if extra else "")
                        + f" --home-dir {user.get('home', '/nonexistent')} --shell {user.get('shell', '/usr/sbin/nologin')} {name}")
    return "RUN " + " && \\\n    ".join(commands)


def effective_user(target: dict, targets: Dict[str, dict]) -> Optional[str]:
    """The image's user, or the one it inherits (a `USER root` above must not change it)."""
    while target:
        if target.get("user"):
            return target["user"]
        parent = parent_address(target)
        target = targets.get(parent) if parent else None
    return None


def write_context(ctx: Path, target: dict, targets: Dict[str, dict], repo: Path, users: dict, all_users: Sequence[str],
                  apt_cache: str, pins: Sequence[str] = (), extra: ExtraSteps = ExtraSteps()) -> None:
    if ctx.exists():
        shutil.rmtree(ctx)
    ctx.mkdir(parents=True)
    parent = parent_address(target)
    lines = [f"FROM {image_tag(parent) if parent else 'localhost/debian:bookworm-mm'}"]
    if parent:
        lines.append("USER root")  # as Kolla's Dockerfiles do: the parent may end as a service account
    if not parent and all_users:
        lines.append(accounts_line(users, all_users))
    packages = [*(target.get("packages") or []), *extra.packages]
    if packages or pins:
        lines.append(install_line(packages, bool(target.get("recommends")), apt_cache, pins))
    for name, text in extra.files:
        (ctx / name).write_text(text)
    lines.extend(extra.lines)
    for i, files in enumerate(resolve_files(target, targets)):
        directory = files["address"].split(":")[0]
        for source in files["sources"]:
            rel = os.path.relpath(source, directory)
            dest = ctx / f"files{i}" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / source, dest)
        mode = files.get("mode") or "0644"
        owner = files.get("owner") or "0:0"
        lines.append(f"COPY --chmod={mode} --chown={owner} files{i}/ {files['destination'].rstrip('/')}/")
    for key, value in sorted((target.get("env") or {}).items()):
        lines.append(f"ENV {key}={quote(value)}")
    for key, value in sorted((target.get("labels") or {}).items()):
        lines.append(f"LABEL {quote(key)}={quote(value)}")
    if target.get("exposed_ports"):
        lines.append("EXPOSE " + " ".join(target["exposed_ports"]))
    if target.get("workdir"):
        lines.append(f"WORKDIR {target['workdir']}")
    user = effective_user(target, targets)
    if user:
        lines.append(f"USER {user}")
    if target.get("entrypoint") is not None:
        lines.append(f"ENTRYPOINT {json.dumps(target['entrypoint'])}")
    if target.get("cmd") is not None:
        lines.append(f"CMD {json.dumps(target['cmd'])}")
    (ctx / "Containerfile").write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------------
# buildah


def cached_deb_entry(path: Path) -> Tuple[str, dict]:
    """(name, {version, architecture, sha256}) of a .deb in the sha256-named cache, from its control file."""
    fields = subprocess.run(["dpkg-deb", "--field", str(path), "Package", "Version", "Architecture"],
                            check=True, capture_output=True, text=True).stdout
    values = dict(line.split(": ", 1) for line in fields.splitlines() if ": " in line)
    return values["Package"], {"version": values["Version"], "architecture": values["Architecture"],
                               "sha256": path.stem}


class Kolla:
    def __init__(self, work: Path, images: List[str], targets: Dict[str, dict], repo: Path, apt_cache: str,
                 jobs: int, lock: dict, extra_debs: Sequence[bumps.Version], deb_source: Path):
        self.work = work
        self.logs = work / "logs"
        self.images = images  # addresses, parents first
        self.targets = targets
        self.repo = repo
        self.apt_cache = apt_cache
        self.jobs = jobs
        self.storage: Optional[Path] = None
        self.bud_args: List[str] = []  # more `buildah bud` options, for every image (e.g. a --volume)
        self.rootfs = work / "debian-rootfs.tar"
        self.archives = work / "apt-archives"
        self.users = B.load_lock(repo / "images/users.yaml")
        # Kolla's base creates every account of its table, whichever image uses it.
        self.all_users = sorted(self.users.get("users") or {})
        if apt_cache == "warm":
            self.fill_archives(lock, extra_debs, deb_source)

    def fill_archives(self, lock: dict, extra: Sequence[bumps.Version], deb_source: Path) -> None:
        self.archives.mkdir(parents=True, exist_ok=True)
        (self.archives / "partial").mkdir(exist_ok=True)
        packages = lock["architectures"]["amd64"]
        entries = [(name, info) for name, info in packages.items()]
        entries += [(v.name, {"version": v.version, "architecture": packages[v.name]["architecture"], "sha256": v.sha256})
                    for v in extra]
        # apt installs what the lock leaves out (exclude_packages): give it every cached .deb, not
        # only the locked ones, so that a warm cache downloads nothing but the indexes.
        locked = {f"{info['sha256']}.deb" for _, info in entries}
        entries += [cached_deb_entry(path) for path in sorted(deb_source.glob("*.deb")) if path.name not in locked]
        for name, info in entries:
            source = deb_source / f"{info['sha256']}.deb"
            target = self.archives / B.deb_filename_for_apt(name, info)
            if source.exists() and not target.exists():
                try:
                    os.link(source, target)
                except OSError:
                    shutil.copy2(source, target)

    def buildah(self) -> List[str]:
        assert self.storage
        return ["buildah", "--root", str(self.storage / "root"), "--runroot", str(self.storage / "run"),
                "--storage-driver", "overlay"]

    def make_rootfs(self) -> B.Run:
        if self.rootfs.exists():
            return None
        tmp = self.rootfs.with_suffix(".tmp.tar")
        r = B.run("mmdebstrap debian:bookworm rootfs (minbase)",
                  ["mmdebstrap", "--variant=minbase", "--include=usr-is-merged",
                   "--aptopt=Acquire::Languages \"none\"", "bookworm", str(tmp), *SOURCES],
                  self.logs / "mmdebstrap-rootfs.log", env={**os.environ, "SOURCE_DATE_EPOCH": "0"}).check()
        os.replace(tmp, self.rootfs)
        return r

    def fresh_storage(self, name: str) -> B.Run:
        self.remove_storage()
        self.storage = self.work / name
        self.remove_storage()  # left over by an interrupted run
        self.storage.mkdir(parents=True)
        ctx = self.work / "ctx-debian"
        ctx.mkdir(exist_ok=True)
        if not (ctx / "rootfs.tar").exists():
            os.link(self.rootfs, ctx / "rootfs.tar")
        (ctx / "Containerfile").write_text('FROM scratch\nADD rootfs.tar /\nCMD ["bash"]\n')
        return B.run(f"import base into {name}", [*self.buildah(), "bud", "--isolation", "chroot", "--timestamp", "0",
                                                   "--layers", "-t", "localhost/debian:bookworm-mm", str(ctx)],
                     self.logs / f"import-{name}.log").check()

    def remove_storage(self) -> None:
        if self.storage and self.storage.exists():
            subprocess.run([*self.buildah(), "rm", "--all"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.run(["umount", "-R", str(self.storage / "root" / "overlay")], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            shutil.rmtree(self.storage, ignore_errors=True)

    def contexts(self, pins: Sequence[str] = (), extras: Mapping[str, ExtraSteps] = {}) -> None:
        for address in self.images:
            target = self.targets[address]
            write_context(self.context(address), target, self.targets, self.repo, self.users, self.all_users,
                          self.apt_cache, pins if not parent_address(target) else (),
                          extras.get(address, ExtraSteps()))

    def context(self, address: str) -> Path:
        return self.work / "ctx" / image_tag(address).split("/")[-1]

    def build_set(self, label: str, tag: str) -> Tuple[B.Run, Dict[str, B.Run]]:
        """Build every image, parents first, up to `jobs` at once; one Run for the whole set."""
        done: Dict[str, B.Run] = {}
        failed: List[str] = []
        lock = threading.Condition()
        running = set()
        def build(address: str) -> None:
            name = image_name(address)
            volume = []
            if self.apt_cache == "warm":
                # A private hardlinked copy per build: concurrent apt-gets must not share archives/lock.
                archives = self.work / f"apt-archives-{name.replace('/', '-')}"
                shutil.rmtree(archives, ignore_errors=True)
                B.link_tree(self.archives, archives)
                (archives / "partial").mkdir(exist_ok=True)
                volume = ["--volume", f"{archives}:/var/cache/apt/archives"]
            r = B.run(f"{label}: {name}", [*self.buildah(), "bud", "--isolation", "chroot", "--timestamp", "0",
                                            "--layers", *volume, *self.bud_args, "-t", image_tag(address), str(self.context(address))],
                      self.logs / f"{tag}-{name.replace('/', '-')}.log", env={**os.environ, "BUILDAH_LAYERS": "true"})
            if volume:
                shutil.rmtree(archives, ignore_errors=True)
            with lock:
                done[address] = r
                running.discard(address)
                if r.returncode:
                    failed.append(address)
                lock.notify_all()

        busy0 = B._busy_seconds()
        start = time.monotonic()
        print(f"  [{time.strftime('%H:%M:%S')}] {label}: {len(self.images)} images, {self.jobs} at a time", flush=True)
        with lock:
            while len(done) < len(self.images) and not failed:
                ready = [a for a in self.images if a not in done and a not in running
                         and (parent_address(self.targets[a]) in done or parent_address(self.targets[a]) is None)]
                for address in ready[: max(0, self.jobs - len(running))]:
                    running.add(address)
                    threading.Thread(target=build, args=(address,), daemon=True).start()
                lock.wait()
            while running:
                lock.wait()
        wall = time.monotonic() - start
        if failed:
            tail = "\n".join(Path(done[failed[0]].log).read_text(errors="replace").splitlines()[-30:])
            raise SystemExit(f"error: buildah failed for {failed}: see {done[failed[0]].log}\n{tail}")
        cpu = sum(r.cpu for r in done.values())
        other = max(0.0, B._busy_seconds() - busy0 - cpu) / wall
        steps = sum(count_run_steps(Path(r.log)) for r in done.values())
        total = B.Run(label, ["buildah bud ..."], 0, wall, cpu, max(r.peak_rss_mb for r in done.values()), other,
                      str(self.logs), {"run_steps_executed": steps})
        print(f"      set: {wall:.1f} s wall, {cpu:.1f} s cpu, other load {other:.2f} cores, "
              f"RUN steps executed {steps}", flush=True)
        return total, done

    def export(self, label: str, dest: Path) -> Tuple[B.Run, Dict[str, Path]]:
        """buildah push of every image to an OCI layout (gzip layers), one layout per image."""
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        busy0 = B._busy_seconds()
        start = time.monotonic()
        cpu = 0.0
        layouts = {}
        for address in self.images:
            name = image_name(address)
            layouts[name] = dest / image_tag(address).split("/")[-1]
            r = B.run(f"{label}: {name}", [*self.buildah(), "push", "--format", "oci", image_tag(address),
                                           f"oci:{layouts[name]}:latest"],
                      self.logs / f"push-{dest.name}-{name.replace('/', '-')}.log",
                      quiet=True).check()
            cpu += r.cpu
        wall = time.monotonic() - start
        other = max(0.0, B._busy_seconds() - busy0 - cpu) / wall
        print(f"  {label}: {wall:.1f} s wall, {cpu:.1f} s cpu", flush=True)
        return B.Run(label, ["buildah push ..."], 0, wall, cpu, 0, other, str(self.logs)), layouts


def count_run_steps(log: Path) -> int:
    """RUN steps buildah executed (not taken from its layer cache) in one build log."""
    text = log.read_text(errors="replace").splitlines()
    count = 0
    for i, line in enumerate(text):
        if line.startswith("STEP ") and ": RUN " in line:
            following = text[i + 1] if i + 1 < len(text) else ""
            if not following.startswith("--> Using cache"):
                count += 1
    return count


# --------------------------------------------------------------------------------------------
# Comparing layers and packages


def layer_files(blob: Path) -> Dict[str, Tuple]:
    """path -> (type, mode, uid, gid, mtime, link, sha256) of a gzip layer."""
    out = {}
    with tarfile.open(blob, "r:gz") as tar:
        for member in tar:
            digest = None
            if member.isfile():
                f = tar.extractfile(member)
                digest = hashlib.sha256(f.read()).hexdigest() if f else None
            out[member.name.lstrip("./")] = (member.type, member.mode, member.uid, member.gid, int(member.mtime),
                                             member.linkname, digest)
    return out


def differing_files(a: Path, b: Path) -> List[str]:
    fa, fb = layer_files(a), layer_files(b)
    return sorted(p for p in set(fa) | set(fb) if fa.get(p) != fb.get(p))


def dpkg_status(layout: Path) -> Dict[str, str]:
    """Installed packages (name -> version) from the topmost layer of an image with /var/lib/dpkg/status."""
    for layer in reversed(B.image_layers(layout)):
        with tarfile.open(B.blob_path(layout, layer.digest), "r:gz") as tar:
            for member in tar:
                if member.name.lstrip("./") == "var/lib/dpkg/status" and member.isfile():
                    text = tar.extractfile(member).read().decode("utf-8", "replace")
                    out = {}
                    for stanza in text.split("\n\n"):
                        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line.startswith(" "))
                        if fields.get("Package") and "installed" in fields.get("Status", ""):
                            out[fields["Package"]] = fields.get("Version", "")
                    return out
    return {}


def classify(paths: Sequence[str]) -> Dict[str, int]:
    kinds: Dict[str, int] = {}
    for p in paths:
        if p.endswith(".pyc"):
            kind = "*.pyc"
        elif p.startswith("var/log/"):
            kind = "var/log/*"
        elif p.startswith("var/cache/debconf"):
            kind = "var/cache/debconf/*"
        elif p.startswith("var/lib/dpkg"):
            kind = "var/lib/dpkg/*"
        elif p.startswith("etc/"):
            kind = p if p.count("/") <= 1 else "etc/" + p.split("/")[1] + "/*"
        else:
            kind = "/".join(p.split("/")[:2]) + "/*"
        kinds[kind] = kinds.get(kind, 0) + 1
    return dict(sorted(kinds.items(), key=lambda kv: -kv[1]))


# --------------------------------------------------------------------------------------------


def order_parents_first(addresses: Sequence[str], targets: Dict[str, dict]) -> List[str]:
    out: List[str] = []

    def visit(a: str) -> None:
        if a in out:
            return
        parent = parent_address(targets[a])
        if parent:
            visit(parent)
        out.append(a)

    for a in sorted(addresses):
        visit(a)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", nargs="*", default=DEFAULT_CHAIN,
                        help="image names (with their parents), or `all` (default: base python-base openstack-base keystone)")
    parser.add_argument("--reps", type=int, default=2, help="cold builds of each side (default 2; two are needed "
                                                             "for the digest comparison)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="buildah builds at once (default: cores)")
    parser.add_argument("--apt-cache", choices=["warm", "cold"], default="warm")
    parser.add_argument("--bump-source", default="openssl")
    parser.add_argument("--deb-cache", default=str(B.DEFAULT_DEB_CACHE))
    B.add_run_options(parser)
    args = parser.parse_args(argv)
    B.require_tools("buildah", "mmdebstrap", "gpgv")

    work = B.work_dir(args.work, KEY)
    info = B.machine()
    info["buildah"] = B.tool_version(["buildah", "--version"])
    info["mmdebstrap"] = B.tool_version(["mmdebstrap", "--version"])
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    lock = B.load_lock(B.REPO_ROOT / "3rdparty/debian/lock.yaml")
    ours = Ours(work / "ours", [], Path(args.deb_cache), args.bump_source)
    targets = peek(ours.repo, logs)
    images_by_name = {image_name(a): a for a, t in targets.items() if t.get("target_type") == "oci_image"}
    # The source images (a venv from PyPI) are built the Kolla way by bench/kolla_source.py.
    wanted = sorted(n for n, a in images_by_name.items() if not targets[a].get("python_requirements")) \
        if args.images == ["all"] else args.images
    addresses = order_parents_first([images_by_name[n] for n in wanted], targets)
    names = [image_name(a) for a in addresses]
    ours.targets = [a.split(":")[0] for a in addresses]
    print(f"images (parents first): {' '.join(names)}; work {work}")
    kolla = Kolla(work / "kolla", addresses, targets, ours.repo, args.apt_cache, args.jobs, lock,
                  ours.old_versions, ours.deb_cache)
    rootfs_run = kolla.make_rootfs()
    pins = [f"{v.name}={v.version}" for v in ours.old_versions]

    cold_ours: List[B.Run] = []
    cold_kolla: List[B.Run] = []
    imports: List[B.Run] = []
    exports: List[B.Run] = []
    ours_digests: List[Dict[str, str]] = []
    kolla_ids: List[Dict[str, dict]] = []
    kolla_layouts: List[Dict[str, Path]] = []
    for rep in range(args.reps):
        def side_ours() -> None:
            cold_ours.append(ours.cold(f"ours cold #{rep + 1}", f"cold-{rep}"))
            ours_digests.append(ours.digests())

        def side_kolla() -> None:
            imports.append(kolla.fresh_storage(f"storage-{rep}"))
            kolla.contexts()
            run, _ = kolla.build_set(f"kolla cold #{rep + 1}", f"cold-{rep}")
            cold_kolla.append(run)
            ids = {}
            for address in addresses:
                name = image_name(address)
                inspect = json.loads(subprocess.run([*kolla.buildah(), "inspect", "--type", "image",
                                                     image_tag(address)], check=True,
                                                    stdout=subprocess.PIPE).stdout)
                ids[name] = {"id": inspect.get("FromImageID"), "diff_ids": inspect["OCIv1"]["rootfs"]["diff_ids"]}
            kolla_ids.append(ids)
            export, layouts = kolla.export(f"kolla export #{rep + 1}", kolla.work / f"oci-{rep}")
            exports.append(export)
            kolla_layouts.append(layouts)

        for side in ((side_ours, side_kolla) if rep % 2 == 0 else (side_kolla, side_ours)):
            side()

    # Rebuilds on the last round's caches.
    rebuilds: Dict[str, Dict[str, B.Run]] = {"ours": {}, "kolla": {}}
    rebuilds["ours"]["noop"] = ours.package("ours no-op", "noop")
    rebuilds["kolla"]["noop"], _ = kolla.build_set("kolla no-op", "noop")
    try:
        ours.package("ours: start pantsd", "pantsd-start", pantsd=True)
        rebuilds["ours"]["pantsd_noop"] = ours.package("ours no-op, warm pantsd", "pantsd-noop", pantsd=True)
        if any(a.startswith("images/keystone:") for a in addresses):
            ours.change_leaf(100)
            rebuilds["ours"]["pantsd_leaf"] = ours.package("ours leaf change, warm pantsd", "pantsd-leaf", pantsd=True)
            ours.reset()
            ours.package("ours leaf reverted, warm pantsd", "pantsd-leaf-back", pantsd=True)
    finally:
        ours.stop_pantsd()
    leaf_in_set = any(a.startswith("images/keystone:") for a in addresses)
    if leaf_in_set:
        ours.change_leaf(0)
        rebuilds["ours"]["leaf"] = ours.package("ours leaf file change", "leaf")
        ours.reset()
        ours.package("ours leaf file reverted", "leaf-back")  # dist/ as before the change
        leaf_ctx = kolla.work / "ctx" / "keystone"
        kolla.contexts()
        ini = next(leaf_ctx.rglob(Path(LEAF_FILE).name))
        ini.write_text(ini.read_text() + "# changed by bench/kolla_peer.py (0)\n")
        rebuilds["kolla"]["leaf"], _ = kolla.build_set("kolla leaf file change", "leaf")
        kolla.contexts()
        kolla.build_set("kolla leaf file reverted", "leaf-back")

    ours_before = ours.layers()
    ours.bump()
    rebuilds["ours"]["bump"] = ours.package(f"ours base bump ({ours.bump_text})", "bump")
    ours_after = ours.layers()
    ours.reset()
    kolla_before = {n: B.image_layers(p) for n, p in kolla_layouts[-1].items()}
    kolla.contexts(pins)
    rebuilds["kolla"]["bump"], _ = kolla.build_set(f"kolla base bump ({' '.join(pins)})", "bump")
    _, bumped_layouts = kolla.export("kolla export after bump", kolla.work / "oci-bump")
    kolla_after = {n: B.image_layers(p) for n, p in bumped_layouts.items()}
    ours_moved = B.new_bytes(ours_before, ours_after)
    kolla_moved = B.new_bytes(kolla_before, kolla_after)

    # Sizes, packages and reproducibility.
    ours_sizes = B.set_sizes(ours_before)
    kolla_sizes = B.set_sizes(kolla_before)
    ours_same = all(d == ours_digests[0] for d in ours_digests[1:]) if len(ours_digests) > 1 else None
    kolla_same_ids = {}
    kolla_diff_layers: Dict[str, dict] = {}
    if len(kolla_ids) > 1:
        for name in names:
            a, b = kolla_ids[0][name], kolla_ids[1][name]
            kolla_same_ids[name] = a["id"] == b["id"]
            differing = [i for i, (x, y) in enumerate(zip(a["diff_ids"], b["diff_ids"])) if x != y]
            kolla_diff_layers[name] = {"layers": len(a["diff_ids"]), "differing_layers": differing}
    # Files that differ between the two builds, in each image's own layers.
    differing_files_by_image: Dict[str, dict] = {}
    if len(kolla_layouts) > 1:
        for name in names:
            la, lb = B.image_layers(kolla_layouts[0][name]), B.image_layers(kolla_layouts[1][name])
            start = len(B.image_layers(kolla_layouts[0][image_name(parent_address(targets[images_by_name[name]]))])) \
                if parent_address(targets[images_by_name[name]]) else 0
            paths: List[str] = []
            for x, y in list(zip(la, lb))[start:]:
                if x.diff_id != y.diff_id:
                    paths += differing_files(B.blob_path(kolla_layouts[0][name], x.digest),
                                             B.blob_path(kolla_layouts[1][name], y.digest))
            differing_files_by_image[name] = {"count": len(paths), "kinds": classify(paths), "examples": paths[:12]}
    packages = lock["architectures"]["amd64"]
    package_rows = []
    for address in addresses:
        name = image_name(address)
        ours_closure = {n: str(packages[n]["version"]) for n in B.image_closure(lock, address)}
        theirs = dpkg_status(kolla_layouts[-1][name])
        same_version = sum(1 for n, v in ours_closure.items() if theirs.get(n) == v)
        package_rows.append((name, len(ours_closure), len(theirs), same_version,
                             len(set(ours_closure) - set(theirs)), len(set(theirs) - set(ours_closure))))

    # ---- report
    def sized(d: dict, name: str, key: str) -> str:
        return B.mb(d["per_image"][name][key]) if name in d["per_image"] else "-"

    time_rows = [
        ("cold build of the set (warm .deb/apt cache)" if args.apt_cache == "warm" else "cold build (cold .deb cache)",
         B.fmt([r.wall for r in cold_ours]), B.fmt([r.wall for r in cold_kolla]),
         B.fmt([k.wall / o.wall for o, k in zip(cold_ours, cold_kolla)], "x", 2)),
        ("  CPU of it", B.fmt([r.cpu for r in cold_ours]), B.fmt([r.cpu for r in cold_kolla]), ""),
        ("  + buildah push to OCI layouts (gzip)", "(included)",
         B.fmt([k.wall + e.wall for k, e in zip(cold_kolla, exports)]),
         B.fmt([(k.wall + e.wall) / o.wall for o, k, e in zip(cold_ours, cold_kolla, exports)], "x", 2)),
        ("  peak RSS of one process", B.fmt([r.peak_rss_mb for r in cold_ours], "MB", 0),
         B.fmt([r.peak_rss_mb for r in cold_kolla], "MB", 0), ""),
        ("import of the mmdebstrap base (not in the above)", "-", B.fmt([r.wall for r in imports]), ""),
        ("no-op rebuild", f"{rebuilds['ours']['noop'].wall:.1f} s (warm pantsd: "
         f"{rebuilds['ours']['pantsd_noop'].wall:.1f} s)", f"{rebuilds['kolla']['noop'].wall:.1f} s", ""),
    ]
    if leaf_in_set:
        time_rows.append(("one file of keystone changed", f"{rebuilds['ours']['leaf'].wall:.1f} s (warm pantsd: "
                          f"{rebuilds['ours']['pantsd_leaf'].wall:.1f} s)", f"{rebuilds['kolla']['leaf'].wall:.1f} s", ""))
    time_rows.append((f"base bump ({bumps.describe(ours.old_versions, ours.new_versions)}, switched)",
                      f"{rebuilds['ours']['bump'].wall:.1f} s ({rebuilds['ours']['bump'].extra['processes']} Processes)",
                      f"{rebuilds['kolla']['bump'].wall:.1f} s ({rebuilds['kolla']['bump'].extra['run_steps_executed']} RUN steps)",
                      f"{rebuilds['kolla']['bump'].wall / rebuilds['ours']['bump'].wall:.1f}x"))
    time_header = ("", "ours (pants package)", "Kolla-style (buildah bud)", "Kolla / ours")

    size_rows = []
    for address in addresses:
        name = image_name(address)
        size_rows.append((name, sized(ours_sizes, name, "uncompressed"), sized(kolla_sizes, name, "uncompressed"),
                          sized(ours_sizes, name, "compressed"), sized(kolla_sizes, name, "compressed"),
                          f"{ours_sizes['per_image'][name]['layers']} / {kolla_sizes['per_image'][name]['layers']}"))
    size_rows.append(("**set, unique layers**", B.mb(ours_sizes["unique_uncompressed"]), B.mb(kolla_sizes["unique_uncompressed"]),
                      B.mb(ours_sizes["unique_compressed"]), B.mb(kolla_sizes["unique_compressed"]),
                      f"{ours_sizes['distinct_layers']} / {kolla_sizes['distinct_layers']}"))
    size_header = ("image", "ours MB", "Kolla MB", "ours gz MB", "Kolla gz MB", "layers ours / Kolla")

    bump_rows = [
        ("layers to pull", ours_moved["layers"], kolla_moved["layers"]),
        ("bytes to pull (gzip)", f"{B.mb(ours_moved['compressed'])} MB", f"{B.mb(kolla_moved['compressed'])} MB"),
        ("bytes to pull (uncompressed)", f"{B.mb(ours_moved['uncompressed'])} MB", f"{B.mb(kolla_moved['uncompressed'])} MB"),
        ("images with a new layer", ours_moved["images_changed"], kolla_moved["images_changed"]),
    ]
    bump_header = ("after the base bump", "ours", "Kolla-style")
    pkg_header = ("image", "packages ours", "packages Kolla", "same name and version", "only ours", "only Kolla")

    repro_lines = [
        f"ours: {len(ours_digests)} cold builds, every image digest identical: {ours_same}",
        f"Kolla-style: {sum(kolla_same_ids.values())} of {len(kolla_same_ids)} image IDs identical across two cold "
        f"builds with --timestamp 0",
    ]
    for name, d in differing_files_by_image.items():
        if d["count"]:
            repro_lines.append(f"  {name}: {d['count']} files differ in its own layers: "
                               + ", ".join(f"{k} ({v})" for k, v in list(d["kinds"].items())[:8]))
    all_runs = cold_ours + cold_kolla + exports
    print()
    print(B.text_table(time_header, time_rows))
    print()
    print(B.text_table(size_header, size_rows))
    print()
    print(B.text_table(bump_header, bump_rows))
    print()
    print(B.text_table(pkg_header, package_rows))
    print()
    print("\n".join(repro_lines))
    print(B.busy_note(all_runs))

    record = {"benchmark": KEY, "command": B.command_line(), "machine": info, "images": names,
              "apt_cache": args.apt_cache, "jobs": args.jobs, "bump": ours.bump_text, "pins": pins,
              "rootfs": B.run_record(rootfs_run) if rootfs_run else None,
              "cold_ours": [B.run_record(r) for r in cold_ours], "cold_kolla": [B.run_record(r) for r in cold_kolla],
              "imports": [B.run_record(r) for r in imports], "exports": [B.run_record(r) for r in exports],
              "rebuilds": {side: {k: B.run_record(r) for k, r in rs.items()} for side, rs in rebuilds.items()},
              "sizes": {"ours": ours_sizes, "kolla": kolla_sizes},
              "bump_new_bytes": {"ours": ours_moved, "kolla": kolla_moved},
              "ours_digests": ours_digests, "ours_digests_identical": ours_same,
              "kolla_ids": kolla_ids, "kolla_same_ids": kolla_same_ids, "kolla_differing_layers": kolla_diff_layers,
              "kolla_differing_files": differing_files_by_image, "packages": package_rows,
              "busy": B.busy_note(all_runs)}
    if args.json:
        B.write_json(Path(args.json), record)
    if args.markdown:
        md = [f"Command: `{B.command_line()}`. Machine: {B.machine_line(info)}; {info['buildah']}; "
              f"{B.busy_note(all_runs)}.", "",
              f"Images: {', '.join(names)}. apt/.deb cache: {args.apt_cache}. Cold builds: median (min–max) of "
              f"{args.reps}, sides alternating; rebuilds: one run each on the last cold build's caches.", "",
              B.md_table(time_header, time_rows, "lrrr"), "", "Sizes (from OCI layouts; the Kolla-style images "
              "exported with `buildah push`):", "", B.md_table(size_header, size_rows), "",
              B.md_table(bump_header, bump_rows, "lrr"), "", "Packages installed (ours: the lock's closure; "
              "Kolla-style: dpkg's status in the image):", "", B.md_table(pkg_header, package_rows), "",
              "Reproducibility:", ""] + [f"- {line.strip()}" for line in repro_lines]
        B.write_markdown_section(Path(args.markdown), KEY, "\n".join(md))
    kolla.remove_storage()
    B.remove_work(work, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""End to end with Debian packages: lock from a signed fixture repository, layers, system files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import dataclasses
import gzip
import hashlib
import io
import tarfile

import dpkgcheck
from aptrepo import DEFAULT_PACKAGES, AptRepo, DebSpec, FileSpec, sample_files, serve_directory  # noqa: F401
from e2e_repo import EFFECTS_FILE, layout_files, make_repo, run_pants

pytestmark = pytest.mark.e2e

FROBNICATE = """tool:
  - script: postinst
    command: frobnicate --warm /var/lib/tool/cache
    path: /var/lib/tool/cache
    reason: "warms a cache the service fills itself"
"""
IMAGES = {
    "images/users.yaml": "groups: {kolla: 42400, app: 42410}\n"
                         "users: {app: {uid: 42410, groups: [kolla], home: /var/lib/app}}\n",
    "images/base/BUILD": 'oci_image(essential=True, packages=["mawk", "ca-certificates"], '
                         'platforms=["linux/amd64", "linux/arm64"])\n',
    "images/multi/BUILD": 'oci_image(parent="//images/base", packages=["tool"], users=["app"], '
                          'platforms=["linux/amd64", "linux/arm64"])\n',
    "images/app/BUILD": 'oci_image(parent="//images/base", packages=["tool"], users=["app"], user="app")\n',
    "images/plain/BUILD": 'image_files(name="f", sources=["hello"], destination="/srv")\n'
                          'image_files(name="conf", sources=["openssl.conf"], destination="/etc/openssl")\n'
                          'oci_image(parent="//images/app", files=[":f", ":conf"])\n',
    "images/plain/hello": "hello\n",
    "images/plain/openssl.conf": "ours = 1\n",  # replaces a conffile of openssl (in images/base)
    EFFECTS_FILE: FROBNICATE,
}


MAWK_POSTINST = """#!/bin/sh
set -e
if [ "$1" = configure ]; then
  update-alternatives --install /usr/bin/awk awk /usr/bin/mawk 5 \\
    --slave /usr/share/man/man1/awk.1.gz awk.1.gz /usr/share/man/man1/mawk.1.gz
fi
"""
TOOL_POSTINST = """#!/bin/sh
set -e
adduser --system --group --home /var/lib/app --no-create-home app
chown app:app /var/lib/tool
install -d -o app -g app -m 0700 /var/lib/tool/cache
if [ -n "$2" ]; then chown root /var/lib/tool; fi
frobnicate --warm /var/lib/tool/cache
"""
TOOL_FILES = (FileSpec("/var/lib/tool", kind="dir", mode=0o755),
              FileSpec("/usr/lib/tmpfiles.d/tool.conf", b"d /var/lib/tool/run 0750 app app -\n"))
CA_FILES = (FileSpec("/usr/share/ca-certificates/fixture/Fixture_Root.crt",
                     b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),)


def fixture_packages(tool_version: str = "1.0-1") -> list[DebSpec]:
    """The default fixture, with the maintainer scripts and files the system layer replaces."""
    changes = {
        "mawk": dict(files=(FileSpec("/usr/bin/mawk", b"#!fake mawk\n", 0o755),
                            FileSpec("/usr/share/man/man1/mawk.1.gz", b"man")),
                     scripts=(("postinst", MAWK_POSTINST),)),
        "tool": dict(version=tool_version, scripts=(("postinst", TOOL_POSTINST),),
                     files=sample_files("tool") + TOOL_FILES),
        "ca-certificates": dict(files=CA_FILES),
        "openssl": dict(conffiles=("/etc/openssl/openssl.conf",)),
    }
    amd64 = [dataclasses.replace(spec, **changes.get(spec.name, {})) for spec in DEFAULT_PACKAGES]
    return amd64 + [dataclasses.replace(spec, architecture="arm64") for spec in amd64 if spec.architecture == "amd64"]


def sources_yaml(repo: AptRepo, keyring: Path) -> str:
    return yaml.safe_dump({"architectures": ["amd64", "arm64"], "sources": [{
        "name": "fixture", "url": repo.url, "suites": [repo.suite], "components": ["main"], "keyring": str(keyring),
    }]})


@pytest.fixture(scope="module")
def served(tmp_path_factory, apt_keys):
    root = tmp_path_factory.mktemp("apt")
    with serve_directory(root) as url:
        yield root, url, apt_keys


def publish(root: Path, url: str, keys, packages) -> AptRepo:
    return AptRepo(root=root, suite="fixture", key=keys.trusted, packages=tuple(packages), url=url,
                   architectures=("amd64", "arm64")).build(keys.deb_cache)


@pytest.fixture(scope="module")
def built(served, tmp_path_factory):
    root, url, keys = served
    apt = publish(root, url, keys, fixture_packages())
    work = tmp_path_factory.mktemp("pkg")
    repo = make_repo(work / "repo", {**IMAGES, "3rdparty/debian/sources.yaml": sources_yaml(apt, Path(keys.trusted.keyring))})
    env = {"XDG_CACHE_HOME": str(work / "xdg")}
    store = work / "store"
    lock = run_pants(repo, "generate-lockfiles", "--resolve=debian", store=store, env=env)
    assert lock.returncode == 0, lock.output
    package = run_pants(repo, "package", "::", f"--debian-deb-cache={work / 'debs'}", store=store, env=env)
    assert package.returncode == 0, package.output
    return repo, apt, lock, package, store, env, work


def blob(layout: Path, digest: str) -> dict:
    return json.loads((layout / "blobs/sha256" / digest.split(":")[1]).read_text())


def manifest(layout: Path, architecture: str = "amd64") -> dict:
    top = json.loads((layout / "index.json").read_text())["manifests"][0]
    if top["mediaType"].endswith("index.v1+json"):
        top = next(m for m in blob(layout, top["digest"])["manifests"] if m["platform"]["architecture"] == architecture)
    return blob(layout, top["digest"])


def test_lock_pins_every_deb_by_sha256(built):
    repo, apt, lock_run, *_ = built
    lock = yaml.safe_load((repo / "3rdparty/debian/lock.yaml").read_text())
    for architecture in ("amd64", "arm64"):
        packages = lock["architectures"][architecture]
        for name in ("tool", "libc6", "mawk", "usr-is-merged"):
            served = (apt.root / packages[name]["url"]).read_bytes()
            assert packages[name]["sha256"] == hashlib.sha256(served).hexdigest()
            assert packages[name]["architecture"] in (architecture, "all")
    assert "usrmerge" not in packages and "gawk" not in packages
    assert "tool" in lock_run.output  # the diff of a new lock lists what was added


def test_layouts_validate_and_child_adds_only_what_parent_lacks(built, tmp_path):
    repo, *_ = built
    dist = repo / "dist"
    for image in ("base", "app", "plain"):
        layout = dist / f"images.{image}" / image
        result = subprocess.run(["oci-image-tool", "validate", "--type", "image", str(layout)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert result.returncode == 0, result.stdout
    base, app = manifest(dist / "images.base/base"), manifest(dist / "images.app/app")
    assert app["layers"][: len(base["layers"])] == base["layers"]
    config = json.loads((dist / "images.app/app/blobs/sha256" / app["config"]["digest"][7:]).read_text())
    added = " ".join(h["created_by"] for h in config["history"][len(base["layers"]):])
    assert "tool=1.0-1" in added and "python3=" in added
    assert "libc6=" not in added and "mawk=" not in added  # already in the parent


def test_an_edit_to_a_debian_action_reruns_only_debian_processes(built):
    """Each backend ships only its own actions (and oci's): files layers and assemblies stay cache hits."""
    repo, _, _, _, store, env, work = built
    action = repo / "rules/debian/actions/build_system_layer.py"
    original = action.read_text()
    before = layout_files(repo / "dist")
    action.write_text(original + "\n# an edit that changes nothing the action writes\n")
    try:
        rebuild = run_pants(repo, "package", "::", f"--debian-deb-cache={work / 'debs'}", store=store, env=env)
    finally:
        action.write_text(original)
    assert rebuild.returncode == 0, rebuild.output
    ran = rebuild.processes
    assert any(p.startswith("Build system layer") for p in ran), ran  # the edit reached the Debian Processes
    assert any(p.startswith("Build package layer") for p in ran), ran
    assert [p for p in ran if p.startswith(("Build files layer", "Assemble"))] == [], ran
    assert layout_files(repo / "dist") == before


def test_unpacked_image_has_packages_and_system_files(built, tmp_path):
    repo, *_ = built
    bundle = tmp_path / "bundle"
    result = subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{repo}/dist/images.plain/plain:latest",
                             str(bundle)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert result.returncode == 0, result.stdout
    root = bundle / "rootfs"
    assert os.readlink(root / "bin") == "usr/bin"
    assert (root / "usr/bin/tool").read_bytes().startswith(b"#!/bin/sh")
    assert (root / "usr/bin/tool-setuid").stat().st_mode & 0o7777 == 0o4755
    assert (root / "usr/bin/tool-hardlink").stat().st_ino == (root / "usr/bin/tool").stat().st_ino
    assert os.readlink(root / "usr/bin/awk") == "/etc/alternatives/awk"
    assert os.readlink(root / "etc/alternatives/awk") == "/usr/bin/mawk"
    # pants.toml leaves /usr/share/man out of package layers ([debian].path_excludes); as
    # update-alternatives does, a slave whose file is not installed gets no link.
    assert not (root / "usr/share/man/man1/mawk.1.gz").exists()
    assert not os.path.lexists(root / "etc/alternatives/awk.1.gz")
    assert "/usr/share/man/man1/mawk.1.gz" not in (root / "var/lib/dpkg/info/mawk.list").read_text()
    assert (root / "var/lib/dpkg/alternatives/awk").read_text().startswith("auto\n/usr/bin/awk\n")
    assert b"MIIB" in (root / "etc/ssl/certs/ca-certificates.crt").read_bytes()
    status = (root / "var/lib/dpkg/status").read_text()
    assert "Package: tool\nStatus: install ok installed\n" in status
    passwd = (root / "etc/passwd").read_text()
    assert "app:x:42410:42410::/var/lib/app:/usr/sbin/nologin\n" in passwd
    assert "kolla:x:42400:app\n" in (root / "etc/group").read_text()
    assert (root / "srv/hello").read_text() == "hello\n"


def test_dpkg_reads_the_database_of_a_child_image(built, tmp_path):
    """images/plain: base's and app's package layers each add status.d/, and each system layer hides it again."""
    repo, *_ = built
    root = dpkgcheck.unpack(repo / "dist/images.plain/plain", "latest", tmp_path / "bundle")
    assert os.listdir(root / "var/lib/dpkg/status.d") == []  # the opaque whiteouts hid every layer's stanzas
    assert not [p for p in root.rglob(".wh.*")]  # applied, not left as files
    assert (root / "var/lib/dpkg/info/format").read_text() == "1\n"
    lock = yaml.safe_load((repo / "3rdparty/debian/lock.yaml").read_text())
    closure = lock["images"]["images/app:app"]["amd64"]["closure"]
    listed = dpkgcheck.installed_names(root)
    assert sorted(name.split(":")[0] for name in listed) == sorted(closure)
    assert "libc6:amd64" in listed and "tool" in listed  # Multi-Arch: same is shown qualified
    shown = dpkgcheck.dpkg(root, "-s", "tool")
    assert shown.returncode == 0 and "Package: tool\nStatus: install ok installed\n" in shown.stdout
    assert "Version: 1.0-1\n" in shown.stdout
    assert dpkgcheck.dpkg(root, "-S", "/usr/bin/tool").stdout == "tool: /usr/bin/tool\n"
    assert dpkgcheck.dpkg(root, "-S", "/etc/openssl/openssl.conf").stdout == "openssl: /etc/openssl/openssl.conf\n"
    files = dpkgcheck.dpkg(root, "-L", "tool").stdout.splitlines()
    assert "/usr/bin/tool-hardlink" in files and not [f for f in files if f.startswith("/usr/share/doc/tool/long")]
    # Clean but for the conffile images/plain replaces; path-excluded docs are not listed, so not missed.
    assert dpkgcheck.verify_complaints(root) == ["??5?????? c /etc/openssl/openssl.conf"]
    assert dpkgcheck.rewritten_status(root, tmp_path) == (root / "var/lib/dpkg/status").read_bytes()
    cfg = (root / "etc/dpkg/dpkg.cfg.d/oci-path-filter").read_text().splitlines()
    assert "path-exclude=/usr/share/man/*" in cfg and "path-include=/usr/share/doc/*/copyright" in cfg


def test_package_layers_keep_stanza_and_md5sums_for_per_layer_scanners(built):
    """trivy reads each layer alone and pairs status.d/<pkg> with <pkg>.md5sums of the same layer."""
    repo, *_ = built
    layout = repo / "dist/images.app/app"
    config = blob(layout, manifest(layout)["config"]["digest"])
    steps = [h["created_by"] for h in config["history"] if not h.get("empty_layer")]
    layers = dict(zip(steps, manifest(layout)["layers"]))
    tool_layer = next(layer for step, layer in layers.items() if "tool=1.0-1" in step)
    with tarfile.open(layout / "blobs/sha256" / tool_layer["digest"][7:]) as tar:
        names = set(tar.getnames())
    assert {"var/lib/dpkg/status.d/tool", "var/lib/dpkg/info/tool.md5sums", "var/lib/dpkg/info/tool.list"} <= names
    system = next(layer for step, layer in layers.items() if step.startswith("system files of images/app"))
    with tarfile.open(layout / "blobs/sha256" / system["digest"][7:]) as tar:
        whiteout = tar.getmember("var/lib/dpkg/status.d/.wh..wh..opq")
        assert whiteout.isreg() and whiteout.size == 0
        assert tar.getmember("var/lib/dpkg/status.d").isdir()


def layer_members(layout: Path) -> dict[str, tarfile.TarInfo]:
    """Every path of the image as its layers leave it (the last layer holding a path wins)."""
    members: dict[str, tarfile.TarInfo] = {}
    for layer in manifest(layout)["layers"]:
        data = (layout / "blobs/sha256" / layer["digest"].split(":")[1]).read_bytes()
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
            members.update((m.name.lstrip("./"), m) for m in tar.getmembers())
    return members


def test_script_effects_are_applied_in_the_package_layer(built):
    repo, *_ = built
    members = layer_members(repo / "dist/images.app/app")
    owners = {path: (members[path].uid, members[path].gid, members[path].mode & 0o7777)
              for path in ("var/lib/tool", "var/lib/tool/cache", "var/lib/tool/run")}
    assert owners == {"var/lib/tool": (42410, 42410, 0o755),  # chown; the upgrade-only chown root is skipped
                      "var/lib/tool/cache": (42410, 42410, 0o700),  # install -d -o -g -m
                      "var/lib/tool/run": (42410, 42410, 0o750)}  # tmpfiles.d d line


def test_an_unaccepted_effect_stops_the_build_with_the_entry_to_add(built):
    repo, _, _, _, store, env, _ = built
    effects = repo / EFFECTS_FILE
    effects.write_text("{}\n")
    try:
        run = run_pants(repo, "package", "images/app", store=store, env=env)
    finally:
        effects.write_text(FROBNICATE)
    assert run.returncode != 0
    assert "images/app:app: maintainer-script effects that no rule applies and nobody accepted" in run.output
    assert "tool (postinst): frobnicate --warm /var/lib/tool/cache" in run.output
    assert "path: /var/lib/tool/cache; not applied: unknown command 'frobnicate'" in run.output
    assert 'command: "frobnicate --warm /var/lib/tool/cache"' in run.output


def test_multi_platform_image_takes_each_architectures_packages_from_the_lock(built, tmp_path):
    repo, *_ = built
    layout = repo / "dist/images.multi/multi"
    result = subprocess.run(["oci-image-tool", "validate", "--type", "image", str(layout)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert result.returncode == 0, result.stdout
    for architecture in ("amd64", "arm64"):
        image = manifest(layout, architecture)
        config = blob(layout, image["config"]["digest"])
        assert config["architecture"] == architecture
        history = " ".join(h["created_by"] for h in config["history"])
        assert "tool=1.0-1" in history
    amd64_layers = {layer["digest"] for layer in manifest(layout, "amd64")["layers"]}
    arm64_layers = {layer["digest"] for layer in manifest(layout, "arm64")["layers"]}
    assert amd64_layers != arm64_layers  # libc6, bash, ... differ by architecture


def files_layer(layout: Path) -> dict[str, bytes]:
    import tarfile
    last = manifest(layout)["layers"][-1]["digest"].split(":")[1]
    with tarfile.open(layout / "blobs/sha256" / last) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_declared_files_may_replace_package_files_only_when_listed_in_overrides(built, tmp_path):
    repo, _, _, _, store, env, work = built
    plain = repo / "images/plain"
    original = (plain / "BUILD").read_text()
    for name, text in {"tool.conf": "ours = 1\n", "tool": "a file where tool has a directory\n",
                       "extra": "below the /bin link\n"}.items():
        (plain / name).write_text(text)
    targets = ('image_files(name="f", sources=["hello"], destination="/srv")\n'
               'image_files(name="clash", sources=["tool"], destination="/var/lib")\n'
               'image_files(name="bin", sources=["extra"], destination="/bin")\n')
    try:
        (plain / "BUILD").write_text(targets + 'image_files(name="conf", sources=["tool.conf"], '
                                     'destination="/etc/tool")\n'
                                     'oci_image(parent="//images/app", files=[":f", ":conf", ":clash", ":bin"])\n')
        refused = run_pants(repo, "package", "images/plain", store=store, env=env)
        (plain / "BUILD").write_text(targets + 'image_files(name="conf", sources=["tool.conf"], '
                                     'destination="/etc/tool", overrides=["/etc/tool/tool.conf"])\n'
                                     'oci_image(parent="//images/app", files=[":f", ":conf"])\n')
        allowed = run_pants(repo, "package", "images/plain", f"--debian-deb-cache={work / 'debs'}",
                            store=store, env=env)
    finally:
        (plain / "BUILD").write_text(original)
    assert refused.returncode != 0
    assert "images/plain:plain: 3 declared file(s) clash with the image's packages" in refused.output
    assert ("/etc/tool/tool.conf (from images/plain/tool.conf, images/plain:conf) would replace the file "
            "/etc/tool/tool.conf installed by tool 1.0-1 (not a conffile). Fix: if the replacement is deliberate, "
            "add \"/etc/tool/tool.conf\" to the `overrides` of images/plain:conf") in refused.output
    assert "would replace the directory /var/lib/tool of tool 1.0-1" in refused.output
    assert "goes below /bin, a symlink to usr/bin" in refused.output and "real path /usr/bin/extra" in refused.output
    assert "Traceback (most recent call last)" not in refused.output
    assert allowed.returncode == 0, allowed.output
    assert files_layer(repo / "dist/images.plain/plain")["etc/tool/tool.conf"] == b"ours = 1\n"
    root = dpkgcheck.unpack(repo / "dist/images.plain/plain", "latest", tmp_path / "bundle")
    assert dpkgcheck.verify_complaints(root) == ["??5??????   /etc/tool/tool.conf"]  # the override, and only it


def test_a_childs_package_may_never_replace_a_file_its_parent_declares(built):
    repo, _, _, _, store, env, work = built
    base, dist, aside = repo / "images/base", repo / "dist/images.app", repo / "dist.app-aside"
    original = (base / "BUILD").read_text()
    (base / "tool.conf").write_text("declared by base\n")
    (base / "tool").write_text("a file where the child's tool has a directory\n")
    dist.rename(aside)
    try:  # images/app (parent images/base) installs tool, which ships both paths
        (base / "BUILD").write_text(
            'image_files(name="conf", sources=["tool.conf"], destination="/etc/tool", '
            'overrides=["/etc/tool/tool.conf"])\n'  # `overrides` is for the other direction: no help here
            'image_files(name="lib", sources=["tool"], destination="/var/lib")\n'
            + original.replace("oci_image(", 'oci_image(files=[":conf", ":lib"], '))
        refused = run_pants(repo, "package", "images/app", f"--debian-deb-cache={work / 'debs'}", store=store, env=env)
        written = dist.exists()
    finally:
        (base / "BUILD").write_text(original)
        shutil.rmtree(dist, ignore_errors=True)
        aside.rename(dist)
    assert refused.returncode != 0
    assert "images/app:app: 2 declared file(s) of its parents clash with the image's packages" in refused.output
    assert ("/etc/tool/tool.conf (from images/base/tool.conf, images/base:conf) would be replaced by the file "
            "/etc/tool/tool.conf of tool 1.0-1: the package layers of images/app:app come after the files layer of "
            "images/base:base, and `overrides` cannot change that. Fix: declare the file in images/app:app instead, "
            "whose files layer comes after its packages (where conffiles and `overrides` apply); or install tool in "
            "images/base:base.") in refused.output
    assert ("/var/lib/tool (from images/base/tool, images/base:lib) would be replaced by the directory "
            "/var/lib/tool of tool 1.0-1") in refused.output
    assert "Traceback (most recent call last)" not in refused.output
    assert not written  # nothing of images/app reached dist/


def test_stale_lock_is_refused_with_the_fix(built):
    repo, _, _, _, store, env, _ = built
    build_file = repo / "images/app/BUILD"
    original = build_file.read_text()
    build_file.write_text(original.replace('["tool"]', '["tool", "gawk"]'))
    try:
        run = run_pants(repo, "package", "images/app", store=store, env=env)
    finally:
        build_file.write_text(original)
    assert run.returncode != 0
    assert "images/app:app" in run.output and "generate-lockfiles --resolve=debian" in run.output


def test_package_bump_rebuilds_only_its_layer_and_shows_in_the_diff(built, served):
    repo, apt, _, _, store, env, work = built
    root, url, keys = served
    publish(root, url, keys, fixture_packages(tool_version="1.0-2"))
    lock = run_pants(repo, "generate-lockfiles", "--resolve=debian", store=store, env=env)
    assert lock.returncode == 0, lock.output
    assert "tool" in lock.output and "1.0-1" in lock.output and "1.0-2" in lock.output
    before = layout_files(repo / "dist/images.base/base")
    rebuild = run_pants(repo, "package", "::", f"--debian-deb-cache={work / 'debs'}", store=store, env=env)
    assert rebuild.returncode == 0, rebuild.output
    layer_runs = {p for p in rebuild.processes if p.startswith("Build package layer")}
    assert {run.rsplit(", ", 1)[1] for run in layer_runs} == {"amd64)", "arm64)"}, rebuild.processes
    assert len(layer_runs) == 2, rebuild.processes  # the one group holding tool, per architecture
    assembled = {p.split(" (")[0] for p in rebuild.processes if p.startswith("Assemble")}
    assert assembled == {"Assemble images/app:app", "Assemble images/plain:plain", "Assemble images/multi:multi",
                         "Assemble the image index of images/multi:multi"}, rebuild.processes
    assert layout_files(repo / "dist/images.base/base") == before
    app = manifest(repo / "dist/images.app/app")
    config = json.loads((repo / "dist/images.app/app/blobs/sha256" / app["config"]["digest"][7:]).read_text())
    assert "tool=1.0-2" in " ".join(h["created_by"] for h in config["history"])

"""bench/kolla_source.py's planning: the Kolla-style pip steps and what an image's own layers install.

Offline and fast: targets are `pants peek`-shaped dicts, layouts are written here.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

import benchscripts

kolla_source = benchscripts.load("kolla_source", "kolla_source_bench")
kolla_peer = sys.modules["kolla_peer"]  # imported by kolla_source from bench/

SITE = "var/lib/kolla/venv/lib/python3.11/site-packages"


def target(address: str, parent: str = None, **fields) -> dict:
    return {"address": address, "target_type": "oci_image", "parent": parent, **fields}


TARGETS = {
    "images/python-base:python-base": target("images/python-base:python-base", packages=["python3"]),
    "images/source/openstack-base:openstack-base": target(
        "images/source/openstack-base:openstack-base", "//images/python-base",
        packages=["uwsgi-plugin-python3"], python_requirements=["oslo.config", "PyMySQL"]),
    "images/source/keystone:keystone": target(
        "images/source/keystone:keystone", "//images/source/openstack-base", python_requirements=["keystone"]),
}
CHAIN = list(TARGETS)


def own(*dists):
    return kolla_source.OwnContent(1, 0, 0, 0, 0, tuple(dists))


OURS = {"python-base": own(), "source/openstack-base": own(("oslo-config", "10.1.0"), ("pymysql", "1.2.4")),
        "source/keystone": own(("keystone", "30.0.0"))}


def test_source_images_get_their_own_names_and_tags():
    assert kolla_source.image_name("images/source/keystone:keystone") == "source/keystone"
    assert kolla_source.image_name("images/keystone:keystone") == "keystone"
    assert kolla_peer.image_tag("images/source/keystone:keystone") == "localhost/kolla/source-keystone"


def test_the_first_image_that_asks_makes_the_venv_and_children_only_install():
    steps = kolla_source.pip_steps("same", CHAIN, TARGETS, "oslo.config===10.1.0\n", OURS, ca_bundle=False)
    assert set(steps) == set(CHAIN[1:])
    base = steps["images/source/openstack-base:openstack-base"]
    assert base.packages == ("python3-venv",)
    assert dict(base.files) == {"upper-constraints.txt": "oslo.config===10.1.0\n"}
    assert "python3 -m venv --system-site-packages /var/lib/kolla/venv" in base.lines[1]
    assert "install --upgrade -c /requirements/upper-constraints.txt pip wheel setuptools &&" in base.lines[2]
    assert base.lines[2].endswith("--no-deps --only-binary :all: oslo-config==10.1.0 pymysql==1.2.4")
    assert "--no-cache-dir" in base.lines[2] and "PIP_CERT" not in base.lines[2]
    child = steps["images/source/keystone:keystone"]
    assert child.packages == () and child.files == ()
    assert child.lines == ("RUN /var/lib/kolla/venv/bin/python3 -m pip --no-cache-dir install --upgrade -c "
                           "/requirements/upper-constraints.txt --no-deps --only-binary :all: keystone==30.0.0",)


def test_the_plain_variant_asks_pip_for_the_requirements_as_kolla_does():
    steps = kolla_source.pip_steps("plain", CHAIN, TARGETS, "", OURS, ca_bundle=True)
    line = steps["images/source/openstack-base:openstack-base"].lines[2]
    assert line.startswith(f"RUN PIP_CERT={kolla_source.CA_MOUNT} /var/lib/kolla/venv/bin/python3 -m pip")
    assert line.endswith("-c /requirements/upper-constraints.txt oslo.config PyMySQL")
    assert "--no-deps" not in line


def test_the_containerfile_puts_the_steps_after_the_packages_and_before_the_files(tmp_path):
    steps = kolla_source.pip_steps("same", CHAIN, TARGETS, "x===1\n", OURS, ca_bundle=False)
    ctx = tmp_path / "ctx"
    address = "images/source/openstack-base:openstack-base"
    kolla_peer.write_context(ctx, TARGETS[address], TARGETS, tmp_path, {}, [], "cold", (), steps[address])
    lines = (ctx / "Containerfile").read_text().splitlines()
    assert lines[0] == "FROM localhost/kolla/python-base"
    assert "apt-get install -y --no-install-recommends uwsgi-plugin-python3 python3-venv" in lines[2]
    assert lines[3] == "COPY upper-constraints.txt /requirements/upper-constraints.txt"
    assert (ctx / "upper-constraints.txt").read_text() == "x===1\n"
    keystone = "images/source/keystone:keystone"
    kolla_peer.write_context(ctx, TARGETS[keystone], TARGETS, tmp_path, {}, [], "cold", (), steps[keystone])
    assert (ctx / "Containerfile").read_text().startswith("FROM localhost/kolla/source-openstack-base\n")


def layer(files: dict) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def write_layout(root: Path, layers: list) -> Path:
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return f"sha256:{digest}"

    tars = [layer(files) for files in layers]
    config = put(json.dumps({"rootfs": {"diff_ids": [f"sha256:{hashlib.sha256(t).hexdigest()}" for t in tars]}}).encode())
    descriptors = []
    for tar in tars:
        blob = gzip.compress(tar, mtime=0)
        descriptors.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(blob),
                            "size": len(blob)})
    manifest = put(json.dumps({"config": {"digest": config}, "layers": descriptors}).encode())
    (root / "index.json").write_text(json.dumps({"manifests": [{"digest": manifest}]}))
    return root


def test_own_content_counts_only_the_layers_over_the_parent(tmp_path):
    layout = write_layout(tmp_path, [
        {f"{SITE}/six-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: six\nVersion: 1.0\n"},
        {f"{SITE}/Oslo.Config-10.1.0.dist-info/METADATA": b"Name: oslo.config\nVersion: 10.1.0\n\nName: body\n",
         f"{SITE}/oslo_config/__pycache__/cfg.cpython-311.pyc": b"x" * 7,
         f"{SITE}/oslo_config/vendor/x-1.dist-info/METADATA": b"Name: nested\nVersion: 1\n",
         "usr/bin/tool": b"y" * 100},
    ])
    content = kolla_source.own_content(layout, parent_layers=1)
    assert content.layers == 1
    assert content.distributions == (("oslo-config", "10.1.0"),)
    assert content.pyc_bytes == 7
    assert content.venv_bytes == 7 + len(b"Name: oslo.config\nVersion: 10.1.0\n\nName: body\n") + \
        len(b"Name: nested\nVersion: 1\n")
    assert kolla_source.own_content(layout, parent_layers=0).distributions == (("oslo-config", "10.1.0"), ("six", "1.0"))


def test_the_dev_variant_installs_and_keeps_kollas_openstack_base_packages():
    steps = kolla_source.pip_steps("dev", CHAIN, TARGETS, "", OURS, ca_bundle=False)
    base = steps["images/source/openstack-base:openstack-base"]
    assert {"build-essential", "python3-dev", "libssl-dev", "python3-venv"} <= set(base.packages)
    assert base.lines[2].endswith("oslo.config PyMySQL")
    assert not any("apt-get purge" in line or "autoremove" in line for line in base.lines)

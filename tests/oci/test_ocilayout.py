"""Unit tests of config/manifest/index construction and the two layout actions."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

import pytest
import specs

from oci.actions.assemble_image import assemble
from oci.actions.build_layer import build_layer
from oci.actions.ocilayout import (
    ImageSettings,
    child_runtime_config,
    epoch_to_rfc3339,
    merge_env,
    normalize_port,
)
from oci.actions.specs import LayerDescriptor

RULES = Path(__file__).resolve().parents[2] / "rules"


@pytest.mark.parametrize("epoch", [0, 951782400, 1700000000, 4102444799, 1709164800])
def test_epoch_to_rfc3339_matches_datetime(epoch):
    expected = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert epoch_to_rfc3339(epoch) == expected


def test_env_overrides_in_place_and_appends_new_keys():
    assert merge_env(["PATH=/bin", "LANG=C"], {"LANG": "C.UTF-8", "A": "1"}) == ["PATH=/bin", "LANG=C.UTF-8", "A=1"]


def test_new_entrypoint_drops_inherited_cmd_but_keeps_the_rest():
    parent = {"Entrypoint": ["/old"], "Cmd": ["--help"], "User": "1", "Labels": {"a": "1"}}
    config = child_runtime_config(parent, ImageSettings(entrypoint=["/new"], labels={"b": "2"}))
    assert config == {"Entrypoint": ["/new"], "User": "1", "Labels": {"a": "1", "b": "2"}}


def test_ports_are_normalized_and_bad_ones_refused():
    assert normalize_port("8080") == "8080/tcp"
    assert normalize_port("53/udp") == "53/udp"
    for bad in ("http", "70000", "80/icmp"):
        with pytest.raises(ValueError):
            normalize_port(bad)


def build_parent_and_child(root: Path) -> tuple[dict, dict]:
    (root / "hello").write_bytes(b"hello\n")
    layer = build_layer(specs.files_layer([{"path": "srv/hello", "source": str(root / "hello")}]), str(root))
    parent = assemble(specs.image("//base", [layer], env={"PATH": "/usr/bin"}), str(root))
    child = assemble(specs.image("//child", [], parent, ("v1", "latest"), cmd=["/bin/true"], exposed_ports=["80"]),
                     str(root))
    return parent.to_json(), child.to_json()


def test_child_reuses_parent_layers_and_annotates_its_base(tmp_path):
    parent, child = build_parent_and_child(tmp_path)
    assert child["layers"] == parent["layers"]
    assert child["config"]["rootfs"]["diff_ids"] == [parent["layers"][0]["diff_id"]]
    manifest = json.loads((tmp_path / "blobs" / "sha256" / child["manifest"]["digest"][7:]).read_bytes())
    assert manifest["annotations"]["org.opencontainers.image.base.digest"] == parent["manifest"]["digest"]
    assert child["config"]["config"] == {"Cmd": ["/bin/true"], "Env": ["PATH=/usr/bin"],
                                         "ExposedPorts": {"80/tcp": {}}}
    index = json.loads((tmp_path / "index.json").read_bytes())
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == ["latest", "v1"]


PYTHONS = sorted({sys.executable, "/usr/bin/python3", *map(str, Path("/root/.pyenv/versions").glob("3.*/bin/python3"))})


def run_actions(python: str, workdir: Path) -> bytes:
    """Build one layer and image in `workdir` with `python`, return the index.json bytes."""
    (workdir / "src").mkdir()
    (workdir / "src" / "file").write_bytes(b"data\n")
    (workdir / "layer.json.in").write_text(json.dumps(
        specs.files_layer([{"path": "opt/file", "source": "src/file", "mode": 0o640}]).to_json()))
    env = {"PYTHONPATH": str(RULES), "PATH": "/usr/bin:/bin"}
    subprocess.run([python, "-m", "oci.actions.build_layer", "layer.json.in"], cwd=workdir, env=env, check=True)
    layer = LayerDescriptor.from_json(json.loads((workdir / "layer.json").read_text()))
    (workdir / "image.json.in").write_text(json.dumps(specs.image("x", [layer]).to_json()))
    subprocess.run([python, "-m", "oci.actions.assemble_image", "image.json.in"], cwd=workdir, env=env, check=True)
    return (workdir / "index.json").read_bytes()


def usable(python: str) -> bool:
    probe = "import sys; sys.exit(sys.version_info < (3, 9))"
    return Path(python).exists() and subprocess.run([python, "-c", probe]).returncode == 0


def test_actions_give_identical_bytes_under_every_python(tmp_path):
    pythons = [p for p in PYTHONS if usable(p)]
    assert len(pythons) >= 2, "need two Python versions to compare"
    results = {}
    for number, python in enumerate(pythons):
        workdir = tmp_path / str(number)
        workdir.mkdir()
        results[python] = run_actions(python, workdir)
    assert len(set(results.values())) == 1, results

"""deploy/: the control plane's templates, settings and container options, without podman.

The plane itself runs under `-m controlplane` (tests/images/test_controlplane.py); these catch a
broken template, a database the config names but the deployment never creates, or a container
outside the shared namespace, in the offline suite.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from deploy import controlplane as cp  # noqa: E402
from deploy.podman import DeployError, Podman  # noqa: E402


@pytest.fixture
def plane(tmp_path):
    return cp.Plane(Podman("podman-not-called"), str(tmp_path / "dist"), str(tmp_path / "state"), "t_")


def rendered(plane):
    cp.render_config(plane, cp.settings(plane))
    return Path(plane.state_dir) / "etc" / "kolla"


def test_every_template_renders_into_a_config_directory_kolla_set_configs_can_use(plane):
    root = rendered(plane)
    assert sorted(p.name for p in root.iterdir()) == sorted(s.config_dir for s in cp.SERVICES)
    for service in cp.SERVICES:
        directory = root / service.config_dir
        config = json.loads((directory / "config.json").read_text())
        assert config["command"], service.name
        for entry in config["config_files"]:
            source = Path(entry["source"])
            assert source.parent == Path(cp.KOLLA_CONFIG_DIR), (service.name, entry)
            assert (directory / source.name).is_file(), f"{service.name}: config.json copies {source.name}, " \
                                                        "which its templates do not have"
        for path in directory.iterdir():
            assert "${" not in path.read_text(), path
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_passwords_are_generated_once_and_kept_private(plane):
    first = cp.passwords(plane)
    assert sorted(first) == sorted(cp.PASSWORDS) and len(set(first.values())) == len(first)
    assert cp.passwords(plane) == first
    assert stat.S_IMODE(os.stat(plane.path("passwords.json")).st_mode) == 0o600


def test_every_database_a_config_names_is_created_with_its_account_and_password(plane):
    values = cp.settings(plane)
    sql = cp.database_sql(values).decode()
    named = set()
    for path in rendered(plane).glob("*/*"):
        for user, password, database in re.findall(r"mysql\+pymysql://(\w+):(\w+)@127\.0\.0\.1:3306/(\w+)",
                                                   path.read_text()):
            named.add(database)
            assert f"CREATE DATABASE IF NOT EXISTS {database};" in sql, path
            assert f"CREATE USER IF NOT EXISTS '{user}'@'127.0.0.1' IDENTIFIED BY '{password}';" in sql, path
            assert f"GRANT ALL PRIVILEGES ON {database}.* TO '{user}'@'127.0.0.1';" in sql, path
    assert named | {"nova_cell0"} == {database for database, _ in cp.DATABASES}


def test_a_template_naming_an_unknown_setting_is_refused_with_the_file_and_the_fix(tmp_path):
    template = tmp_path / "glance-api.conf"
    template.write_text("[DEFAULT]\nworkers = ${worker_count}\n")
    with pytest.raises(DeployError, match=r"glance-api.conf uses \$\{worker_count\}.*add it to globals.ini"):
        cp.render(str(template), {"workers": "1"})
    template.write_text("password = abc$\n")
    with pytest.raises(DeployError, match=r"glance-api.conf: .*write a literal \$ as \$\$"):
        cp.render(str(template), {})


def test_a_config_json_that_does_not_parse_is_refused_before_anything_starts(plane, tmp_path):
    templates = tmp_path / "config"
    for service in cp.SERVICES:
        for directory in service.templates:
            (templates / directory).mkdir(parents=True, exist_ok=True)
            (templates / directory / "config.json").write_text('{"command": "x",}')
    with pytest.raises(DeployError, match=r"config.json is not JSON once rendered"):
        cp.render_config(plane, cp.settings(plane), str(templates))


def test_mariadb_owns_the_network_namespace_and_every_other_container_joins_it(plane):
    for service in cp.SERVICES:
        args = cp.kolla_args(plane, service, plane.container(service.name))
        network = "none" if service is cp.MARIADB else "container:t_mariadb"
        assert f"--network={network}" in args, service.name
        assert f"{plane.path('etc', 'kolla', service.config_dir)}:{cp.KOLLA_CONFIG_DIR}:ro" in args
        assert "KOLLA_CONFIG_STRATEGY=COPY_ALWAYS" in args
        assert f"KOLLA_SERVICE_NAME={service.name.replace('_', '-')}" in args
        mounts = [args[i + 1] for i, arg in enumerate(args) if arg == "-v"]
        assert all(m.startswith(("/", "t_")) for m in mounts), mounts  # host paths, or this plane's volumes


def test_a_source_project_runs_every_container_from_its_source_image_and_config(tmp_path):
    plane = cp.Plane(Podman("podman-not-called"), str(tmp_path / "dist"), str(tmp_path / "state"), "t_",
                     ("keystone", "nova"))
    for service in cp.SERVICES:
        directory = "images.source." if service.project in ("keystone", "nova") else "images."
        assert plane.layout(service.image) == str(tmp_path / "dist" / f"{directory}{service.image}" / service.image)
    command = json.loads((rendered(plane) / "nova-api" / "config.json").read_text())["command"]
    workers = cp.settings(plane)["workers"]
    assert command == f"uwsgi-core --ini /usr/share/nova/nova-api-uwsgi.ini --processes {workers}"
    debian = cp.Plane(Podman("podman-not-called"), "dist", plane.state_dir, "t_")
    assert json.loads((rendered(debian) / "nova-api" / "config.json").read_text())["command"] == "nova-api"
    for directory in {d for s in cp.SERVICES for d in s.templates}:  # nova.conf and the rest stay Debian's
        source, packaged = (cp.template_files(cp.TEMPLATES, directory, kind) for kind in (True, False))
        assert source.keys() == packaged.keys(), directory
        changed = {name for name in source if source[name] != packaged[name]}
        assert changed == ({"config.json"} if directory == "nova-api" else set()), directory


def test_every_source_image_of_the_table_is_built_by_images_source():
    for image in cp.SOURCE_IMAGES:
        assert (REPO_ROOT / "images" / "source" / image / "BUILD").is_file(), image
    assert cp.SOURCE_PROJECTS == ("keystone", "nova", "placement")


def test_source_projects_are_checked_and_kept_for_the_commands_after_up(tmp_path):
    with pytest.raises(DeployError, match=r"no source images for every container of glance.*keystone, nova, placement"):
        cp.parse_source("glance,nova")
    with pytest.raises(DeployError, match=r"nova from source needs placement from source too .*os-traits"):
        cp.parse_source("keystone,nova")
    assert cp.parse_source("nova, placement,keystone,") == ("keystone", "nova", "placement")
    assert cp.parse_source("") == ()
    state = tmp_path / "state"
    plane = cp.Plane(Podman("podman-not-called"), "dist", str(state), "t_", ("keystone", "nova", "placement"))
    assert cp.kept_source(str(state)) == ()
    cp.keep_source(plane)
    assert cp.kept_source(str(state)) == ("keystone", "nova", "placement")
    assert stat.S_IMODE((state / "source.json").stat().st_mode) == 0o600

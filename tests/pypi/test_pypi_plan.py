"""Planning an image's venv from a Pex lockfile: closure, markers, extras, wheel choice, refusals."""

from __future__ import annotations

import json

import pytest

from oci.errors import ImageBuildError
from pypi.content import EMPTY_STATE, Pin, PypiState, check_parent_pins
from pypi.why import dependency_path
from pypi.lockfile import LockedDistribution, PypiLockError, TargetInterpreter, closure, parse_lockfile, wheels_for

FILES = "https://files.example/"


def locked(name, version, requires=(), files=None):
    files = files if files is not None else [f"{name.replace('-', '_')}-{version}-py3-none-any.whl"]
    return {"project_name": name, "version": version, "requires_dists": list(requires),
            "artifacts": [{"url": FILES + f, "algorithm": "sha256", "hash": f"{i}" * 64} for i, f in enumerate(files)]}


LOCK = "// header\n//   comment\n" + json.dumps({
    "requirements": ["app", "Fast_Mod"],
    "locked_resolves": [{"platform_tag": None, "locked_requirements": [
        locked("app", "1.0", ["lib-a>=1", "tomli; python_version < \"3.11\"", "win-only; sys_platform == \"win32\"",
                              "extra-dep; extra == \"cli\"", "Fast.Mod[speed]"]),
        locked("lib-a", "2.0"),
        locked("tomli", "2.0"),
        locked("win-only", "1.0"),
        locked("extra-dep", "1.0"),
        locked("fast-mod", "3.0", ["speedup; extra == \"speed\""], files=[
            "fast_mod-3.0-py3-none-any.whl", "fast_mod-3.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "fast_mod-3.0-cp312-cp312-manylinux_2_17_x86_64.whl", "fast_mod-3.0-cp311-cp311-macosx_11_0_arm64.whl",
            "fast_mod-3.0-cp311-cp311-manylinux_2_39_x86_64.whl", "fast_mod-3.0.tar.gz"]),
        locked("speedup", "1.0", files=["speedup-1.0.tar.gz"]),
    ]}],
})
TARGET = TargetInterpreter("3.11", "amd64", "2.36")


def test_the_closure_follows_markers_and_only_the_extras_asked_for():
    lock = parse_lockfile("openstack", "3rdparty/python/openstack.lock", LOCK)
    names = [d.name for d in closure(lock, ["app"], (), TARGET, "//images:app")]
    assert names == ["app", "fast-mod", "lib-a", "speedup"]
    with_cli = [d.name for d in closure(lock, ["app[cli]"], ("speedup",), TARGET, "//images:app")]
    assert with_cli == ["app", "extra-dep", "fast-mod", "lib-a"]


def test_a_project_not_in_the_lock_is_refused_with_the_fix():
    lock = parse_lockfile("openstack", "3rdparty/python/openstack.lock", LOCK)
    with pytest.raises(PypiLockError, match=r"//images:app asks for 'nova'.*not locked in resolve 'openstack'.*"
                                            r"generate-lockfiles --resolve=openstack"):
        closure(lock, ["nova"], (), TARGET, "//images:app")


def test_the_most_specific_wheel_for_the_image_interpreter_is_chosen():
    lock = parse_lockfile("openstack", "x.lock", LOCK)
    wheels = wheels_for([lock.by_name()["fast-mod"]], TARGET, lock, "//images:app")
    assert wheels[0].filename == "fast_mod-3.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    arm = wheels_for([lock.by_name()["fast-mod"]], TargetInterpreter("3.11", "arm64", "2.36"), lock, "//images:app")
    assert arm[0].filename == "fast_mod-3.0-py3-none-any.whl"  # no manylinux aarch64 wheel; macOS never


def test_a_distribution_with_only_an_sdist_is_refused_naming_it_and_the_fix():
    lock = parse_lockfile("openstack", "3rdparty/python/openstack.lock", LOCK)
    with pytest.raises(PypiLockError) as error:
        wheels_for(closure(lock, ["app"], (), TARGET, "//images:app"), TARGET, lock, "//images:app")
    message = str(error.value)
    assert "for: speedup 1.0." in message and "wheels only" in message
    assert "python_exclude" in message and "generate-lockfiles --resolve=openstack" in message


def test_a_lockfile_that_is_not_a_pex_lock_is_refused():
    with pytest.raises(PypiLockError, match="not a Pex lockfile.*generate-lockfiles --resolve=openstack"):
        parse_lockfile("openstack", "3rdparty/python/openstack.lock", "// header\n{}")


def test_a_child_pinning_a_parent_distribution_differently_is_refused():
    parent = PypiState(EMPTY_STATE.records, (Pin("lib-a", "1.0", "//images/base:base"),))
    wanted = (LockedDistribution("lib-a", "2.0", (), ()), LockedDistribution("app", "1.0", (), ()))
    with pytest.raises(ImageBuildError, match=r"lib-a 2.0 \(the parent chain has 1.0 from //images/base:base\)"):
        check_parent_pins("//images/app:app", wanted, parent)
    check_parent_pins("//images/app:app", (LockedDistribution("lib-a", "1.0", (), ()),), parent)


def test_why_names_the_shortest_path_from_a_requirement_through_the_lock():
    lock = parse_lockfile("openstack", "x.lock", LOCK)
    assert dependency_path(lock, ["app"], "Fast_Mod", TARGET) == ("app", "fast-mod")
    assert dependency_path(lock, ["app"], "speedup", TARGET) == ("app", "fast-mod", "speedup")  # extra [speed]
    assert dependency_path(lock, ["app"], "tomli", TARGET) is None  # python_version < "3.11"
    assert dependency_path(lock, ["lib-a"], "app", TARGET) is None


def test_update_cost_pulls_only_the_venv_layers_whose_wheels_the_old_lock_lacks():
    from pants.engine.addresses import Address

    from audit.facts import ImageFacts, ImageNames, LayerFacts, PythonDistributionFacts
    from audit.update_cost import OldPythonLock, image_cost, python_changes

    base, app = Address("images/base"), Address("images/app")
    lock = parse_lockfile("openstack", "x.lock", LOCK)
    wheel = {d.name: d.artifacts[0] for d in lock.distributions}

    def venv_layer(digest, by, *names):
        distributions = tuple(PythonDistributionFacts(n, lock.by_name()[n].version, wheel[n][0], wheel[n][2])
                              for n in names)
        return LayerFacts(f"sha256:{digest * 64}", f"sha256:{digest * 64}", 100, "pypi", by, (), distributions)

    layers = (venv_layer("1", base, "lib-a"), venv_layer("2", app, "app", "fast-mod"))
    image = ImageFacts(app, (base, app), ImageNames("app", (), ("latest",)), "sha256:" + "f" * 64,
                       "sha256:" + "e" * 64, "{}", layers)
    unchanged = image_cost(image, [], OldPythonLock.of(lock))
    assert unchanged.layered_layers == () and unchanged.run_style_bytes == 0
    old = OldPythonLock.of(parse_lockfile("openstack", "old.lock", lock_with("lib-a", "1.0", "a" * 64)))
    cost = image_cost(image, [], old)
    assert [layer.digest for layer in cost.layered_layers] == ["sha256:" + "1" * 64]  # the child's layer stays
    assert cost.run_style_bytes == 200  # one RUN pip install per image: the base's and, after it, the app's
    assert "lib-a 1.0 -> 2.0" in python_changes(old, lock)


def lock_with(name: str, version: str, sha256: str) -> str:
    """LOCK with one distribution at another version and wheel."""
    body = json.loads("".join(line for line in LOCK.splitlines(True) if not line.startswith("//")))
    for requirement in body["locked_resolves"][0]["locked_requirements"]:
        if requirement["project_name"] == name:
            requirement["version"] = version
            requirement["artifacts"] = [{"url": f"{FILES}{name}-{version}-py3-none-any.whl", "algorithm": "sha256",
                                         "hash": sha256}]
    return json.dumps(body)


def test_a_module_both_the_venv_and_debian_provide_is_found_in_both_directions():
    from pypi.modules import VenvDistribution, clash_message, module_clashes

    site = "lib/python3.11/site-packages"
    parents = VenvDistribution("PyYAML", "6.0.1", "//images/base:base", (
        f"{site}/yaml/__init__.py", f"{site}/_yaml/__init__.py", f"{site}/PyYAML-6.0.1.dist-info/RECORD"))
    own = VenvDistribution("greet", "1.0", "//images/app:app", (f"{site}/greet.py", "bin/greet"))
    debian = {"yaml": "python3-yaml", "greet": "python3-greet", "apt": "python3-apt"}
    clashes = module_clashes("//images/app:app", [parents, own], debian, site)
    assert [(c.module, c.package, c.reverse) for c in clashes] == [("greet", "python3-greet", False),
                                                                  ("yaml", "python3-yaml", True)]
    message = clash_message("//images/app:app", clashes)
    assert "greet 1.0 of its venv and Debian's python3-greet both provide `greet`" in message
    assert 'python_exclude={"greet": "Debian\'s python3-greet"}' in message
    assert ("Debian's python3-yaml, added here, provides `yaml`, which PyYAML 6.0.1 of the venv of //images/base:base "
            "already has: drop python3-yaml from the image's `packages`") in message
    assert module_clashes("//images/app:app", [parents, own], {"apt": "python3-apt"}, site) == ()


HEADER = """// This lockfile was autogenerated by Pants. To regenerate, run:
//
//    pants generate-lockfiles --resolve=openstack
//
// --- BEGIN PANTS LOCKFILE METADATA: DO NOT EDIT OR REMOVE ---
// {
//   "version": 3,
//   "generated_with_requirements": [
//     "Fast_Mod",
//     "app"
//   ],
//   "requirement_constraints": [
//     "app===1.0",
//     "fast-mod===3.0"
//   ]
// }
// --- END PANTS LOCKFILE METADATA ---
"""


def test_a_lock_generated_from_other_requirements_or_constraints_is_stale():
    from pypi.lockfile import LockFreshness, LockInputs, normalized_requirements, stale_lock_changes

    lock = parse_lockfile("openstack", "3rdparty/python/openstack.lock", HEADER + LOCK.split("\n", 2)[2])
    same = LockInputs(normalized_requirements(["app", "fast.mod"]),
                      normalized_requirements(["APP===1.0", "Fast_Mod===3.0"]))
    assert stale_lock_changes(lock, same) == []
    bumped = LockInputs(same.requirements + ("nova",), normalized_requirements(["app===1.1", "fast-mod===3.0"]))
    changes = stale_lock_changes(lock, bumped)
    assert changes == ["requirements added since: nova", "constraints added since: app===1.1",
                       "constraints removed since: app===1.0"]
    problem = LockFreshness("openstack", lock.path, tuple(changes)).problem("//images/app:app")
    assert problem.startswith("//images/app:app: the lockfile 3rdparty/python/openstack.lock of Python resolve "
                              "'openstack' is stale")
    assert "./pants generate-lockfiles --resolve=openstack" in problem
    headless = parse_lockfile("openstack", "x.lock", LOCK)
    assert "no Pants metadata header" in stale_lock_changes(headless, same)[0]


def test_an_image_asking_for_a_version_the_lock_does_not_have_is_refused_as_stale():
    lock = parse_lockfile("openstack", "3rdparty/python/openstack.lock", LOCK)
    assert [d.name for d in closure(lock, ["lib-a>=2,<3"], (), TARGET, "//images:app")] == ["lib-a"]
    with pytest.raises(PypiLockError, match=r"//images:app asks for 'lib-a>=3'.*locks 2.0: the lock is stale.*"
                                            r"generate-lockfiles --resolve=openstack"):
        closure(lock, ["lib-a>=3"], (), TARGET, "//images:app")


def test_update_cost_checks_each_venv_layer_against_the_old_lock_of_its_own_resolve():
    from pants.engine.addresses import Address

    from audit.facts import ImageFacts, ImageNames, LayerFacts, PythonDistributionFacts
    from audit.update_cost import (OldPythonLock, OldPythonLocks, UpdateCostError, image_cost,
                                   old_python_lock_paths)

    lock = parse_lockfile("openstack", "x.lock", LOCK)
    lib_a = lock.by_name()["lib-a"]
    base, tool = Address("images/base"), Address("images/tool")
    layer = LayerFacts("sha256:" + "1" * 64, "sha256:" + "1" * 64, 100, "pypi", tool, (),
                       (PythonDistributionFacts("lib-a", "2.0", lib_a.artifacts[0][0], lib_a.artifacts[0][2]),))
    image = ImageFacts(tool, (base, tool), ImageNames("tool", (), ("latest",)), "sha256:" + "f" * 64,
                       "sha256:" + "e" * 64, "{}", (layer,))
    unchanged = OldPythonLock.of(lock)
    bumped = OldPythonLock.of(parse_lockfile("tools", "old.lock", lock_with("lib-a", "1.0", "a" * 64)))
    resolve_of = {"images/base:base": "openstack", "images/tool:tool": "tools"}
    # The openstack lock still has lib-a 2.0's wheel; the tools resolve, which built images/tool, bumped it.
    both = OldPythonLocks({"openstack": unchanged, "tools": bumped}, resolve_of)
    assert [l.digest for l in image_cost(image, [], both).layered_layers] == [layer.digest]
    assert image_cost(image, [], OldPythonLocks({"openstack": unchanged}, resolve_of)).layered_layers == ()
    assert image_cost(image, [], OldPythonLocks({"tools": unchanged}, resolve_of)).layered_layers == ()

    resolves = {"openstack": "a.lock", "tools": "b.lock"}
    assert old_python_lock_paths(["old.lock", "tools=/tmp/b=1.lock"], "openstack", resolves) == {
        "openstack": "old.lock", "tools": "/tmp/b=1.lock"}
    assert old_python_lock_paths(["/tmp/x=y.lock"], "openstack", resolves) == {"openstack": "/tmp/x=y.lock"}
    with pytest.raises(UpdateCostError, match="names resolve 'openstack' twice"):
        old_python_lock_paths(["a.lock", "openstack=b.lock"], "openstack", resolves)


def test_compile_python_without_a_python_of_the_venv_version_names_the_image_and_the_fix():
    from oci.pycompile import BytecodeCompiler
    from pypi.content import venv_compiler

    with pytest.raises(ImageBuildError, match=r"//images:app has compile_python=True and a venv on Python 3\.11 .*"
                                              r"no python3\.11 in \[python-bootstrap\]\.search_path \(/usr/bin\)"):
        venv_compiler("//images:app", BytecodeCompiler("3.11", None, "", ("/usr/bin",)))
    found = venv_compiler("//images:app", BytecodeCompiler("3.11", "/usr/bin/python3.11", "abc", ("/usr/bin",)))
    assert (found.python, found.minor, found.fingerprint) == ("/usr/bin/python3.11", "3.11", "abc")

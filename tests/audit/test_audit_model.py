"""Unit tests of the audits' pure parts: dependency paths, policy findings, sizes and the update cost."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest
from pants.engine.addresses import Address

from audit.facts import ImageFacts, ImageNames, LayerFacts, PackageFacts, layer_owners
from audit.fields import parse_size
from audit.lockgraph import LockGraph
from audit.policy import ImagePolicy, PackageRules, check_image, render_report
from audit.sizes import dot_graph, human_bytes, image_sizes, layer_users, parent_tree, set_sizes, text_tree
from audit.update_cost import Budget, OldLock, image_cost, level_costs, set_cost

BASE, APP, TOOL = Address("images/base"), Address("images/app"), Address("images/tool")

LOCK = {
    "architectures": {"amd64": {
        "libc6": {"version": "2.36-9", "sha256": "c" * 64, "size": 3000, "depends": [], "essential": False},
        "bash": {"version": "5.2", "sha256": "b" * 64, "size": 1000, "depends": ["libc6"], "essential": True},
        "mawk": {"version": "1.3.4", "sha256": "m" * 64, "size": 100, "depends": ["libc6"], "essential": False},
        "build-essential": {"version": "12.9", "sha256": "e" * 64, "size": 10, "depends": ["gcc-12"]},
        "gcc-12": {"version": "12.2.0", "sha256": "g" * 64, "size": 9000, "depends": ["cpp-12", "libc6"]},
        "cpp-12": {"version": "12.2.0", "sha256": "p" * 64, "size": 8000, "depends": ["libc6"]},
        "tool": {"version": "1.0", "sha256": "t" * 64, "size": 500, "depends": ["mawk"], "recommends": ["doc"]},
        "doc": {"version": "1.0", "sha256": "d" * 64, "size": 50, "depends": []},
    }},
    "requests": {
        "images/base:base": {"packages": ["mawk"], "recommends": False, "essential": True, "parent": None},
        "images/app:app": {"packages": ["build-essential", "tool"], "recommends": True, "essential": False,
                           "parent": "images/base:base"},
    },
    "images": {
        "images/base:base": {"amd64": {"requested": ["mawk"], "closure": ["bash", "libc6", "mawk"]}},
        "images/app:app": {"amd64": {"requested": ["build-essential", "tool"],
                                     "closure": ["bash", "build-essential", "cpp-12", "doc", "gcc-12", "libc6",
                                                 "mawk", "tool"]}},
    },
}


def package(name: str, size: int = 1000, setuid: tuple = (), sha: str | None = None) -> PackageFacts:
    pin = LOCK["architectures"]["amd64"].get(name, {})
    return PackageFacts(name, pin.get("version", "1"), "amd64", name, name, sha or pin.get("sha256", name * 64),
                        size, 3, setuid)


def layer(digest: str, size: int, by: Address, packages=(), created_by: str = "") -> LayerFacts:
    created_by = created_by or ("packages " + " ".join(p.name for p in packages) if packages else f"files of {by}")
    return LayerFacts(f"sha256:{digest * 64}"[:71], f"sha256:{digest * 64}"[:71], size, created_by, by,
                      tuple(packages))


def facts(address: Address, chain, layers, user: str = "", cmd=None) -> ImageFacts:
    config = {"architecture": "amd64", "created": "1970-01-01T00:00:00Z",
              "config": {"User": user, **({"Cmd": cmd} if cmd else {})}}
    return ImageFacts(address, tuple(chain), ImageNames(address.target_name, (), ("latest",)),
                      f"sha256:{'f' * 64}", f"sha256:{'e' * 64}", json.dumps(config), tuple(layers))


BASE_LAYERS = [layer("1", 400, BASE, [package("bash", 2000, ("/usr/bin/su",)), package("libc6", 5000)]),
               layer("2", 100, BASE, [package("mawk", 300)]),
               layer("3", 10, BASE, created_by="system files of images/base:base")]
APP_LAYERS = [layer("4", 900, APP, [package("build-essential", 10), package("cpp-12", 8000), package("doc", 50),
                                    package("gcc-12", 9000)]),
              layer("5", 50, APP, [package("tool", 700)]),
              layer("6", 10, APP, created_by="system files of images/app:app")]


def base_facts() -> ImageFacts:
    return facts(BASE, [BASE], BASE_LAYERS)


def app_facts(user: str = "", cmd=("/usr/bin/tool",)) -> ImageFacts:
    return facts(APP, [BASE, APP], BASE_LAYERS + APP_LAYERS, user=user, cmd=list(cmd) if cmd else None)


def test_layer_owners_follow_the_chain():
    assert layer_owners([BASE, APP], [3, 6]) == [BASE] * 3 + [APP] * 3


@pytest.mark.parametrize("text,expected", [("1024", 1024), ("300MB", 300_000_000), ("1.5GiB", 3 * 2**29),
                                           ("10 kB", 10_000)])
def test_sizes_parse(text, expected):
    assert parse_size(text) == expected


def test_human_bytes():
    assert [human_bytes(n) for n in (0, 999, 1000, 1_234_567, 5 * 10**9)] == ["0 B", "999 B", "1.0 kB", "1.2 MB",
                                                                                "5.0 GB"]


def test_why_follows_depends_from_the_nearest_declaration():
    graph = LockGraph.from_lock(LOCK, "amd64")
    path = graph.why(["images/base:base", "images/app:app"], "cpp-12")
    assert path.describe() == "images/app:app declares build-essential: build-essential -> gcc-12 -> cpp-12"
    assert graph.why(["images/base:base", "images/app:app"], "doc").packages == ("tool", "doc")  # recommends
    assert graph.why(["images/base:base"], "doc") is None


def test_why_explains_essential_packages_and_prefers_declared_roots():
    graph = LockGraph.from_lock(LOCK, "amd64")
    bash = graph.why(["images/base:base"], "bash")
    assert bash.root.essential and bash.describe().startswith("images/base:base takes the Essential set")
    libc = graph.why(["images/base:base"], "libc6")
    assert libc.packages == ("mawk", "libc6") and not libc.root.essential


def test_why_uses_the_nearest_declaring_ancestor_of_an_image_without_packages():
    graph = LockGraph.from_lock(LOCK, "amd64")
    path = graph.why(["images/base:base", "images/app:app", "images/plain:plain"], "gcc-12")
    assert path.root.image == "images/app:app"


RULES = PackageRules((("compilers", ("gcc", "gcc-[0-9]*", "cpp-[0-9]*")), ("dev-packages", ("*-dev",))))


def why(package_name: str):
    return LockGraph.from_lock(LOCK, "amd64").why(["images/base:base", "images/app:app"], package_name)


def test_policy_names_package_path_and_fix():
    findings = check_image(app_facts(user="app"), ImagePolicy(frozenset(), None, None), RULES, why, False)
    assert [(f.rule, f.message) for f in findings] == [
        ("compilers", "cpp-12 12.2.0 (added by images/app:app)"),
        ("compilers", "gcc-12 12.2.0 (added by images/app:app)"),
    ]
    assert findings[0].why == "images/app:app declares build-essential: build-essential -> gcc-12 -> cpp-12"
    assert findings[0].fix.startswith("remove build-essential from the `packages` of images/app:app or replace it")
    assert 'add `policy_allow=["compilers"]` to images/app:app' in findings[0].fix


def test_policy_allows_per_image_and_points_inherited_packages_to_the_parent():
    allowed = check_image(app_facts(user="app"), ImagePolicy(frozenset({"compilers"}), None, None), RULES, why, False)
    assert allowed == []
    child = facts(Address("images/plain"), [BASE, APP, Address("images/plain")], BASE_LAYERS + APP_LAYERS,
                  user="app", cmd=["/x"])
    [first, _] = check_image(child, ImagePolicy(frozenset(), None, None), RULES, why, False)
    assert first.fix.startswith("it comes with the parent image images/app:app: fix it there")


@pytest.mark.parametrize("user,cmd,violates", [("", ["/x"], True), ("root", ["/x"], True), ("0:0", ["/x"], True),
                                               ("app", ["/x"], False), ("42400:42400", ["/x"], False),
                                               ("", None, False)])
def test_root_user_applies_to_images_with_a_command(user, cmd, violates):
    findings = check_image(app_facts(user=user, cmd=cmd), ImagePolicy(frozenset({"compilers"}), None, None), RULES,
                           why, False)
    assert [f.rule for f in findings] == (["root-user"] if violates else [])


def test_an_init_entrypoint_for_children_is_not_a_service():
    image = facts(BASE, [BASE], BASE_LAYERS)
    config = json.loads(image.config_json)
    config["config"]["Entrypoint"] = ["/usr/bin/dumb-init", "--"]
    image = dataclasses.replace(image, config_json=json.dumps(config))
    policy = ImagePolicy(frozenset(), None, None)
    assert check_image(image, policy, RULES, why, False, has_children=True) == []
    [finding] = check_image(image, policy, RULES, why, False, has_children=False)
    assert finding.rule == "root-user" and "/usr/bin/dumb-init --" in finding.message


def test_compiler_patterns_name_compilers_not_their_runtime_libraries():
    from audit.policy import COMPILER_PACKAGES

    rules = PackageRules((("compilers", COMPILER_PACKAGES),))
    assert [n for n in ("gcc", "gcc-12", "cpp-12", "g++-12", "clang-16", "gcc-12-base", "libgcc-s1", "cpp-12-doc")
            if rules.broken_by(n)] == ["gcc", "gcc-12", "cpp-12", "g++-12", "clang-16"]


def test_budgets_and_setuid_listing():
    image = app_facts(user="app")
    policy = ImagePolicy(frozenset({"compilers"}), max_size=1000, max_packages=3)
    findings = check_image(image, policy, RULES, why, True)
    rules = [(f.rule, f.blocking) for f in findings]
    assert rules == [("size-budget", True), ("package-budget", True), ("setuid", False)]
    assert "1.5 kB compressed, over its budget of 1.0 kB" in findings[0].message
    assert "gcc-12 9.0 kB" in findings[0].fix
    assert findings[2].message == "1 more from its parent images (listed there)"
    assert [f.message for f in check_image(base_facts(), policy, RULES, why, True) if f.rule == "setuid"] == [
        "/usr/bin/su (bash)"]
    report = render_report([(image, findings)])
    assert report.startswith("images/app:app: 2 violations (8 packages, 1.5 kB)\n")
    assert "  info  [setuid] 1 more from its parent images (listed there)" in report


def test_sizes_of_a_set_count_shared_layers_once():
    tool = facts(TOOL, [BASE, TOOL], BASE_LAYERS + [layer("7", 30, TOOL)])
    all_facts = [base_facts(), app_facts(), tool]
    users = layer_users(all_facts)
    sizes = {s.address: s for s in (image_sizes(f, users, top=2) for f in all_facts)}
    app = sizes["images/app:app"]
    assert (app.total_bytes, app.own_bytes, app.shared_bytes) == (1470, 960, 510)
    assert app.packages == 8 and app.own_packages == 5
    assert [p.name for p in app.largest] == ["gcc-12", "cpp-12"]
    assert sizes["images/tool:tool"].shared_bytes == 510
    totals = set_sizes(all_facts)
    assert (totals.sum_of_totals, totals.unique_bytes) == (510 + 1470 + 540, 510 + 960 + 30)
    tree = parent_tree(list(sizes.values()))
    text = text_tree(tree)
    assert text.splitlines() == [
        "images/base:base  (own 510 B, total 510 B, 3 packages; its 510 B shared with 2 images)",
        "├── images/app:app  (own 960 B, total 1.5 kB, 8 packages)",
        "└── images/tool:tool  (own 30 B, total 540 B, 3 packages)",
    ]
    dot = dot_graph(tree)
    assert '"images/base:base" -> "images/app:app";' in dot and "shares 510 B with 2 images" in dot


# Agrees with the synthetic layers: small packages packed by name up to 4000 bytes ({bash, libc6}, {mawk}; each of
# app's packages alone).
BUDGET = Budget(own_layer_bytes=10**9, group_layer_bytes=4000, package_layers_per_image=12, max_layers=127)


def split_app_layers(tool_sha: str = "t" * 64) -> list:
    layers = [layer(str(i), 100, APP, [package(name)]) for i, name in
              zip("abcd", ["build-essential", "cpp-12", "doc", "gcc-12"])]
    layers.append(layer("e" if tool_sha == "t" * 64 else "9", 100, APP, [package("tool", sha=tool_sha)]))
    layers.append(layer("f", 10, APP, created_by="system files of images/app:app"))
    return layers


def test_update_cost_pulls_only_the_changed_package_layer_and_the_system_layer():
    current = facts(APP, [BASE, APP], BASE_LAYERS + split_app_layers(tool_sha="u" * 64), user="app")
    levels = level_costs(current, OldLock(LOCK), BUDGET)
    assert [lv.packages_changed for lv in levels] == [False, True]
    cost = image_cost(current, levels)
    assert [layer_.created_by for layer_ in cost.layered_layers] == ["packages tool", "system files of images/app:app"]
    assert cost.layered_bytes == 110
    assert cost.run_style_bytes == 5 * 100 + 10  # app's one RUN layer: all its packages again
    totals = set_cost([current], [cost], {str(APP): levels})
    assert totals.layered_bytes == cost.layered_bytes and totals.run_style_bytes == cost.run_style_bytes


def test_update_cost_of_an_unchanged_lock_is_zero():
    current = facts(APP, [BASE, APP], BASE_LAYERS + split_app_layers(), user="app")
    cost = image_cost(current, level_costs(current, OldLock(LOCK), BUDGET))
    assert cost.layered_bytes == 0 and cost.run_style_bytes == 0


def test_run_style_rebuilds_children_of_a_changed_parent():
    changed = json.loads(json.dumps(LOCK))
    changed["architectures"]["amd64"]["mawk"]["sha256"] = "n" * 64  # the old lock had another mawk
    current = facts(APP, [BASE, APP], BASE_LAYERS + split_app_layers(), user="app")
    levels = level_costs(current, OldLock(changed), BUDGET)
    assert [lv.packages_changed for lv in levels] == [True, False]
    cost = image_cost(current, levels)
    assert cost.run_style_bytes == current.total_bytes  # every level's RUN layer is rebuilt
    assert [layer_.created_by for layer_ in cost.layered_layers] == [
        "packages mawk", "system files of images/base:base", "system files of images/app:app"]


def test_source_revision_is_recorded_or_unknown():
    from audit.provenance import SourceRevision

    assert SourceRevision(None, None, False).to_resource() == {"name": "source", "annotations": {"revision": "unknown"}}
    clean = SourceRevision("a" * 40, "https://git.example/images.git", False).to_resource()
    assert clean == {"name": "source", "digest": {"gitCommit": "a" * 40}, "uri": "git+https://git.example/images.git"}
    assert SourceRevision("a" * 40, None, True).to_resource()["annotations"] == {"dirty": True}


def test_old_lock_from_a_git_revision(tmp_path):
    import shutil
    import subprocess

    from pants.core.util_rules.system_binaries import GitBinary
    from pants.vcs.git import GitWorktree

    from audit.provenance import git_remote
    from audit.update_cost import UpdateCostError, read_old_lock

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args], cwd=tmp_path,
                       check=True, capture_output=True)

    (tmp_path / "lock.yaml").write_text("version: 1\n")
    git("init", "-q")
    git("add", "lock.yaml")
    git("commit", "-q", "-m", "lock")
    (tmp_path / "lock.yaml").write_text("version: 2\n")
    worktree = GitWorktree(GitBinary(shutil.which("git")), worktree=tmp_path)
    options = SimpleNamespace(old_lock=None, since="HEAD")
    assert read_old_lock(options, "lock.yaml", worktree).strip() == "version: 1"
    assert git_remote(worktree) is None
    with pytest.raises(UpdateCostError, match="exactly one of"):
        read_old_lock(SimpleNamespace(old_lock="x", since="HEAD"), "lock.yaml", worktree)
    with pytest.raises(UpdateCostError, match="Cannot read lock.yaml at nope"):
        read_old_lock(SimpleNamespace(old_lock=None, since="nope"), "lock.yaml", worktree)

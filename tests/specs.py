"""The actions' typed specs with the defaults tests want: short to write, complete when read."""

from __future__ import annotations

from typing import Iterable, Mapping, Optional

from oci.actions.ocilayout import ImageSettings
from oci.actions.specs import BuiltImageJson, FileEntrySpec, FilesLayerSpec, ImageSpec, LayerDescriptor, LayerSettings


def settings(created_by: str = "t", mtime: int = 0, level: int = 6) -> LayerSettings:
    return LayerSettings(mtime, level, created_by)


def files_layer(entries: Iterable[Mapping], created_by: str = "t", mtime: int = 0, level: int = 6) -> FilesLayerSpec:
    """`entries`: {"path", "source"} and optionally "mode" (0644), "uid" and "gid" (0)."""
    return FilesLayerSpec(tuple(FileEntrySpec(e["path"], e.get("mode", 0o644), e.get("uid", 0), e.get("gid", 0),
                                              e["source"]) for e in entries), settings(created_by, mtime, level))


def image(name: str = "//img", layers: Iterable[LayerDescriptor] = (), parent: Optional[BuiltImageJson] = None,
          tags: Iterable[str] = ("latest",), created_epoch: int = 0, architecture: str = "amd64",
          **config) -> ImageSpec:
    """`config`: ImageSettings fields (env, cmd, entrypoint, user, workdir, labels, exposed_ports)."""
    return ImageSpec(name, parent, tuple(layers), ImageSettings(**config), created_epoch, architecture,
                     tuple(tags), {})


def accounts(users: Optional[Mapping] = None, groups: Optional[Mapping] = None):
    """AccountIds for package layers: base-passwd's ids plus `users` ({name: {uid, gid}}) and `groups`."""
    from debian.actions.accounts import AccountIds

    return AccountIds.with_base({"users": dict(users or {}), "groups": dict(groups or {})})


def system_layer(users_table: Optional[Mapping] = None, declared_users: Iterable[str] = (),
                 users_table_path: str = "images/users.yaml", image_name: str = "//img", timezone: str = "Etc/UTC",
                 effect_policy: Optional[Mapping] = None, accepted_effects: Optional[Mapping] = None,
                 path_excludes: Iterable[str] = (), path_includes: Iterable[str] = ()):
    from debian.actions.build_system_layer import SystemLayerSpec
    from debian.actions.pathfilter import PathFilter

    return SystemLayerSpec(image_name, users_table or {"users": {}, "groups": {}}, users_table_path,
                           tuple(declared_users), timezone, dict(effect_policy or {}), dict(accepted_effects or {}),
                           PathFilter(tuple(path_excludes), tuple(path_includes)), settings("system files"))

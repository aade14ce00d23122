"""`[debian]` options: the archive, the lock, layer planning and what replaces maintainer scripts."""

from __future__ import annotations

from pants.option.option_types import DictOption, FloatOption, IntOption, StrListOption, StrOption
from pants.option.subsystem import Subsystem
from pants.util.strutil import help_text


class DebianSubsystem(Subsystem):
    options_scope = "debian"
    help = "Debian packages for `oci_image(packages=...)`: sources, lock and layer planning."

    sources = StrOption(
        default="3rdparty/debian/sources.yaml",
        help="The manifest of apt sources (mirror URL, suites, components, architectures, keyring).",
    )
    lockfile = StrOption(
        default="3rdparty/debian/lock.yaml",
        help="The lock written by `pants generate-lockfiles --resolve=debian` and read by every build.",
    )
    deb_cache = StrOption(
        default="~/.cache/oci-pants/debs",
        help=help_text(
            """
            Directory of downloaded .debs named by sha256. The mirror drops old versions, so a .deb
            found here is taken from here and the mirror is only asked for the rest.
            """
        ),
    )
    fetch_order = StrListOption(
        default=["cache", "mirror", "archive", "snapshot"],
        help=help_text(
            """
            Where .debs are fetched from, in order, every byte checked against the lock's sha256 and
            size: `cache` (`deb_cache`), `mirror` (the apt source's URL and the lock's pool path),
            `archive` (the OCI registry of `archive`, by sha256), `snapshot` (`snapshot_url`). A
            source that is not configured is skipped.
            """
        ),
    )
    archive = StrOption(
        default="",
        help=help_text(
            """
            An OCI registry repository holding every locked .deb as a blob, filled by
            `pants archive-debs`: `host[:port]/repository`, HTTPS unless the host is 127.0.0.1 or
            localhost or the value starts with `http://`. It keeps old locks buildable after the
            mirror drops their versions.
            """
        ),
    )
    snapshot_url = StrOption(
        default="",
        help=help_text(
            """
            A snapshot.debian.org-style URL template for .debs the mirror no longer has, e.g.
            `https://snapshot.debian.org/archive/{archive}/{timestamp}`: `{archive}` is the last path
            part of the apt source's URL (`debian`, `debian-security`) and `{timestamp}` the time
            the lock was generated (`snapshot_timestamp` in the lock). Empty: not used.
            """
        ),
    )
    fetch_parallelism = IntOption(default=8, help="Downloads at once within one fetch Process.")
    fetch_timeout = FloatOption(default=60.0, help="Seconds a download may wait for the server before the next source is tried.")
    own_layer_bytes = IntOption(
        default=8 * 1024 * 1024,
        help="A package whose .deb is at least this big gets a layer of its own.",
    )
    group_layer_bytes = IntOption(
        default=16 * 1024 * 1024,
        help="Smaller packages are grouped into layers of at most about this many .deb bytes.",
    )
    package_layers_per_image = IntOption(
        default=12,
        help="Most package layers one image adds; more packages share layers instead.",
    )
    script_effects = DictOption[str](
        default={
            # Replaced by declarations in the system layer (ldconfig: /etc/ld.so.cache and soname links).
            "alternatives": "covered", "accounts": "covered", "ca-certificates": "covered", "ldconfig": "covered",
            # Only matter on a booted host or for a package manager, not in an image.
            "service": "ignore", "boot": "ignore", "machine-id": "ignore", "binfmt": "ignore",
            "caches": "ignore", "trigger": "ignore", "maintscript-helper": "ignore", "shells": "ignore",
            "tmpfiles": "ignore", "locales": "ignore",
            # .pyc files are optional: Python compiles on first import when it can write.
            "byte-compile": "ignore",
        },
        help=help_text(
            """
            What to do with each kind of maintainer-script effect found in an image's packages:
            `covered` (the system layer replaces it), `ignore` (an image does not need it) or `error`.
            Kinds not listed here (filesystem changes, ucf conffiles, diversions, statoverrides,
            capabilities, pam, and commands not recognized at all) are errors.
            """
        ),
    )
    accepted_script_effects = DictOption[list](
        default={},
        help=help_text(
            """
            Maintainer-script effects that no rule applies and the images do without, one by one:
            `{package: [{script, command, path, reason}]}`, the command and path exactly as the
            build's error prints them. Whole kinds of effects are never accepted. An image whose
            packages have an unapplied effect with no entry here stops building.
            """
        ),
    )
    path_excludes = StrListOption(
        default=[],
        help=help_text(
            """
            Package files to leave out of package layers, as dpkg's `path-exclude`: shell globs on the
            absolute path, where `*` also matches `/` (e.g. `/usr/share/doc/*`). Unlike dpkg, the
            image's dpkg database lists only the files the layers hold, so `dpkg --verify` misses
            none; images get the filters as /etc/dpkg/dpkg.cfg.d/ lines. Layers are rebuilt when
            this changes.
            """
        ),
    )
    path_includes = StrListOption(
        default=[],
        help="Paths to keep although a `path_excludes` glob matches them (e.g. `/usr/share/doc/*/copyright`).",
    )
    users_table = StrOption(
        default="images/users.yaml",
        help=help_text(
            """
            The one table of users and groups with fixed ids. Images pick accounts by name with
            `users=[...]`; system users that packages create must be listed here too.
            """
        ),
    )
    timezone = StrOption(default="Etc/UTC", help="Time zone of /etc/localtime in images that install tzdata.")

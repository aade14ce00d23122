# BUILD-file macros of the image set (pants.toml: [GLOBAL].build_file_prelude_globs).


def kolla_extend_start_hook():
    """`:extend-start`, the image's own kolla_extend_start (next to its BUILD file).

    kolla_start sources it before it execs the service's command, so it is 0644 and replaces the
    empty hook of python-base: bootstraps (KOLLA_BOOTSTRAP) and upgrades (KOLLA_UPGRADE) go here.
    """
    image_files(
        name="extend-start",
        sources=["kolla_extend_start"],
        destination="/usr/local/bin",
        mode="0644",
        owner="0:0",
    )

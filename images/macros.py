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


def nova_compute_runtime_packages():
    """The programs Debian's nova-compute runs besides its Python: qemu-img, iSCSI, config drives,
    firewall, VLAN and disk tools. Both nova-compute variants take them; images/nova-compute/BUILD
    says why Debian's nova-compute package itself cannot be installed.
    """
    return [
        "qemu-utils",
        "open-iscsi",
        "genisoimage",
        "conntrack",
        "cgroup-tools",
        "curl",
        "dosfstools",
        "ebtables",
        "fdisk",
        "gawk",
        "iptables",
        "kpartx",
        "parted",
        "rsync",
        "vlan",
    ]

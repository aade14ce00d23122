"""Shared helpers of the bench/ scripts: timed runs, temp repositories, the lock, records.

Standard library only (Python 3.9+). Every timed command runs as a child of this process and
is reaped with os.wait4, which gives its wall time, CPU time (its descendants included) and peak
resident set size (the largest single process of its tree). While it runs, /proc/stat tells how
much CPU the rest of the machine used: `other_cores` is that, in cores, averaged over the run, so
a figure taken while other builds were running says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
PANTS_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "oci-pants" / "venv-2.17.1"
DEFAULT_DEB_CACHE = Path.home() / ".cache" / "oci-pants" / "debs"
MB = 1_000_000
CLK_TCK = os.sysconf("SC_CLK_TCK")
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


# --------------------------------------------------------------------------------------------
# Timed runs


@dataclass
class Run:
    label: str
    argv: List[str]
    returncode: int
    wall: float          # seconds
    cpu: float           # user + system seconds of the command and its reaped descendants
    peak_rss_mb: float   # ru_maxrss: the largest single process of the tree
    other_cores: float   # CPU the rest of the machine used during the run, in cores
    log: str             # where stdout+stderr went
    extra: dict = field(default_factory=dict)

    def output(self) -> str:
        return Path(self.log).read_text(errors="replace")

    def check(self) -> "Run":
        if self.returncode != 0:
            tail = "\n".join(self.output().splitlines()[-40:])
            raise SystemExit(f"error: {self.label} failed ({self.returncode}): {' '.join(self.argv)}\n{tail}")
        return self


def _busy_seconds() -> float:
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    busy = sum(values[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / CLK_TCK


def run(label: str, argv: Sequence[str], log: Path, cwd: Optional[Path] = None,
        env: Optional[Mapping[str, str]] = None, timeout: float = 3600, quiet: bool = False) -> Run:
    """Run argv with stdout+stderr to `log`; measure it. Does not raise on failure (see Run.check)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(f"  [{time.strftime('%H:%M:%S')}] {label}: {' '.join(argv)}", flush=True)
    # Peak RSS comes from GNU time when it is there: a child forked from this (possibly big) Python
    # process would otherwise report this process's RSS as its own high-water mark.
    rss_file = log.with_name(log.name + ".maxrss")
    wrapped = [GNU_TIME, "-f", "%M", "-o", str(rss_file), *argv] if GNU_TIME else list(argv)
    busy0 = _busy_seconds()
    start = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(wrapped, cwd=cwd, env=dict(env) if env is not None else None,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
    wall = time.monotonic() - start
    busy = _busy_seconds() - busy0
    proc.returncode = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else (status >> 8)
    cpu = usage.ru_utime + usage.ru_stime
    other = max(0.0, busy - cpu) / wall if wall > 0 else 0.0
    peak_kb = usage.ru_maxrss
    if GNU_TIME:
        try:
            peak_kb = int(rss_file.read_text().strip().splitlines()[-1])
            rss_file.unlink()
        except (OSError, ValueError, IndexError):
            peak_kb = 0
    result = Run(label, list(argv), proc.returncode, wall, cpu, peak_kb / 1024, other, str(log))
    if not quiet:
        print(f"      {wall:7.1f} s wall, {cpu:6.1f} s cpu, peak {result.peak_rss_mb:6.0f} MB, "
              f"other load {other:.2f} cores, rc {result.returncode}", flush=True)
    return result


def clean_env(extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANTS_")}
    env.update(extra or {})
    return env


# --------------------------------------------------------------------------------------------
# Pants in a temp repository


COMPLETED = re.compile(r"\[INFO\] Completed: (.*)")


def processes(output: str) -> List[str]:
    """Descriptions of the Processes that actually ran (cache hits log nothing with --no-dynamic-ui)."""
    return COMPLETED.findall(output)


def process_kinds(names: Iterable[str]) -> Dict[str, int]:
    kinds: Dict[str, int] = {}
    for name in names:
        kind = re.sub(r"\s+(of|images/|//).*$", "", name)
        kind = re.sub(r"^(Build package layer).*", r"\1", kind)
        kind = re.sub(r"^(Assemble).*", r"\1 image", kind)
        kinds[kind] = kinds.get(kind, 0) + 1
    return dict(sorted(kinds.items()))


def make_repo(dest: Path, with_images: bool = True) -> Path:
    """A copy of this repository's build inputs (pants, pants.toml, BUILD, rules/, 3rdparty/, images/)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in ("pants", "pants.toml", "BUILD"):
        if (REPO_ROOT / name).exists():
            shutil.copy2(REPO_ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO_ROOT / "rules", dest / "rules", ignore=ignore)
    shutil.copytree(REPO_ROOT / "3rdparty", dest / "3rdparty", ignore=ignore)
    if with_images and (REPO_ROOT / "images").is_dir():
        shutil.copytree(REPO_ROOT / "images", dest / "images", ignore=ignore)
    return dest


@dataclass
class Store:
    """One Pants cache: local store, named caches and the .deb cache. A fresh Store is a cold build."""
    root: Path
    deb_cache: Path

    @classmethod
    def fresh(cls, root: Path, deb_cache: Path) -> "Store":
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        return cls(root, deb_cache)

    def args(self) -> List[str]:
        return [f"--local-store-dir={self.root}/lmdb", f"--named-caches-dir={self.root}/named",
                f"--debian-deb-cache={self.deb_cache}"]

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def pants(repo: Path, label: str, args: Sequence[str], store: Optional[Store], log: Path,
          pantsd: bool = False, timeout: float = 3600, quiet: bool = False) -> Run:
    argv = ["./pants", "--pantsd" if pantsd else "--no-pantsd", "--no-dynamic-ui"]
    argv += store.args() if store else []
    argv += list(args)
    result = run(label, argv, log, cwd=repo, env=clean_env(), timeout=timeout, quiet=quiet)
    ran = processes(result.output())
    result.extra["processes"] = len(ran)
    result.extra["process_kinds"] = process_kinds(ran)
    if not quiet and ran:
        print(f"      processes that ran: {len(ran)} {result.extra['process_kinds']}", flush=True)
    return result


def pantsd_pid_files(repo: Path) -> List[Path]:
    """Pants 2.17 keeps pantsd's pid in <buildroot>/.pids/<fingerprint>/pantsd/pid."""
    return sorted(repo.glob(".pids/*/pantsd/pid")) + sorted(repo.glob(".pants.d/**/pantsd/pid"))


def pantsd_memory(repo: Path) -> dict:
    """Peak and current RSS (MB) of the pantsd serving this repo, from /proc/<pid>/status."""
    out = {}
    for pid_file in pantsd_pid_files(repo):
        try:
            status = Path(f"/proc/{int(pid_file.read_text().strip())}/status").read_text()
        except (ValueError, OSError):
            continue
        for key in ("VmHWM", "VmRSS"):
            match = re.search(rf"^{key}:\s+(\d+) kB", status, re.M)
            if match:
                out[key] = int(match.group(1)) / 1024
    return out


def stop_pantsd(repo: Path) -> None:
    """Stop the pantsd this benchmark started in its own temp repo (by the pid it wrote)."""
    for pid_file in pantsd_pid_files(repo):
        try:
            pid = int(pid_file.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.1)
        except (ValueError, ProcessLookupError, PermissionError):
            pass


def require_tools(*tools: str) -> None:
    """Stop with the apt-get line that installs what is missing."""
    missing = [tool for tool in tools if not shutil.which(tool)]
    if missing:
        raise SystemExit(f"error: {', '.join(missing)} not found (apt-get install -y {' '.join(tools)})")


def ensure_pants_bootstrapped(repo: Path, log: Path) -> None:
    """The first ./pants call makes the venv; keep it out of the measurements."""
    run("bootstrap pants", ["./pants", "--no-pantsd", "--version"], log, cwd=repo, env=clean_env(), quiet=True).check()


def link_tree(source: Path, dest: Path) -> Path:
    """A copy of a directory of files made of hardlinks (falls back to copies across filesystems)."""
    dest.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.is_file() and not (dest / entry.name).exists():
            try:
                os.link(entry, dest / entry.name)
            except OSError:
                shutil.copy2(entry, dest / entry.name)
    return dest


# --------------------------------------------------------------------------------------------
# OCI layouts


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_bytes())


def blob_path(layout: Path, digest: str) -> Path:
    algorithm, hexdigest = digest.split(":", 1)
    return Path(layout) / "blobs" / algorithm / hexdigest


def layout_manifest_digest(layout: Path) -> str:
    return read_json(Path(layout) / "index.json")["manifests"][0]["digest"]


def find_layouts(dist: Path) -> Dict[str, Path]:
    """name -> layout directory, for dist/<dir>/<name>/index.json as `pants package` writes them."""
    found = {}
    for index in sorted(Path(dist).glob("*/*/index.json")):
        found[index.parent.name] = index.parent
    return found


def layout_digests(dist: Path) -> Dict[str, str]:
    return {name: layout_manifest_digest(path) for name, path in find_layouts(dist).items()}


_size_cache: Dict[str, int] = {}


def _inflated_size(path: Path, media_type: str) -> int:
    import zlib
    key = str(path)
    if key in _size_cache:
        return _size_cache[key]
    size = 0
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if "gzip" in media_type else None
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            size += len(inflater.decompress(chunk)) if inflater else len(chunk)
        if inflater:
            size += len(inflater.flush())
    _size_cache[key] = size
    return size


@dataclass(frozen=True)
class LayerInfo:
    digest: str
    diff_id: str
    compressed: int
    uncompressed: int


def image_layers(layout: Path) -> List[LayerInfo]:
    """Layers of the (first) image of an OCI layout, with compressed and uncompressed sizes."""
    layout = Path(layout)
    manifest = read_json(blob_path(layout, layout_manifest_digest(layout)))
    config = read_json(blob_path(layout, manifest["config"]["digest"]))
    out = []
    for desc, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"]):
        out.append(LayerInfo(desc["digest"], diff_id, int(desc["size"]),
                             _inflated_size(blob_path(layout, desc["digest"]), desc.get("mediaType", ""))))
    return out


def new_bytes(before: Mapping[str, List[LayerInfo]], after: Mapping[str, List[LayerInfo]]) -> dict:
    """What a host or registry holding every `before` image must pull to get the `after` ones."""
    old = {layer.diff_id for layers in before.values() for layer in layers}
    per_image = {}
    unique: Dict[str, LayerInfo] = {}
    for name, layers in after.items():
        fresh = [layer for layer in layers if layer.diff_id not in old]
        per_image[name] = {"layers": len(fresh), "of": len(layers), "compressed": sum(l.compressed for l in fresh),
                           "uncompressed": sum(l.uncompressed for l in fresh)}
        for layer in fresh:
            unique[layer.diff_id] = layer
    return {"per_image": per_image, "layers": len(unique),
            "compressed": sum(l.compressed for l in unique.values()),
            "uncompressed": sum(l.uncompressed for l in unique.values()),
            "images_changed": sum(1 for v in per_image.values() if v["layers"])}


def set_sizes(images: Mapping[str, List[LayerInfo]]) -> dict:
    distinct = {layer.diff_id: layer for layers in images.values() for layer in layers}
    return {
        "per_image": {name: {"layers": len(layers), "uncompressed": sum(l.uncompressed for l in layers),
                             "compressed": sum(l.compressed for l in layers)} for name, layers in images.items()},
        "sum_uncompressed": sum(l.uncompressed for layers in images.values() for l in layers),
        "sum_compressed": sum(l.compressed for layers in images.values() for l in layers),
        "unique_uncompressed": sum(l.uncompressed for l in distinct.values()),
        "unique_compressed": sum(l.compressed for l in distinct.values()),
        "distinct_layers": len(distinct),
    }


# --------------------------------------------------------------------------------------------
# The Debian lock (YAML; read with PyYAML when importable, else with the ./pants venv's PyYAML)


def load_lock(path: Path) -> dict:
    try:
        import yaml  # type: ignore
        with open(path, "rb") as f:
            return yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except ImportError:
        python = PANTS_VENV / "bin" / "python"
        if not python.exists():
            raise SystemExit(f"error: reading {path} needs PyYAML: run ./pants once (its venv has it) or pip install PyYAML")
        out = subprocess.run([str(python), "-c", "import json,sys,yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
                              str(path)], check=True, stdout=subprocess.PIPE)
        return json.loads(out.stdout)


def image_closure(lock: dict, address: str, arch: str = "amd64") -> List[str]:
    return list(lock["images"][address][arch]["closure"])


def deb_filename_for_apt(name: str, info: dict) -> str:
    """The name apt gives a downloaded .deb in /var/cache/apt/archives (epoch colon as %3a)."""
    version = str(info["version"]).replace(":", "%3a")
    return f"{name}_{version}_{info['architecture']}.deb"


def replace_lock_package(lock_text: str, name: str, new: Mapping[str, str]) -> str:
    """Point one package of the lock's text at another version (version, sha256, size, url, suite)."""
    lines = lock_text.split("\n")
    header = f"    {name}:"
    try:
        start = lines.index(header)
    except ValueError:
        raise SystemExit(f"error: {name} is not in the lock")
    end = start + 1
    while end < len(lines) and (lines[end].startswith("      ") or lines[end] == ""):
        end += 1
    changed = set()
    for i in range(start + 1, end):
        match = re.match(r"^      (\w+): (.*)$", lines[i])
        if match and match.group(1) in new:
            value = str(new[match.group(1)])
            lines[i] = f"      {match.group(1)}: {quote_yaml(value) if match.group(1) != 'size' else value}"
            changed.add(match.group(1))
    missing = set(new) - changed
    if missing:
        raise SystemExit(f"error: {name}: fields {sorted(missing)} not found in its lock entry")
    return "\n".join(lines)


def quote_yaml(value: str) -> str:
    return f"'{value}'" if re.search(r"[:#~+ ]|^[\d.]+$|^[-?]", value) else value


# --------------------------------------------------------------------------------------------
# Debian indexes (for another version of a locked package)


def fetch(url: str, dest: Path, timeout: float = 120) -> Path:
    import urllib.request
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
        shutil.copyfileobj(response, out, 1 << 20)
    os.replace(tmp, dest)
    return dest


def suite_packages(mirror: str, suite: str, work: Path, arch: str = "amd64") -> Dict[str, List[dict]]:
    """name -> stanzas of a suite's main/binary-<arch>/Packages, verified: gpgv on InRelease, then sha256."""
    import lzma
    directory = work / "indexes" / suite
    inrelease = fetch(f"{mirror}/dists/{suite}/InRelease", directory / "InRelease")
    verified = subprocess.run(["gpgv", "--keyring", "/usr/share/keyrings/debian-archive-keyring.gpg",
                               "--output", "-", str(inrelease)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if verified.returncode != 0:
        raise SystemExit(f"error: {inrelease}: signature does not verify\n{verified.stderr.decode()}")
    wanted = f"main/binary-{arch}/Packages.xz"
    sha = None
    for line in verified.stdout.decode().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == wanted and len(parts[0]) == 64:
            sha = parts[0]
    if sha is None:
        raise SystemExit(f"error: {wanted} not listed in {suite}'s InRelease")
    packages_xz = fetch(f"{mirror}/dists/{suite}/{wanted}", directory / "Packages.xz")
    if hashlib.sha256(packages_xz.read_bytes()).hexdigest() != sha:
        raise SystemExit(f"error: {packages_xz}: sha256 does not match InRelease")
    result: Dict[str, List[dict]] = {}
    for stanza in lzma.decompress(packages_xz.read_bytes()).decode("utf-8", "replace").split("\n\n"):
        fields = {}
        for line in stanza.split("\n"):
            if line and not line[0].isspace() and ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if "Package" in fields:
            result.setdefault(fields["Package"], []).append(fields)
    return result


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Statistics, machine, records


def stats(values: Sequence[float]) -> dict:
    values = [float(v) for v in values]
    if not values:
        return {"n": 0}
    return {"n": len(values), "median": statistics.median(values), "min": min(values), "max": max(values),
            "values": values}


def fmt(values: Sequence[float], unit: str = "s", digits: int = 1) -> str:
    """`median (min–max, n=N)`, or the value alone for one run."""
    s = stats(values)
    if not s["n"]:
        return "-"
    if s["n"] == 1:
        return f"{s['median']:.{digits}f} {unit}".strip()
    return f"{s['median']:.{digits}f} {unit} ({s['min']:.{digits}f}–{s['max']:.{digits}f}, n={s['n']})"


def mb(value: float) -> str:
    return f"{value / MB:,.1f}"


def machine() -> dict:
    info = {"when": time.strftime("%Y-%m-%d %H:%M %Z"), "kernel": platform.release(), "cores": os.cpu_count(),
            "python": platform.python_version()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
        info["loadavg_at_start"] = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        pass
    return info


def tool_version(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        return out.stdout.decode(errors="replace").strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "unavailable"


def machine_line(info: Mapping) -> str:
    return (f"{info.get('cpu', '?')}, {info.get('cores')} cores, {info.get('memory_gb')} GB, Linux {info.get('kernel')}; "
            f"{info.get('when')}")


def busy_note(runs: Iterable[Run]) -> str:
    loads = [r.other_cores for r in runs]
    if not loads:
        return ""
    s = stats(loads)
    level = "busy" if s["max"] >= 0.5 else ("somewhat busy" if s["max"] >= 0.2 else "quiet")
    return (f"machine {level} while measuring: other processes used {s['median']:.2f} cores "
            f"(median; {s['min']:.2f}–{s['max']:.2f}) of {os.cpu_count()}")


def begin_marker(key: str) -> str:
    return f"<!-- bench:{key}:begin -->"


def end_marker(key: str) -> str:
    return f"<!-- bench:{key}:end -->"


def write_markdown_section(path: Path, key: str, content: str) -> None:
    """Put `content` between this benchmark's markers in `path` (appended with its markers if absent)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    begin, end = begin_marker(key), end_marker(key)
    block = f"{begin}\n{content.rstrip()}\n{end}"
    if begin in text and end in text:
        pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip() + ("\n\n" if text else "") + block + "\n"
    path.write_text(text, encoding="utf-8")
    print(f"wrote the results into {path} ({begin})")


def write_json(path: Path, record: dict) -> None:
    def default(value):
        if isinstance(value, Path):
            return str(value)
        if hasattr(value, "__dataclass_fields__"):
            return asdict(value)
        raise TypeError(repr(value))
    Path(path).write_text(json.dumps(record, indent=1, sort_keys=True, default=default) + "\n")
    print(f"wrote {path}")


def run_record(r: Run) -> dict:
    d = asdict(r)
    d["wall"] = round(d["wall"], 2)
    d["cpu"] = round(d["cpu"], 2)
    d["peak_rss_mb"] = round(d["peak_rss_mb"], 1)
    d["other_cores"] = round(d["other_cores"], 2)
    return d


def add_run_options(parser) -> None:
    """The options every side-by-side benchmark takes: where to work and where to record."""
    parser.add_argument("--work", help="work directory (default: a new temp dir, removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", help="write the record as JSON here")
    parser.add_argument("--markdown", help="rewrite this benchmark's section of a Markdown file (docs/benchmarks.md)")


def work_dir(requested: Optional[str], name: str) -> Path:
    if requested:
        path = Path(requested).resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path
    return Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))


def remove_work(work: Path, args) -> None:
    """Remove a temp work directory at the end, unless it was given (--work) or is to be kept (--keep)."""
    if not args.keep and not args.work:
        shutil.rmtree(work, ignore_errors=True)


def md_table(header: Sequence[str], rows: Iterable[Sequence[object]], align: Optional[str] = None) -> str:
    align = align or ("l" + "r" * (len(header) - 1))
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    for row in rows:
        out.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(out)


def text_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    rows = [[str(c) for c in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h)) for i, h in enumerate(header)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def command_line() -> str:
    return "python3 " + " ".join([os.path.relpath(sys.argv[0], REPO_ROOT)] + sys.argv[1:])

"""A small image repository for end-to-end runs of ./pants, and helpers to drive it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
EFFECTS_FILE = "3rdparty/debian/accepted-script-effects.yaml"

IMAGES = {
    "images/base/BUILD": """\
image_files(name="etc", sources=["os-release", "motd"], destination="/etc")
oci_image(
    files=[":etc"],
    env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"},
    labels={"org.opencontainers.image.vendor": "example"},
)
""",
    "images/base/os-release": "ID=example\nVERSION_ID=1\n",
    "images/base/motd": "built by pants\n",
    "images/app/BUILD": """\
image_files(name="bin", sources=["app.sh"], destination="/usr/local/bin", mode="0755", owner="42400:42400")
image_files(name="conf", sources=["app.conf"], destination="/etc/app", mode="0640", owner="0:42400")
oci_image(
    parent="//images/base",
    files=[":bin", ":conf"],
    entrypoint=["/usr/local/bin/app.sh"],
    user="42400:42400",
    workdir="/var/lib/app",
    exposed_ports=["8080/tcp"],
    tags=["latest", "1.0"],
)
""",
    "images/app/app.sh": "#!/bin/sh\nexec echo app \"$@\"\n",
    "images/app/app.conf": "[app]\nport = 8080\n",
    "images/worker/BUILD": """\
image_files(name="conf", sources=["worker.conf"], destination="/etc/app")
oci_image(parent="//images/app", files=[":conf"], cmd=["--worker"], env={"APP_ROLE": "worker"})
""",
    "images/worker/worker.conf": "[worker]\nthreads = 4\n",
    "images/tool/BUILD": """\
image_files(name="bin", sources=["tool.sh"], destination="/usr/local/bin", mode="0755")
oci_image(parent="//images/base", files=[":bin"], entrypoint=["/usr/local/bin/tool.sh"])
""",
    "images/tool/tool.sh": "#!/bin/sh\necho tool\n",
}

IMAGE_DIRS = {"base": "images.base/base", "app": "images.app/app", "worker": "images.worker/worker",
              "tool": "images.tool/tool"}


def make_repo(root: Path, files: dict[str, str] = IMAGES) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO_ROOT / "pants", root / "pants")
    shutil.copy2(REPO_ROOT / "pants.toml", root / "pants.toml")
    shutil.copytree(REPO_ROOT / "rules", root / "rules", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "3rdparty/debian").mkdir(parents=True)
    shutil.copy2(REPO_ROOT / EFFECTS_FILE, root / EFFECTS_FILE)  # pants.toml reads it
    for path, content in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(content)
    return root


@dataclass(frozen=True)
class PantsRun:
    returncode: int
    output: str

    @property
    def processes(self) -> set[str]:
        """Descriptions of the Processes that actually ran (cache hits log nothing)."""
        return set(re.findall(r"\[INFO\] Completed: (.*)", self.output))


def run_pants(repo: Path, *args: str, store: Path, env: dict[str, str] | None = None,
              umask: int = 0o022, wrapper: tuple[str, ...] = ()) -> PantsRun:
    """Run ./pants without pantsd, with its own cache store so that nothing is shared by accident."""
    command = [*wrapper, "./pants", "--no-pantsd", "--no-dynamic-ui", f"--local-store-dir={store}",
               f"--named-caches-dir={store}-named", *args]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PANTS_")}
    full_env.update(env or {})
    previous = os.umask(umask)
    try:
        result = subprocess.run(command, cwd=repo, env=full_env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, timeout=900)
    finally:
        os.umask(previous)
    return PantsRun(result.returncode, result.stdout)


def faketime(when: str) -> tuple[str, ...]:
    """A command prefix that runs the command's clock at `when` (libfaketime), where installed."""
    return ("faketime", when) if shutil.which("faketime") else ()


def layout_files(dist: Path) -> dict[str, bytes]:
    return {str(p.relative_to(dist)): p.read_bytes() for p in sorted(dist.rglob("*")) if p.is_file()}


def python39_dir() -> str:
    candidates = sorted(Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")).glob("versions/3.9*/bin"))
    candidates += [Path("/usr/local/bin"), Path("/usr/bin")]
    for directory in candidates:
        python = directory / "python3"
        if python.exists() and subprocess.run(
            [python, "-c", "import sys; sys.exit(sys.version_info[:2] != (3, 9))"]
        ).returncode == 0:
            return str(directory)
    raise RuntimeError("no python3 that is Python 3.9 found")


def stats_counters(output: str) -> dict[str, int]:
    """The `Counters:` block that `--stats-log` prints at the end of a run."""
    block = output.split("Counters:", 1)[1] if "Counters:" in output else ""
    return {name: int(value) for name, value in re.findall(r"^\s+(\w+): (\d+)$", block, re.MULTILINE)}

"""Podman, driven the way kolla-ansible's container module drives a container engine.

Decisions:
- Every call is bounded: a call that outlives its timeout comes back as exit 124 with what it
  printed, so no step of a deployment can hang.
- `--runtime runc` and explicit nofile/nproc ulimits on every container: crun and the default
  limits fail on these hosts.
- A container's healthcheck is declared with it (`--health-cmd`, kolla-ansible's intervals), so
  `podman inspect` and `podman healthcheck run` see kolla-ansible's test. Podman schedules the
  checks with systemd timers; without systemd nobody runs them, so the deployment runs
  `podman healthcheck run` itself while it waits, and `status` runs it once per container.
- Failures carry the container's log tail and health state: the first thing an operator asks.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

RUNTIME = ("--runtime", "runc")
LIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
# kolla-ansible's healthcheck defaults (interval, timeout, retries, start period).
HEALTH_TIMING = ("--health-interval", "30s", "--health-timeout", "30s", "--health-retries", "3",
                 "--health-start-period", "5s")
LOG_LINES = 30


class DeployError(Exception):
    """A step that failed: which container, what was done, why, and the container's own words."""

    def __init__(self, container: str, step: str, reason: str, logs: str = ""):
        super().__init__(f"{container}: {step}: {reason}" + (f"\n{logs}" if logs else ""))
        self.container, self.step, self.reason, self.logs = container, step, reason, logs


def tail(output: bytes, lines: int = LOG_LINES) -> str:
    return "\n".join(output.decode(errors="replace").rstrip().splitlines()[-lines:])


@dataclass(frozen=True)
class ContainerState:
    exists: bool
    running: bool = False
    exit_code: int = 0
    health: str = ""
    image: str = ""

    def describe(self) -> str:
        if not self.exists:
            return "no such container"
        state = "running" if self.running else f"exited with {self.exit_code}"
        return f"{state}, health {self.health or 'not checked yet'}"


@dataclass(frozen=True)
class Podman:
    binary: str = "podman"

    def run(self, argv: Sequence[str], timeout: float, stdin: Optional[bytes] = None
            ) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([self.binary, *RUNTIME, *argv], input=stdin, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired as expired:
            return subprocess.CompletedProcess(expired.cmd, 124, (expired.output or b"")
                                               + f"\n(timed out after {timeout:.0f} s)".encode())

    def ok(self, argv: Sequence[str], timeout: float, container: str, step: str,
           stdin: Optional[bytes] = None) -> str:
        """Run a podman command that must succeed; its output, or a DeployError naming the step."""
        proc = self.run(argv, timeout, stdin)
        if proc.returncode:
            raise DeployError(container, step, f"exit {proc.returncode}", tail(proc.stdout))
        return proc.stdout.decode(errors="replace")

    def state(self, name: str) -> ContainerState:
        proc = self.run(["inspect", "--type", "container", "--format", "{{json .State}}|{{.Image}}", name], 30)
        if proc.returncode:
            return ContainerState(False)
        raw, _, image = proc.stdout.decode().strip().rpartition("|")
        state = json.loads(raw)
        health = (state.get("Health") or state.get("Healthcheck") or {}).get("Status", "")
        return ContainerState(True, bool(state.get("Running")), int(state.get("ExitCode") or 0), health, image)

    def logs(self, name: str, lines: int = LOG_LINES) -> str:
        proc = self.run(["logs", "--tail", str(lines), name], 30)
        return tail(proc.stdout, lines)

    def report(self, name: str) -> str:
        """What an operator looks at first: state, health and the log tail of one container."""
        return (f"--- {name}: {self.state(name).describe()}; podman logs --tail {LOG_LINES} {name}\n"
                f"{self.logs(name)}")

    def healthcheck(self, name: str) -> Tuple[bool, str]:
        proc = self.run(["healthcheck", "run", name], 60)
        return proc.returncode == 0, tail(proc.stdout, 3)

    def load(self, layout: str) -> str:
        """The image id of the OCI layout `layout` (its `latest` tag), copied into podman's storage."""
        proc = self.run(["pull", "-q", f"oci:{layout}:latest"], 300)
        if proc.returncode:
            raise DeployError(layout, "podman pull", f"exit {proc.returncode}", tail(proc.stdout))
        return proc.stdout.decode().split()[-1]

    def volume_exists(self, name: str) -> bool:
        return self.run(["volume", "exists", name], 30).returncode == 0

    def peak_memory(self, name: str) -> Optional[int]:
        """The most memory the container's cgroup has used, in bytes (page cache included), as the
        kernel counts it: memory.max_usage_in_bytes (cgroup v1) or memory.peak (v2)."""
        proc = self.run(["inspect", "--type", "container", "--format", "{{.State.CgroupPath}}", name], 30)
        cgroup = proc.stdout.decode().strip()
        for path in (f"/sys/fs/cgroup/memory{cgroup}/memory.max_usage_in_bytes",
                     f"/sys/fs/cgroup{cgroup}/memory.peak"):
            if proc.returncode == 0 and cgroup and os.path.exists(path):
                with open(path, encoding="ascii") as f:
                    return int(f.read().strip())
        return None

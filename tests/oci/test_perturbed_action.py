"""The perturbed action runner: umask, a deeper working directory, outputs back at the sandbox root."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO_ROOT

PROBE = """\
import json, os, sys
umask = os.umask(0); os.umask(umask)
os.makedirs("out", exist_ok=True)
with open("out/result.json", "w") as f:
    json.dump({"umask": umask, "cwd": os.getcwd(), "input": open("input.txt").read(), "argv": sys.argv[1:]}, f)
open("top.txt", "w").write("written by the action")
sys.exit(int(sys.argv[1]))
"""


def run_perturbed(sandbox, exit_code: int) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": f"{REPO_ROOT / 'rules'}{os.pathsep}{sandbox.parent / 'probe'}"}
    return subprocess.run([sys.executable, "-m", "oci.actions.perturbed", "077", "4", "probe_action", str(exit_code)],
                          cwd=sandbox, env=env, capture_output=True, text=True)


def test_runs_the_action_deeper_with_the_umask_and_returns_its_outputs(tmp_path):
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe/probe_action.py").write_text(PROBE)
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    (sandbox / "input.txt").write_text("an input")
    run = run_perturbed(sandbox, 3)
    assert run.returncode == 3, run.stderr  # the action's exit code
    result = json.loads((sandbox / "out/result.json").read_text())
    assert result["umask"] == 0o077 and result["input"] == "an input" and result["argv"] == ["3"]
    assert result["cwd"] == str(sandbox / ".perturbed/d1/d2/d3/d4")
    assert (sandbox / "top.txt").read_text() == "written by the action"
    assert sorted(os.listdir(sandbox)) == ["input.txt", "out", "top.txt"]  # the scratch tree is gone
    assert (sandbox / "top.txt").stat().st_mode & 0o777 == 0o600

"""The user's CI workflow fails when the check fails: its `make check` step's command, run the way
GitHub Actions runs it (the shell the workflow declares), against a real `make` whose check fails."""

import subprocess
from pathlib import Path

import yaml

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "reproduce.yml"
# GitHub's documented expansions of `shell:` (docs: workflow syntax, jobs.<id>.steps[*].shell);
# a step with no shell runs `bash -e {0}`, which has no pipefail.
GITHUB_SHELLS = {"bash": ["bash", "--noprofile", "--norc", "-eo", "pipefail"], None: ["bash", "-e"]}


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _step(name: str) -> dict:
    return next(s for s in _workflow()["jobs"]["check"]["steps"] if s.get("name") == name)


def _run_step(command: str, shell: str | None, check_exit: int, tmp_path: Path) -> int:
    (tmp_path / "Makefile").write_text(f"check:\n\t@echo '3 of 8299 numbers moved'\n\t@exit {check_exit}\n")
    script = tmp_path / "step.sh"
    script.write_text(command + "\n")
    return subprocess.run([*GITHUB_SHELLS[shell], str(script)], cwd=tmp_path, capture_output=True).returncode


def test_the_check_step_fails_when_the_check_fails_and_passes_when_it_passes(tmp_path):
    workflow = _workflow()
    shell = workflow.get("defaults", {}).get("run", {}).get("shell")
    step = _step("make check")
    shell = step.get("shell", shell)
    assert "make check" in step["run"]
    assert _run_step(step["run"], shell, 1, tmp_path) != 0
    assert _run_step(step["run"], shell, 0, tmp_path) == 0
    assert "3 of 8299 numbers moved" in (tmp_path / "check.log").read_text()  # the summary step's table
    # the same command in GitHub's default shell stays green when the check fails: what the test catches
    assert _run_step(step["run"], None, 1, tmp_path) == 0


def test_the_workflow_runs_tests_and_check_on_push_and_pull_request_with_caches():
    workflow = _workflow()
    triggers = workflow.get(True, workflow.get("on"))  # YAML 1.1 reads the key `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    runs = [s.get("run", "") for s in workflow["jobs"]["check"]["steps"]]
    assert any(r.strip() == "make test" for r in runs) and any("make check" in r for r in runs)
    uses = {s.get("uses", "").split("@")[0]: s for s in workflow["jobs"]["check"]["steps"]}
    assert uses["actions/setup-python"]["with"]["cache"] == "pip"
    assert uses["actions/cache"]["with"]["path"] == "mirror"

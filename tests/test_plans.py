"""Confirmatory only as planned: a plan committed (real git) before training began, and the
trained seeds and margin the plan's; every other case exploratory, with the rule that failed."""

import os
import subprocess

import pytest

from mtlbench.evaluate.plans import PlanError, plan_status, read_plan

PLAN = """run: s
estimand: paired difference in test accuracy, multitask minus dedicated, per task
seeds: [0, 1, 2]
margin: 0.005
families: each variant's real tasks (Holm)
"""


def git(repo, *args, when=None):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    if when is not None:
        env["GIT_COMMITTER_DATE"] = env["GIT_AUTHOR_DATE"] = f"@{int(when)} +0000"
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "plans").mkdir()
    return tmp_path


def commit_plan(repo, text, when):
    (repo / "plans" / "s.yaml").write_text(text)
    git(repo, "add", "plans/s.yaml")
    git(repo, "commit", "-q", "-m", "plan", when=when)


def test_a_plan_committed_before_training_with_its_seeds_is_confirmatory(repo):
    commit_plan(repo, PLAN, when=1_000_000)
    status = plan_status("s", [2, 0, 1], 0.005, 1_000_100.0, repo)
    assert status["status"] == "confirmatory" and "before training began" in status["why"]


@pytest.mark.parametrize("seeds, margin, started, why", [
    ([0, 1, 2, 3], 0.005, 1_000_100.0, "trained seeds [0, 1, 2, 3] are not the plan's [0, 1, 2]"),  # a seed added
    ([0, 1, 2], 0.01, 1_000_100.0, "analysis.margin 0.01 is not the plan's 0.005"),
    ([0, 1, 2], 0.005, 999_000.0, "after training began"),  # the plan written after the seeds started
])
def test_anything_else_is_exploratory_and_says_why(repo, seeds, margin, started, why):
    commit_plan(repo, PLAN, when=1_000_000)
    status = plan_status("s", seeds, margin, started, repo)
    assert status["status"] == "exploratory" and why in status["why"]


def test_no_plan_or_an_uncommitted_edit_is_exploratory(repo):
    assert plan_status("s", [0], 0.005, 1.0, repo)["why"] == "no analysis plan (plans/s.yaml)"
    commit_plan(repo, PLAN, when=1_000_000)
    (repo / "plans" / "s.yaml").write_text(PLAN.replace("[0, 1, 2]", "[0, 1, 2, 3]"))  # edited, not committed
    status = plan_status("s", [0, 1, 2, 3], 0.005, 1_000_100.0, repo)
    assert status["status"] == "exploratory" and "is not committed as it stands" in status["why"]


@pytest.mark.parametrize("text, said", [
    (PLAN.replace("margin: 0.005\n", ""), "missing key 'margin'"),
    (PLAN + "alpha: 0.05\n", "unknown key 'alpha'"),
    (PLAN.replace("run: s", "run: other"), "run is 'other', but the file plans 's'"),
    (PLAN.replace("[0, 1, 2]", "[0, 0]"), "seeds: expected a non-empty list of distinct integers"),
    (PLAN.replace("0.005", "5"), "margin: expected a number above 0 and below 1, got 5"),
    ("[a, b]", "expected a mapping with keys"),
])
def test_a_bad_plan_is_one_line_naming_the_key(repo, text, said):
    (repo / "plans" / "s.yaml").write_text(text)
    with pytest.raises(PlanError, match=said.replace("[", r"\[").replace("]", r"\]")):
        read_plan(repo / "plans" / "s.yaml", "s")

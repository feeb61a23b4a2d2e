"""The pre-registered plan: its block, and the check that runs came after it."""

import pathlib
import shutil
import subprocess

import pytest

from tce_jax.analysis import plan

PLAN_TEXT = """# Plan

Prose the report ignores.

```plan
losses: ce tce-alpha0.1
compare: tce-alpha0.1 gce-q0.7
target: each-noisy tce-alpha0.1 - ce low > 0
target: clean tce-alpha0.1 - ce low > -1
```
"""


def test_the_plan_block_is_parsed():
    parsed = plan.parse(PLAN_TEXT)
    assert parsed.losses == ("ce", "tce-alpha0.1")
    assert parsed.comparisons == (("tce-alpha0.1", "gce-q0.7"),)
    first, second = parsed.targets
    assert str(first) == "each-noisy tce-alpha0.1 - ce low > 0"
    assert (second.scope, second.stat, second.operator, second.value) == (
        "clean",
        "low",
        ">",
        -1.0,
    )
    assert first.holds(0.1) and not first.holds(0.0)
    assert plan.Target("clean", "a", "b", "mean", ">=", 0).holds(0.0)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("losses: ce\ntarget: everywhere a - b low > 0", "scope one of"),
        ("losses: ce\ntarget: clean a - b median > 0", "statistic one of"),
        ("losses: ce\ntarget: clean a - b low > x", "must be a number"),
        ("losses: ce\ncompare: a", "allowed: 'losses"),
        ("seeds: 0 1", "allowed: 'losses"),
        ("", "lists no losses"),
    ],
)
def test_a_bad_plan_line_is_named(block, message):
    with pytest.raises(plan.PlanError, match=message):
        plan.parse(f"```plan\n{block}\n```\n")
    with pytest.raises(plan.PlanError, match="exactly one"):
        plan.parse("no block here")


def git(repo, *args):
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """A git repository with a results folder whose plan is committed."""
    repo = tmp_path / "repo"
    (repo / "results" / "bench").mkdir(parents=True)
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    (repo / "code.py").write_text("x = 1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "before the plan")
    return repo


def commit(repo, message):
    git(repo, "add", ".")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


def test_runs_that_descend_from_the_plan_are_pre_registered(repo):
    plan_path = repo / "results" / "bench" / plan.PLAN_FILE
    plan_path.write_text(PLAN_TEXT)
    plan_commit = commit(repo, "plan")
    (repo / "code.py").write_text("x = 2\n")
    later = commit(repo, "later work")
    descent = plan.check_descent(
        plan_path,
        [("a/ce/seed0", "ce", plan_commit), ("a/tce/seed0", "tce-alpha0.1", later)],
    )
    assert descent.checked and not descent.problems
    assert descent.summary() == (
        "pre-registered: all 2 runs descend from the plan commit that registers "
        f"their loss (2 from {plan_commit[:10]})"
    )


def test_runs_made_before_the_plan_or_from_a_dirty_checkout_are_named(repo):
    before = git(repo, "rev-parse", "HEAD")
    plan_path = repo / "results" / "bench" / plan.PLAN_FILE
    plan_path.write_text(PLAN_TEXT)
    plan_commit = commit(repo, "plan")
    descent = plan.check_descent(
        plan_path,
        [
            ("early", "ce", before),
            ("dirty", "ce", f"{plan_commit}-dirty"),
            ("unknown", "ce", None),
            ("unlisted", "gce-q0.7", plan_commit),
            ("fine", "ce", plan_commit),
        ],
    )
    assert descent.checked
    assert [line.split(":")[0] for line in descent.problems] == [
        "early",
        "dirty",
        "unknown",
        "unlisted",
    ]
    assert "does not descend from the plan commit" in descent.problems[0]
    assert descent.summary().startswith("NOT pre-registered: 4 run(s)")


def test_an_amendment_registers_new_losses_and_says_which_runs_predate_it(repo):
    plan_path = repo / "results" / "bench" / plan.PLAN_FILE
    plan_path.write_text(PLAN_TEXT)
    first = commit(repo, "plan")
    plan_path.write_text(PLAN_TEXT.replace("losses: ce", "losses: ce tce-val_peak"))
    amended = commit(repo, "amended plan")
    runs = [
        ("ce-run", "ce", first),
        ("rule-early", "tce-val_peak", first),
        ("rule-run", "tce-val_peak", amended),
    ]
    descent = plan.check_descent(plan_path, runs)
    assert descent.plan_commits == (first, amended)
    assert descent.predating == {amended: 2}
    assert len(descent.problems) == 1
    assert descent.problems[0].startswith("rule-early: commit")
    assert amended[:10] in descent.problems[0]
    descent = plan.check_descent(plan_path, [runs[0], runs[2]])
    assert descent.summary() == (
        "pre-registered: all 2 runs descend from the plan commit that registers "
        f"their loss (1 from {first[:10]}, 1 from {amended[:10]}); 1 run(s) "
        f"predate the amendment {amended[:10]}"
    )


def test_outside_a_git_checkout_it_says_it_cannot_check(repo, tmp_path):
    plan_path = repo / "results" / "bench" / plan.PLAN_FILE
    plan_path.write_text(PLAN_TEXT)
    plan_commit = commit(repo, "plan")
    exported = tmp_path / "exported"
    shutil.copytree(repo / "results" / "bench", exported)
    descent = plan.check_descent(exported / plan.PLAN_FILE, [("r", "ce", plan_commit)])
    assert not descent.checked
    summary = descent.summary()
    assert summary.startswith("pre-registration not checked: ")
    assert "not in a git checkout" in summary
    assert "\n" not in summary
    uncommitted = repo / "results" / "other"
    uncommitted.mkdir()
    (uncommitted / plan.PLAN_FILE).write_text(PLAN_TEXT)
    descent = plan.check_descent(pathlib.Path(uncommitted / plan.PLAN_FILE), [])
    assert descent.summary() == (
        f"pre-registration not checked: {uncommitted / plan.PLAN_FILE} was never "
        "committed"
    )

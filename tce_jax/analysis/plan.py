r"""A results folder's pre-registered plan, and the check that its runs came after it.

A plan is the file PLAN.md in a results folder, committed before the first
run. Besides prose it holds one fenced block with the info string ``plan``::

    losses: ce tce-alpha0.1 gce-q0.7
    compare: tce-alpha0.1 gce-q0.7
    target: each-noisy tce-alpha0.1 - ce low > 0
    target: clean tce-alpha0.1 - ce low > -1

- ``losses``: the run labels (the loss level of the run dirs) it registers;
- ``compare: A B``: a pair of losses whose seed-paired difference A - B the
  report tabulates besides each loss against CE (``tce-chosen`` names the TCE
  run whose alpha noisy validation chose);
- ``target: SCOPE A - B STAT OP VALUE``: a registered claim about the
  difference A - B at the final epoch, in points: SCOPE is ``clean`` (the
  noise-free setting), ``each-noisy`` (every noisy setting on its own) or
  ``mean-noisy`` (per seed the mean over the noisy settings); STAT is
  ``low``, ``mean`` or ``high`` (the 95% interval's bounds or its mean); OP
  is ``>`` or ``>=``.

An amendment is a later commit that changes the plan. ``check_descent``
reads the plan's history from git and, for each run, the first plan commit
that lists its loss: the run's recorded ``git_commit`` must descend from it.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import subprocess
from collections.abc import Iterable

PLAN_FILE = "PLAN.md"
CHOSEN = "tce-chosen"
SCOPES = ("clean", "each-noisy", "mean-noisy")
STATS = ("low", "mean", "high")
OPERATORS = (">", ">=")

_BLOCK = re.compile(r"^```plan[ \t]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_TARGET = re.compile(
    r"^(?P<scope>\S+)\s+(?P<a>\S+)\s+-\s+(?P<b>\S+)\s+(?P<stat>\S+)\s+"
    r"(?P<op>>=|>)\s+(?P<value>\S+)$"
)


class PlanError(ValueError):
    """A plan that cannot be read; the message names the line."""


@dataclasses.dataclass(frozen=True)
class Target:
    """One registered claim: ``stat(A - B) op value`` over ``scope``."""

    scope: str
    a: str
    b: str
    stat: str
    operator: str
    value: float

    def __str__(self) -> str:
        difference = f"{self.a} - {self.b}"
        return f"{self.scope} {difference} {self.stat} {self.operator} {self.value:g}"

    def holds(self, statistic: float) -> bool:
        return (
            statistic > self.value if self.operator == ">" else statistic >= self.value
        )


@dataclasses.dataclass(frozen=True)
class Plan:
    """The machine-readable block of a plan."""

    losses: tuple[str, ...]
    comparisons: tuple[tuple[str, str], ...] = ()
    targets: tuple[Target, ...] = ()


def parse(text: str) -> Plan:
    """The ``plan`` block of a PLAN.md text.

    Raises:
      PlanError: no block, or a line it cannot read.
    """
    blocks = _BLOCK.findall(text)
    if len(blocks) != 1:
        raise PlanError(f"{len(blocks)} ```plan blocks; allowed: exactly one")
    losses, comparisons, targets = [], [], []
    for line in blocks[0].splitlines():
        line = line.strip()
        if not line:
            continue
        key, _, value = line.partition(":")
        words = value.split()
        if key == "losses" and words:
            losses += words
        elif key == "compare" and len(words) == 2:
            comparisons.append((words[0], words[1]))
        elif key == "target" and (match := _TARGET.match(value.strip())):
            targets.append(_target(match, line))
        else:
            raise PlanError(
                f"plan line {line!r}; allowed: 'losses: LABEL ...', 'compare: A B', "
                "'target: SCOPE A - B STAT OP VALUE'"
            )
    if not losses:
        raise PlanError("the plan block lists no losses")
    return Plan(tuple(losses), tuple(comparisons), tuple(targets))


def _target(match: re.Match, line: str) -> Target:
    fields = match.groupdict()
    if fields["scope"] not in SCOPES or fields["stat"] not in STATS:
        raise PlanError(
            f"plan line {line!r}: scope one of {', '.join(SCOPES)}, statistic one "
            f"of {', '.join(STATS)}"
        )
    try:
        value = float(fields["value"])
    except ValueError:
        raise PlanError(f"plan line {line!r}: the value must be a number") from None
    return Target(
        fields["scope"], fields["a"], fields["b"], fields["stat"], fields["op"], value
    )


def _git(directory: pathlib.Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(directory), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout


def history(plan_path: pathlib.Path) -> list[tuple[str, Plan]]:
    """(commit, plan) for every commit that changed the plan, oldest first.

    Raises:
      subprocess.CalledProcessError, OSError: not in a git checkout.
      PlanError: a committed version cannot be read.
    """
    directory = plan_path.parent
    commits = _git(
        directory, "log", "--format=%H", "--follow", "--", plan_path.name
    ).split()
    root = pathlib.Path(_git(directory, "rev-parse", "--show-toplevel").strip())
    relative = plan_path.resolve().relative_to(root.resolve())
    versions = []
    for commit in reversed(commits):
        text = _git(directory, "show", f"{commit}:{relative.as_posix()}")
        versions.append((commit, parse(text)))
    return versions


@dataclasses.dataclass(frozen=True)
class Descent:
    """How a folder's runs stand against its plan's history.

    Attributes:
      checked: False when git could not be asked (``reason`` says why).
      reason: why nothing was checked.
      plan_commits: the plan's commits, oldest first.
      registered_by: {plan commit: runs that descend from it, being the first
        plan commit listing their loss}.
      predating: {amendment commit: runs made before it} for every plan
        commit after the first.
      problems: one line per run that is not pre-registered.
    """

    checked: bool
    reason: str = ""
    plan_commits: tuple[str, ...] = ()
    registered_by: dict[str, int] = dataclasses.field(default_factory=dict)
    predating: dict[str, int] = dataclasses.field(default_factory=dict)
    problems: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line: pre-registered, the runs that are not, or why unchecked."""
        if not self.checked:
            return f"pre-registration not checked: {self.reason}"
        total = sum(self.registered_by.values())
        if self.problems:
            return (
                f"NOT pre-registered: {len(self.problems)} run(s) do not descend "
                f"from the plan commit that registers their loss ({total} do)"
            )
        parts = ", ".join(
            f"{count} from {commit[:10]}"
            for commit, count in self.registered_by.items()
            if count
        )
        amendments = "".join(
            f"; {count} run(s) predate the amendment {commit[:10]}"
            for commit, count in self.predating.items()
        )
        return (
            f"pre-registered: all {total} runs descend from the plan commit that "
            f"registers their loss ({parts}){amendments}"
        )


def check_descent(
    plan_path: pathlib.Path, runs: Iterable[tuple[str, str, str | None]]
) -> Descent:
    """Checks each (run, loss label, recorded git commit) against the plan.

    A run is pre-registered when its commit is clean (no ``-dirty`` suffix)
    and descends from (or is) the first plan commit that lists its loss.
    Outside a git checkout (an exported folder), or without git, nothing is
    checked and ``reason`` says so.
    """
    try:
        versions = history(plan_path)
    except (OSError, subprocess.SubprocessError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        return Descent(
            checked=False,
            reason=f"{plan_path.parent} is not in a git checkout with its history "
            f"({detail.strip().splitlines()[0] if detail.strip() else 'git failed'})",
        )
    if not versions:
        return Descent(checked=False, reason=f"{plan_path} was never committed")
    registered_by = {commit: 0 for commit, _ in versions}
    predating = {commit: 0 for commit, _ in versions[1:]}
    problems = []
    for run, loss, commit in runs:
        if commit and not commit.endswith("-dirty"):
            for amendment in predating:
                if not _descends(plan_path.parent, amendment, commit):
                    predating[amendment] += 1
        plan_commit = next((c for c, plan in versions if loss in plan.losses), None)
        if plan_commit is None:
            problems.append(f"{run}: its loss {loss!r} is in no version of the plan")
        elif not commit:
            problems.append(f"{run}: records no git commit")
        elif commit.endswith("-dirty"):
            problems.append(f"{run}: made from a checkout with uncommitted changes")
        elif not _descends(plan_path.parent, plan_commit, commit):
            problems.append(
                f"{run}: commit {commit[:10]} does not descend from the plan commit "
                f"{plan_commit[:10]} that registers {loss!r}"
            )
        else:
            registered_by[plan_commit] += 1
    return Descent(
        checked=True,
        plan_commits=tuple(commit for commit, _ in versions),
        registered_by=registered_by,
        predating=predating,
        problems=tuple(problems),
    )


def _descends(directory: pathlib.Path, ancestor: str, commit: str) -> bool:
    result = subprocess.run(
        ["git", "-C", str(directory), "merge-base", "--is-ancestor", ancestor, commit],
        capture_output=True,
        check=False,
        timeout=30,
    )
    return result.returncode == 0

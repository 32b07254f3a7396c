"""The plan story, for `forgehand sandbox --scenario plan` and the end-to-end test: an epic is
labelled for a plan; the agent splits it into three rows, one depending on another and two
predicted to collide; carol approves; the three sub-issues run as a fleet to merge, and the
plan comment follows them to the end."""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from simulator.fleet import ORDER, Story

EPIC = 2  # the sandbox's repository already has issue #1
EPIC_TITLE = "Make calc a real calculator"
EPIC_BODY = (
    "add() subtracts, it should take three numbers, and nobody can tell from the README what "
    "calc does. Split this up so several agents can work on it at once."
)
PLAN_MARKER = "<!-- forgehand:plan -->"
ALL_MERGED = "Every row's pull request is merged"


class PlanStory(Story):
    def plan_comment(self) -> str | None:
        for comment in self.sim.sim.comments.values():
            if comment["issue"] == EPIC and comment["body"].startswith(PLAN_MARKER):
                return str(comment["body"])
        return None

    def play(self, repo_id: int) -> dict[str, Any]:
        sim = self.sim
        sim.open_issue(EPIC, EPIC_TITLE, EPIC_BODY)
        self.say(f"carol opens epic #{EPIC} ({EPIC_TITLE}) and labels it `agent:plan`")
        sim.label_issue(EPIC, "agent:plan")
        plan = self.wait(self.plan_comment, f"the plan comment on #{EPIC}")
        rows = [line for line in plan.splitlines() if line.startswith("| `")]
        self.say(f"the agent's plan, checked by forgehand ({len(rows)} rows):")
        for line in rows:
            self.say("    " + line)
        self.say(f"carol comments `/agent approve` on #{EPIC}")
        sim.comment(EPIC, "/agent approve")
        children = self.wait(lambda: len(sim.sim.sub_issues.get(EPIC, [])) == 3 and
                             sim.sim.sub_issues[EPIC], f"three sub-issues of #{EPIC}")  # fmt: skip
        by_title = {sim.sim.issues[n]["title"]: n for n in children}
        fix, three, docs = (by_title[t] for t in ("add() subtracts",
                            "add() should take three numbers", "Document the project"))  # fmt: skip
        blockers = sim.sim.blocked_by.get(docs, [])
        self.say(f"filed #{fix}, #{three} and #{docs} as sub-issues of #{EPIC}; #{docs} is "
                 f"blocked by #{', #'.join(map(str, blockers))}")  # fmt: skip
        pulls = {n: self.wait(partial(self.pull_for, n), f"a pull request for #{n}")
                 for n in (fix, three)}  # fmt: skip
        self.say(f"pull requests opened: #{pulls[fix]} for #{fix}, #{pulls[three]} for #{three}")
        self.wait(lambda: self.state_of(f"issue-{repo_id}-{docs}") == "waiting",
                  f"#{docs} waiting for #{fix}")  # fmt: skip
        self.say(f"#{docs} waits: it is blocked by #{fix}, which is still open")
        first = self.wait(lambda: self.overlap_comment(pulls[fix]), "the overlap comment")
        match = ORDER.search(first)
        assert match is not None, first
        head, later = (int(n) for n in re.findall(r"#(\d+)", match[1]))
        self.say(f"#{pulls[fix]} and #{pulls[three]} both change calc.py, as the plan predicted; "
                 f"suggested merge order: #{head} then #{later}")  # fmt: skip
        main = sim.merge_pull(head)
        self.say(f"carol merges #{head}; #{later} now conflicts and forgehand resolves it")
        task = f"conflict-{repo_id}-{later}-{main}"
        self.wait(
            lambda: self.state_of(task) in ("done", "failed"), f"the conflict task of #{later}"
        )
        self.wait(lambda: self.mergeable(later), f"#{later} resolved")
        sim.merge_pull(later)
        self.say(f"carol merges #{later}")
        dependent = self.wait(lambda: self.pull_for(docs), f"a pull request for #{docs}")
        self.say(f"#{docs} started by itself once #{fix} closed, and opened #{dependent}")
        sim.merge_pull(dependent)
        self.say(f"carol merges #{dependent}")
        done = self.wait(lambda: ALL_MERGED in (self.plan_comment() or "") and self.plan_comment(),
                         "the plan comment to say every row merged")  # fmt: skip
        last = next(line for line in done.splitlines() if ALL_MERGED in line)
        self.say(f"the plan comment on #{EPIC}: {last}")
        return {"rows": {"fix-add": fix, "three": three, "docs": docs}, "pulls": pulls,
                "dependent": dependent, "plan": done}  # fmt: skip

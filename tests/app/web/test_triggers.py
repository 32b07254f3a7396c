from __future__ import annotations

from typing import Any

import pytest

from app.tasks import Cancel, InstallationChange, Kind, ResetAttempts, Task, Wake
from app.web.triggers import Decision, Facts, PayloadError, command_verb, decide, starts_nothing
from tests import payloads as p

FACTS = Facts(app_id=p.APP_ID, app_slug="forgehand")


def only_task(decision: Decision) -> Task:
    assert decision.ignored is None, decision.ignored
    (task,) = decision.tasks
    return task


def test_issue_labelled_with_trigger_makes_one_issue_task() -> None:
    task = only_task(decide("issues", p.issues(), FACTS))
    assert task.kind is Kind.ISSUE
    assert task.id == f"issue-{p.REPO_ID}-7"
    assert (task.installation_id, task.repo, task.number, task.sender) == (
        p.INSTALLATION,
        p.REPO,
        7,
        "alice",
    )


def assert_starts_nothing(event: str, payload: dict[str, Any], reason: str) -> None:
    """`event` starts nothing, and the decision says why in words holding `reason`."""
    decision = decide(event, payload, FACTS)
    assert decision.actions == ()
    assert decision.ignored is not None and reason in decision.ignored


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (p.issues(label="bug"), "label bug is not agent"),
        (p.issues(sender="forgehand[bot]", sender_type="Bot"), "sent by the App itself"),
        (p.issues(sender="renovate[bot]", sender_type="Bot"), "not in allowed_bots"),
        (p.issues(action="edited"), "issues.edited is not a trigger"),
    ],
)
def test_issue_events_that_start_nothing(payload: dict[str, Any], reason: str) -> None:
    assert_starts_nothing("issues", payload, reason)


def test_closed_issue_or_labelled_pull_request_starts_nothing() -> None:
    closed = p.issues()
    closed["issue"]["state"] = "closed"
    assert decide("issues", closed, FACTS).ignored == "issue is not open"
    on_pr = p.issues()
    on_pr["issue"]["pull_request"] = {"url": "x"}
    assert "not pull requests" in (decide("issues", on_pr, FACTS).ignored or "")


def test_allowed_bot_may_label() -> None:
    facts = Facts(allowed_bots=frozenset({"renovate"}))
    assert only_task(decide("issues", p.issues(sender="renovate[bot]", sender_type="Bot"), facts))


def test_app_cannot_trigger_itself_even_when_listed_as_allowed() -> None:
    facts = Facts(app_slug="forgehand", allowed_bots=frozenset({"forgehand"}))
    payload = p.issues(sender="forgehand[bot]", sender_type="Bot")
    assert decide("issues", payload, facts).ignored == "sent by the App itself"


@pytest.mark.parametrize(
    ("action", "cancel"),
    [
        ("unlabeled", Cancel(p.REPO_ID, 7, "trigger label removed")),
        # A close is what merging the task's pull request does: that task finishes.
        ("closed", Cancel(p.REPO_ID, 7, "issue closed", spare_opened=True)),
    ],
)
def test_unlabel_or_close_cancels_the_issue(action: str, cancel: Cancel) -> None:
    decision = decide("issues", p.issues(action=action), FACTS)
    assert decision.actions[0] == cancel


def test_closing_an_issue_wakes_the_tasks_waiting_in_its_repository() -> None:
    decision = decide("issues", p.issues(action="closed"), FACTS)
    assert decision.actions[1:] == (Wake(p.REPO_ID, "#7 closed"),)
    assert len(decide("issues", p.issues(action="unlabeled"), FACTS).actions) == 1


@pytest.mark.parametrize("action", ["deleted", "transferred"])
def test_a_deleted_or_transferred_issue_cancels_like_a_closed_one(action: str) -> None:
    decision = decide("issues", p.issues(action=action), FACTS)
    assert decision.actions == (
        Cancel(p.REPO_ID, 7, f"issue {action}"),
        Wake(p.REPO_ID, f"#7 {action}"),
    )


@pytest.mark.parametrize("sender", [("forgehand[bot]", "Bot"), ("carol", "User")])
def test_any_push_to_an_agent_pull_request_rechecks_its_files(sender: tuple[str, str]) -> None:
    sync = p.pr_closed(sender=sender[0], sender_type=sender[1]) | {"action": "synchronize"}
    task = only_task(decide("pull_request", sync, FACTS))
    assert (task.kind, task.number, task.sha) == (Kind.SYNC, 12, "a" * 40)
    assert task.id == f"sync-{p.REPO_ID}-12-{'a' * 40}"
    fork = p.pr_closed() | {"action": "synchronize"}
    fork["pull_request"] = p.pull_request(head_repo=999)
    assert decide("pull_request", fork, FACTS).ignored == "pull request from a fork"


def test_unlabelling_another_label_cancels_nothing() -> None:
    assert decide("issues", p.issues(action="unlabeled", label="bug"), FACTS).actions == ()


def test_missing_installation_is_ignored_not_an_error() -> None:
    payload = p.issues()
    del payload["installation"]
    assert decide("issues", payload, FACTS).ignored == "not delivered to an App installation"


@pytest.mark.parametrize("path", [("issue", "number"), ("repository", "id"), ("sender", "login")])
def test_payload_missing_a_needed_field_is_a_payload_error(path: tuple[str, str]) -> None:
    payload = p.issues()
    del payload[path[0]][path[1]]
    with pytest.raises(PayloadError, match=".".join(path)):
        decide("issues", payload, FACTS)


def test_field_of_the_wrong_type_is_a_payload_error() -> None:
    payload = p.issues()
    payload["issue"]["number"] = True
    with pytest.raises(PayloadError, match=r"issue\.number must be int"):
        decide("issues", payload, FACTS)


# --- comments -----------------------------------------------------------------------------


def test_command_on_labelled_issue_makes_command_task() -> None:
    task = only_task(decide("issue_comment", p.comment(), FACTS))
    assert task.kind is Kind.COMMAND
    assert task.id == f"command-{p.REPO_ID}-7-9001"
    assert task.comment_id == 9001


def test_command_on_app_pull_request_needs_the_fact() -> None:
    payload = p.comment(on_pr=True, labels=())
    assert (
        decide("issue_comment", payload, FACTS).ignored == "pull request was not opened by the App"
    )
    facts = Facts(app_pull_request=True)
    assert only_task(decide("issue_comment", payload, facts)).number == 12


def test_stop_command_cancels_then_acknowledges() -> None:
    decision = decide("issue_comment", p.comment(body="/agent stop"), FACTS)
    cancel, task = decision.actions
    assert cancel == Cancel(p.REPO_ID, 7, "/agent stop by alice")
    assert isinstance(task, Task) and task.kind is Kind.COMMAND


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (p.comment(body="thanks!"), "not a /agent command"),
        (p.comment(body="/agentic stuff"), "not a /agent command"),
        (p.comment(association="CONTRIBUTOR"), "author_association CONTRIBUTOR"),
        (p.comment(association="NONE"), "author_association NONE"),
        (p.comment(labels=("bug",)), "issue is not labelled agent"),
        (p.comment(sender="forgehand[bot]", sender_type="Bot"), "sent by the App itself"),
        (p.comment(sender="dependabot[bot]", sender_type="Bot"), "not in allowed_bots"),
    ],
)
def test_comments_that_start_nothing(payload: dict[str, Any], reason: str) -> None:
    assert_starts_nothing("issue_comment", payload, reason)


def test_edited_comment_is_not_a_trigger() -> None:
    payload = p.comment() | {"action": "edited"}
    assert (
        decide("issue_comment", payload, FACTS).ignored == "issue_comment.edited is not a trigger"
    )


@pytest.mark.parametrize(
    ("body", "verb"),
    [
        ("/agent stop", "stop"),
        ("  /agent Retry please\nmore", "retry"),
        ("/agent", ""),
        ("/agent fix the tests", "fix"),
        ("please /agent stop", None),
        ("/agents", None),
    ],
)
def test_command_verb(body: str, verb: str | None) -> None:
    assert command_verb(body, "/agent") == verb


# --- pull requests and reviews -----------------------------------------------------------


def test_closing_app_pull_request_cancels_and_cleans_up() -> None:
    cancel, task, wake = decide("pull_request", p.pr_closed(), FACTS).actions
    assert cancel == Cancel(p.REPO_ID, 12, "pull request closed")
    assert wake == Wake(p.REPO_ID, "#12 closed")  # a slot under the review cap came free
    assert (
        isinstance(task, Task) and task.kind is Kind.CLOSED and task.branch == "agent/issue-7-login"
    )


def test_closing_other_pull_request_is_ignored() -> None:
    decision = decide("pull_request", p.pr_closed(ref="feature/x"), FACTS)
    assert decision.ignored == "branch feature/x is not under agent/"


def test_review_requesting_changes_makes_one_review_task() -> None:
    task = only_task(decide("pull_request_review", p.review(), FACTS))
    assert task.id == f"review-{p.REPO_ID}-12-555"
    assert (task.review_id, task.sha, task.branch) == (555, "b" * 40, "agent/issue-7-login")


def test_commented_review_counts_even_without_body() -> None:
    payload = p.review(state="commented")
    payload["review"]["body"] = None
    assert only_task(decide("pull_request_review", payload, FACTS)).kind is Kind.REVIEW


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (p.review(state="approved"), "asks for no change"),
        (p.review(association="NONE"), "author_association NONE"),
        (p.review(ref="feature/x"), "not under agent/"),
        (p.review(sender="coderabbit[bot]", sender_type="Bot"), "not in allowed_bots"),
    ],
)
def test_reviews_that_start_nothing(payload: dict[str, Any], reason: str) -> None:
    assert_starts_nothing("pull_request_review", payload, reason)


def test_review_comment_events_are_handled_through_their_review() -> None:
    assert decide("pull_request_review_comment", p.review(), FACTS).ignored is not None


# --- CI -----------------------------------------------------------------------------------


def test_failed_suite_run_and_status_on_one_sha_share_one_task_id() -> None:
    ids = {
        only_task(decide("check_suite", p.check_suite(), FACTS)).id,
        only_task(decide("check_run", p.check_run(run_id=1), FACTS)).id,
        only_task(decide("check_run", p.check_run(run_id=2), FACTS)).id,
        only_task(decide("status", p.status(), FACTS)).id,
    }
    assert ids == {f"ci-{p.REPO_ID}-{'c' * 40}"}


def test_ci_task_carries_pull_request_and_branch() -> None:
    task = only_task(decide("check_suite", p.check_suite(), FACTS))
    assert (task.number, task.branch, task.sha) == (12, "agent/issue-7-login", "c" * 40)
    assert only_task(decide("status", p.status(), FACTS)).number == 0  # found by branch later


@pytest.mark.parametrize("conclusion", ["failure", "timed_out", "startup_failure"])
def test_failing_conclusions(conclusion: str) -> None:
    assert only_task(decide("check_run", p.check_run(conclusion), FACTS))


@pytest.mark.parametrize(
    ("event", "payload", "reason"),
    [
        ("check_suite", p.check_suite("success", ref="main"), "concluded success"),
        ("check_run", p.check_run("neutral"), "concluded neutral"),
        ("check_run", p.check_run(ref="main"), "branch main is not under agent/"),
        ("check_run", p.check_run(app=p.APP_ID), "created by the App itself"),
        ("check_suite", p.check_suite(app=p.APP_ID), "of the App itself"),
        ("status", p.status("pending"), "commit status is pending"),
        ("status", p.status(ref="main"), "not under agent/"),
    ],
)
def test_ci_events_that_start_nothing(event: str, payload: dict[str, Any], reason: str) -> None:
    assert_starts_nothing(event, payload, reason)


def test_the_apps_own_green_suite_resets_nothing() -> None:
    decision = decide("check_suite", p.check_suite("success", app=p.APP_ID), FACTS)
    assert decision.actions == () and decision.ignored == "check suite of the App itself"


def test_check_run_created_is_not_a_trigger() -> None:
    payload = p.check_run() | {"action": "created"}
    assert decide("check_run", payload, FACTS).ignored == "check_run.created is not a trigger"


def rerequested(app: int = p.APP_ID, sender: str = "alice", kind: str = "User") -> dict[str, Any]:
    payload = p.check_run(app=app, run_id=55) | {"action": "rerequested"}
    return payload | {"sender": {"login": sender, "type": kind}}


def test_rerun_on_the_apps_check_run_is_a_rerun_task() -> None:
    task = only_task(decide("check_run", rerequested(), FACTS))
    assert (task.kind, task.number, task.sender, task.check_run_id) == (Kind.RERUN, 12, "alice", 55)
    assert task.sha == "c" * 40
    assert task.id == f"rerun-{p.REPO_ID}-55"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (rerequested(app=15368), "a check run of another App is re-run by that App"),
        (rerequested(sender="forgehand[bot]", kind="Bot"), "sent by the App itself"),
        (rerequested(sender="renovate[bot]", kind="Bot"), "not in allowed_bots"),
    ],
)
def test_reruns_that_start_nothing(payload: dict[str, Any], reason: str) -> None:
    assert_starts_nothing("check_run", payload, reason)


# --- installations and the rest -----------------------------------------------------------


def test_installation_events_change_known_repositories() -> None:
    (created,) = decide("installation", p.installation("created"), FACTS).actions
    assert created == InstallationChange(p.INSTALLATION, added=((p.REPO_ID, p.REPO),), removed=())
    (deleted,) = decide("installation", p.installation("deleted"), FACTS).actions
    assert isinstance(deleted, InstallationChange) and deleted.uninstalled
    (added,) = decide("installation_repositories", p.installation_repositories(), FACTS).actions
    assert added == InstallationChange(p.INSTALLATION, added=((77, "octo-org/other"),), removed=())
    (removed,) = decide(
        "installation_repositories", p.installation_repositories(added=False), FACTS
    ).actions
    assert removed == InstallationChange(p.INSTALLATION, added=(), removed=(77,))


def test_unknown_event_is_ignored_with_reason() -> None:
    assert decide("star", {"action": "created"}, FACTS).ignored == "star events are not handled"


def test_fork_pull_requests_get_a_notice_task_not_work() -> None:
    task = only_task(decide("pull_request_review", p.review(head_repo=999), FACTS))
    assert (task.kind, task.id) == (Kind.FORK, f"fork-{p.REPO_ID}-12")
    opened = p.pr_closed() | {"action": "opened"}
    opened["pull_request"]["head"]["repo"]["id"] = 999
    assert only_task(decide("pull_request", opened, FACTS)).kind is Kind.FORK
    # A fork's pull request on any other branch is simply not the App's business.
    other = p.pr_closed(ref="feature") | {"action": "opened"}
    other["pull_request"]["head"]["repo"]["id"] = 999
    assert decide("pull_request", other, FACTS).ignored == "branch feature is not under agent/"


def test_green_suite_resets_attempts_and_tells_the_check_run_of_whoever_pushed_it() -> None:
    reset, told = decide("check_suite", p.check_suite("success"), FACTS).actions
    assert reset == ResetAttempts(p.REPO_ID, 12, "CI passed", sha="c" * 40)
    assert isinstance(told, Task)
    assert (told.kind, told.number, told.sha) == (Kind.VERDICT, 12, "c" * 40)
    assert told.id == f"verdict-{p.REPO_ID}-{'c' * 40}"


def test_removing_the_escalation_label_resets_attempts() -> None:
    payload = p.pr_closed() | {"action": "unlabeled", "label": {"name": "agent:needs-human"}}
    (reset,) = decide("pull_request", payload, FACTS).actions
    assert reset == ResetAttempts(p.REPO_ID, 12, "agent:needs-human removed")
    payload["label"]["name"] = "bug"
    assert decide("pull_request", payload, FACTS).ignored == "label bug is not agent:needs-human"


def test_the_app_removing_the_escalation_label_itself_is_only_an_echo() -> None:
    own = p.pr_closed(sender="forgehand[bot]", sender_type="Bot") | {
        "action": "unlabeled", "label": {"name": "agent:needs-human"},
    }  # fmt: skip
    assert decide("pull_request", own, FACTS).ignored == "sent by the App itself"
    assert starts_nothing("pull_request", own, LOOSE) is None  # who is the App: Redis knows


# --- what the payload alone decides -------------------------------------------------------

LOOSE = Facts(app_id=p.APP_ID)


@pytest.mark.parametrize(
    ("event", "payload", "reason"),
    [
        ("issues", p.issues(label="bug"), "label bug is not agent"),
        ("issues", p.issues(action="opened"), "issues.opened is not a trigger"),
        ("issue_comment", p.comment(body="looks good"), "comment is not a /agent command"),
        ("check_run", p.check_run(conclusion="success"), "check run concluded success"),
        ("push", {"ref": "refs/tags/v1"}, "push to refs/tags/v1, not a branch"),
    ],
)
def test_deliveries_that_start_nothing_are_known_from_the_payload(
    event: str, payload: dict[str, Any], reason: str
) -> None:
    assert starts_nothing(event, payload, LOOSE) == reason
    # Whatever Redis knows, the full decision agrees.
    assert decide(event, payload, FACTS).ignored == reason


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("issues", p.issues()),  # work
        ("issues", p.issues(action="unlabeled")),  # cancels
        # Turned away only by facts in Redis: the slow path must see them.
        ("issues", p.issues(sender="forgehand[bot]", sender_type="Bot")),
        ("issues", p.issues(sender="renovate[bot]", sender_type="Bot")),
        ("issue_comment", p.comment(on_pr=True, labels=())),
        ("installation", p.installation("created")),
    ],
)
def test_deliveries_that_may_need_redis_are_not_decided_early(
    event: str, payload: dict[str, Any]
) -> None:
    assert starts_nothing(event, payload, LOOSE) is None


def test_a_malformed_payload_is_left_to_the_full_decision() -> None:
    payload = p.issues()
    del payload["issue"]["number"]
    assert starts_nothing("issues", payload, LOOSE) is None
    with pytest.raises(PayloadError):
        decide("issues", payload, FACTS)


# --- planning -------------------------------------------------------------------------------


def test_the_plan_label_makes_a_planning_task() -> None:
    task = only_task(decide("issues", p.issues(label="agent:plan"), FACTS))
    assert (task.kind, task.id, task.sender) == (Kind.PLAN, f"plan-{p.REPO_ID}-7-0", "alice")
    assert task.kind.on_issue and not Kind.CI.on_issue
    named = Facts(plan_label="epic")
    assert only_task(decide("issues", p.issues(label="epic"), named)).kind is Kind.PLAN
    assert decide("issues", p.issues(label="agent:plan"), named).ignored == (
        "label agent:plan is not agent"
    )


def test_plan_and_approve_comments_on_any_issue() -> None:
    plan = only_task(
        decide("issue_comment", p.comment("/agent plan smaller rows", labels=()), FACTS)
    )
    assert (plan.kind, plan.id) == (Kind.PLAN, f"plan-{p.REPO_ID}-7-9001")
    approve = only_task(decide("issue_comment", p.comment("/agent approve", labels=()), FACTS))
    assert (approve.kind, approve.id) == (Kind.APPROVE, f"approve-{p.REPO_ID}-7-9001")


STRANGERS = ("NONE", "FIRST_TIMER", "FIRST_TIME_CONTRIBUTOR", "CONTRIBUTOR", "MANNEQUIN")


@pytest.mark.parametrize("association", STRANGERS)
@pytest.mark.parametrize("verb", ["approve", "plan"])
def test_a_stranger_asking_to_approve_or_plan_queues_nothing(association: str, verb: str) -> None:
    # On a public repository anyone may comment: a job per comment would be a flood.
    stranger = p.comment(f"/agent {verb}", association=association, labels=())
    assert_starts_nothing("issue_comment", stranger, f"author_association {association}")
    assert starts_nothing("issue_comment", stranger, FACTS) is not None  # before Redis is asked


def test_a_member_may_ask_to_approve_and_the_app_may_not() -> None:
    # A member without write access is the worker's to answer, in one line.
    member = p.comment("/agent approve", association="COLLABORATOR", labels=())
    assert only_task(decide("issue_comment", member, FACTS)).kind is Kind.APPROVE
    bot = p.comment("/agent approve", labels=(), sender="forgehand[bot]", sender_type="Bot")
    assert decide("issue_comment", bot, FACTS).ignored == "sent by the App itself"


def plan_edited(body: str = "<!-- forgehand:plan -->\nx", author: str = "forgehand[bot]",
                **kw: Any) -> dict[str, Any]:  # fmt: skip
    payload = p.comment(body, labels=(), **kw) | {"action": "edited"}
    payload["comment"]["user"] = p.user(author, "Bot" if author.endswith("]") else "User")
    return payload


def test_a_person_editing_the_plan_comment_has_it_checked_again() -> None:
    task = only_task(decide("issue_comment", plan_edited(), FACTS))
    assert (task.kind, task.comment_id, task.sender) == (Kind.PLAN_EDIT, 9001, "alice")
    again = only_task(decide("issue_comment", plan_edited("<!-- forgehand:plan -->\ny"), FACTS))
    assert again.id != task.id  # each version of the comment is its own check


def test_a_person_editing_the_apps_comment_is_not_the_app() -> None:
    # GitHub marks a comment an App wrote with that App (`performed_via_github_app`); an edit
    # event carries the comment as it is, so the mark names the comment's author, not the
    # person who edited it (the sender).
    edit = plan_edited()
    edit["comment"]["performed_via_github_app"] = {"id": p.APP_ID, "slug": "forgehand"}
    for facts in (FACTS, Facts(app_id=p.APP_ID)):
        assert only_task(decide("issue_comment", edit, facts)).kind is Kind.PLAN_EDIT
    by_the_app = p.comment("/agent plan", sender="forgehand[bot]", sender_type="Bot")
    by_the_app["comment"]["performed_via_github_app"] = {"id": p.APP_ID, "slug": "forgehand"}
    assert decide("issue_comment", by_the_app, Facts(app_id=p.APP_ID)).ignored == (
        "sent by the App itself"
    )


@pytest.mark.parametrize("association", STRANGERS)
def test_a_stranger_editing_a_plan_lookalike_of_their_own_queues_nothing(association: str) -> None:
    # Their own comment, opened with the plan's marker; until a worker has learnt the App's
    # name, the web process cannot tell it from the App's by its author's login.
    edit = plan_edited(author="mallory", sender="mallory", association=association)
    unknown = Facts(app_id=p.APP_ID)
    assert decide("issue_comment", edit, unknown).actions == ()
    assert starts_nothing("issue_comment", edit, FACTS) is not None


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (plan_edited(sender="forgehand[bot]", sender_type="Bot"), "sent by the App itself"),
        (plan_edited(author="mallory"), "the comment is not the App's plan"),
        (plan_edited("just a comment"), "issue_comment.edited is not a trigger"),
    ],
)
def test_edits_that_start_nothing(payload: dict[str, Any], reason: str) -> None:
    assert decide("issue_comment", payload, FACTS).ignored == reason

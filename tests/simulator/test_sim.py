"""Every webhook the simulated GitHub sends parses as githubkit's model of that event, carries
GitHub's headers, and names no repository but the simulated one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from githubkit.webhooks import parse_obj

from simulator import shapes
from simulator.github import git_out
from simulator.sandbox import APP_ID, CALC, TESTS, free_port, key_pair
from simulator.sim import HOOK_ID, Simulation

BRANCH = "agent/issue-1-add"


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulation]:
    # Nobody listens at the webhook URL: what matters here is what is sent, not the answer.
    simulation = Simulation(
        root=tmp_path, webhook_url=f"http://127.0.0.1:{free_port()}/hook", secret="s",
        app_id=APP_ID, public_key=key_pair()[1], test_command="python3 test_calc.py",
    )  # fmt: skip
    simulation.start({"calc.py": CALC, "test_calc.py": TESTS})
    simulation.open_issue(1, "add() subtracts", "It subtracts.")
    yield simulation
    simulation.stop()


def push(sim: Simulation, text: str) -> None:
    """A commit on BRANCH, as the App would push it."""
    work = sim.root / "work"
    if not work.exists():
        git_out("clone", "--quiet", str(sim.origin), str(work), cwd=sim.root)
        git_out("checkout", "--quiet", "-b", BRANCH, cwd=work)
    (work / "notes.txt").write_text(text)
    git_out("add", "-A", cwd=work)
    git_out("-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qm", text, cwd=work)
    git_out("push", "--quiet", "-f", "origin", f"HEAD:refs/heads/{BRANCH}", cwd=work)


def rest(sim: Simulation, method: str, path: str, body: object = None) -> object:
    import httpx

    token = "ghs_simtest"
    sim.sim.tokens.add(token)
    request = httpx.Request(
        method, f"{sim.server.api_url}/repos/{sim.repo}{path}",
        content=json.dumps(body).encode() if body is not None else b"",
        headers={"authorization": f"token {token}"},
    )  # fmt: skip
    response = sim.sim.handle(request)
    assert response.status_code < 400, response.text
    return response.json() if response.content else None


def test_every_webhook_is_github_s_shape_with_github_s_headers(sim: Simulation) -> None:
    sim.label_issue(1, "agent")
    sim.comment(1, "/agent help")
    push(sim, "first")
    pull = rest(sim, "POST", "/pulls", {"title": "Fix add", "head": BRANCH, "base": "main",
                                        "body": "Fixes #1"})  # fmt: skip
    assert isinstance(pull, dict)
    number = pull["number"]
    sim.wait(lambda: sim.latest_check(number) is not None, 30, "the first CI run")
    push(sim, "second")  # the App's fix: a synchronize and a new CI run
    comment = rest(sim, "POST", f"/issues/{number}/comments", {"body": "working"})
    assert isinstance(comment, dict)
    rest(sim, "PATCH", f"/issues/comments/{comment['id']}", {"body": "done"})
    rest(sim, "POST", f"/issues/{number}/labels", {"labels": ["agent:needs-human"]})
    rest(sim, "DELETE", f"/issues/{number}/labels/agent%3Aneeds-human")
    expected = {
        ("issues", "labeled"), ("issue_comment", "created"), ("issue_comment", "edited"),
        ("pull_request", "opened"), ("pull_request", "synchronize"),
        ("pull_request", "labeled"), ("pull_request", "unlabeled"),
        ("check_suite", "requested"), ("check_run", "created"),
        ("check_run", "completed"), ("check_suite", "completed"),
    }  # fmt: skip

    def sent() -> set[tuple[str, str]]:
        return {(d.event, d.action) for d in sim.deliveries}

    sim.wait(lambda: expected <= sent(), 60, f"every kind of delivery (missing {expected})")
    synchronize = [d for d in sim.deliveries if d.action == "synchronize"]
    assert synchronize[0].payload["after"] == synchronize[0].payload["pull_request"]["head"]["sha"]
    edited = next(d for d in sim.deliveries if d.action == "edited")
    assert edited.payload["changes"] == {"body": {"from": "working"}}
    for delivery in sim.deliveries:
        parse_obj(delivery.event, delivery.payload)
        assert delivery.headers["X-GitHub-Hook-ID"] == str(HOOK_ID)
        assert delivery.headers["X-GitHub-Hook-Installation-Target-Type"] == "integration"
        assert delivery.headers["X-GitHub-Hook-Installation-Target-ID"] == str(APP_ID)
        assert delivery.headers["User-Agent"].startswith("GitHub-Hookshot/")
        text = json.dumps(delivery.payload)
        assert "Codertocat" not in text and "Hello-World" not in text, delivery.event
        sender = delivery.payload["sender"]
        if sender["type"] == "Bot":
            slug = sender["login"].removesuffix("[bot]")
            assert sender["html_url"] == f"https://github.com/apps/{slug}"


def test_the_template_repository_is_renamed_everywhere() -> None:
    data = {"a": ["https://api.github.com/repos/Codertocat/Hello-World/issues"], "n": 1}
    assert shapes.retarget(data, "demo/calc") == {
        "a": ["https://api.github.com/repos/demo/calc/issues"], "n": 1,
    }  # fmt: skip

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from redis import Redis
from redis.connection import AbstractConnection
from rq import Queue
from starlette.testclient import TestClient

from app.dispatch import QUEUE_NAME, Dispatcher
from app.settings import parse
from app.store.redis_conn import connect, embedded_redis
from app.store.store import Store
from app.web.main import create_app
from app.web.tally import Tally
from app.web.triggers import Facts, early_decision
from app.web.webhook import Intake
from simulator.sandbox import free_port
from tests import payloads as p
from tests.fakes import LOCAL_URL

PATH = "/api/github/webhooks"


def make_client(redis: Redis, secret: str = p.SECRET) -> TestClient:
    settings = parse({"WEBHOOK_SECRET": secret, "APP_ID": str(p.APP_ID)})
    return TestClient(create_app(settings, redis), base_url=LOCAL_URL)


@pytest.fixture
def client(redis: Redis) -> Iterator[TestClient]:
    with make_client(redis) as c:
        yield c


def post(
    client: TestClient, event: str, payload: dict[str, Any], delivery: str | None = None
) -> Any:
    body = p.encode(payload)
    return client.post(PATH, content=body, headers=p.headers(event, body, delivery))


def queued_ids(redis: Redis) -> list[str]:
    return Queue(QUEUE_NAME, connection=redis).job_ids


def test_labelled_issue_is_accepted_and_queued(client: TestClient, redis: Redis) -> None:
    response = post(client, "issues", p.issues(), "d-1")
    assert response.status_code == 202
    task_id = f"issue-{p.REPO_ID}-7"
    assert response.json() == {"delivery": "d-1", "tasks": [task_id]}
    assert queued_ids(redis) == [task_id]
    record = Store(redis).get(task_id)
    assert record is not None and record.state.value == "queued"


def test_ping_answers_200(client: TestClient, redis: Redis) -> None:
    response = post(client, "ping", {"zen": "Keep it logically awesome.", "hook_id": 1}, "d-ping")
    assert response.status_code == 200
    assert response.json() == {"delivery": "d-ping", "tasks": []}
    assert queued_ids(redis) == []


def test_ignored_event_says_why(client: TestClient, redis: Redis) -> None:
    response = post(client, "issues", p.issues(label="bug"))
    assert response.status_code == 202
    assert response.json()["ignored"] == "label bug is not agent"
    assert response.json()["tasks"] == []
    assert queued_ids(redis) == []


def test_documented_signature_vector(redis: Redis) -> None:
    # From GitHub's "Validating webhook deliveries" page.
    secret, body = "It's a Secret to Everybody", b"Hello, World!"
    signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert p.sign(body, secret) == signature
    headers = {
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": "d-vector",
        "X-Hub-Signature-256": signature,
        "Content-Type": "application/json",
    }
    with make_client(redis, secret) as c:
        accepted = c.post(PATH, content=body, headers=headers)
        assert accepted.status_code == 400  # past the signature; the body is no JSON
        assert "not valid JSON" in accepted.json()["error"]
        tampered = c.post(PATH, content=b"Hello, World?", headers=headers)
        assert tampered.status_code == 401


def _headers(**override: str) -> dict[str, str]:
    body = p.encode(p.issues())
    headers = p.headers("issues", body)
    headers.update(override)
    return {k: v for k, v in headers.items() if v}


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (p.encode(p.issues()), _headers(**{"X-Hub-Signature-256": ""}), 401),
        (p.encode(p.issues()), _headers(**{"X-Hub-Signature-256": "sha256=" + "0" * 64}), 401),
        (p.encode(p.issues()), _headers(**{"X-Hub-Signature-256": "sha256=zz"}), 401),
        (
            p.encode(p.issues()),
            _headers(**{"X-Hub-Signature-256": p.sign(p.encode(p.issues()), "wrong secret")}),
            401,
        ),
        # A SHA-1 signature, even a correct one, is not what the contract checks.
        (
            b"{}",
            _headers(
                **{"X-Hub-Signature-256": "sha1=" + __import__("hashlib").sha1(b"{}").hexdigest()}
            ),
            401,
        ),
        (p.encode(p.issues())[:-5], None, 400),
        (
            p.encode(p.issues()),
            _headers(**{"Content-Type": "application/x-www-form-urlencoded"}),
            400,
        ),
        (p.encode(p.issues()), _headers(**{"X-GitHub-Event": ""}), 400),
        (p.encode(p.issues()), _headers(**{"X-GitHub-Delivery": ""}), 400),
        (b"[1, 2]", None, 400),
        (b"\xff\xfe{}", None, 400),
    ],
)
def test_bad_input_gets_a_4xx_and_enqueues_nothing(
    client: TestClient, redis: Redis, body: bytes, headers: dict[str, str] | None, status: int
) -> None:
    if headers is None:
        headers = p.headers("issues", body)
    response = client.post(PATH, content=body, headers=headers)
    assert response.status_code == status
    assert "error" in response.json()
    assert queued_ids(redis) == []
    assert redis.keys("fh:task:*") == []


def test_payload_missing_fields_is_400_and_redeliverable(client: TestClient, redis: Redis) -> None:
    payload = p.issues()
    del payload["issue"]["number"]
    response = post(client, "issues", payload, "d-broken")
    assert response.status_code == 400
    assert response.json() == {"error": "payload has no issue.number"}
    assert queued_ids(redis) == []
    assert redis.get("fh:delivery:d-broken") is None


def test_unknown_event_is_accepted_and_ignored(client: TestClient) -> None:
    response = post(client, "marketplace_purchase", {"action": "purchased"})
    assert response.status_code == 202
    assert response.json()["ignored"] == "marketplace_purchase events are not handled"


def test_body_over_25_mb_is_413(client: TestClient, redis: Redis) -> None:
    body = b'{"pad": "' + b"x" * (26 * 1024 * 1024) + b'"}'
    response = client.post(PATH, content=body, headers=p.headers("issues", body))
    assert response.status_code == 413
    assert queued_ids(redis) == []


def test_body_over_25_mb_without_content_length_is_413(client: TestClient) -> None:
    chunk = b"x" * (1024 * 1024)

    def stream() -> Iterator[bytes]:
        for _ in range(26):
            yield chunk

    headers = p.headers("issues", b"")
    response = client.post(PATH, content=stream(), headers=headers)
    assert response.status_code == 413


def test_same_delivery_three_times_makes_one_task(client: TestClient, redis: Redis) -> None:
    answers = [post(client, "issues", p.issues(), "d-same").json() for _ in range(3)]
    assert answers[0]["tasks"] == [f"issue-{p.REPO_ID}-7"]
    assert (
        answers[1]
        == answers[2]
        == {"delivery": "d-same", "tasks": [], "ignored": "duplicate delivery"}
    )
    assert len(queued_ids(redis)) == 1


def test_two_deliveries_for_one_label_make_one_task_while_queued(
    client: TestClient, redis: Redis
) -> None:
    first = post(client, "issues", p.issues(), "d-a").json()
    second = post(client, "issues", p.issues(), "d-b").json()
    assert first["tasks"] == [f"issue-{p.REPO_ID}-7"]
    assert second["tasks"] == []
    assert second["ignored"] == f"issue-{p.REPO_ID}-7 already queued"
    assert len(queued_ids(redis)) == 1
    trail = [e["event"] for e in Store(redis).events(f"issue-{p.REPO_ID}-7")]
    assert trail == ["queued", "duplicate"]


def test_ten_failing_checks_on_one_sha_make_one_task(client: TestClient, redis: Redis) -> None:
    for run_id in range(10):
        assert post(client, "check_run", p.check_run(run_id=run_id)).status_code == 202
    assert queued_ids(redis) == [f"ci-{p.REPO_ID}-{'c' * 40}"]


def test_green_ci_on_an_agent_branch_queues_its_verdict(client: TestClient, redis: Redis) -> None:
    # Whether a task pushed the commit is the verdict job's to find out: a task may not have
    # noted its push yet when CI, fast, has finished.
    verdict = f"verdict-{p.REPO_ID}-{'c' * 40}"
    assert post(client, "check_suite", p.check_suite("success")).json()["tasks"] == [verdict]
    assert queued_ids(redis) == [verdict]


def test_unlabel_cancels_the_queued_task(client: TestClient, redis: Redis) -> None:
    post(client, "issues", p.issues())
    response = post(client, "issues", p.issues(action="unlabeled"))
    assert response.json()["cancelled"] == [f"issue-{p.REPO_ID}-7"]
    assert queued_ids(redis) == []
    record = Store(redis).get(f"issue-{p.REPO_ID}-7")
    assert record is not None and record.state.value == "cancelled"
    assert record.error == "trigger label removed"


def test_command_on_app_pull_request_uses_stored_fact(client: TestClient, redis: Redis) -> None:
    payload = p.comment(on_pr=True, labels=())
    assert post(client, "issue_comment", payload).json()["ignored"] == (
        "pull request was not opened by the App"
    )
    Store(redis).add_app_pull_request(p.REPO_ID, 12, 7, p.REPO, p.INSTALLATION)
    assert post(client, "issue_comment", payload).json()["tasks"] == [
        f"command-{p.REPO_ID}-12-9001"
    ]


def test_installation_events_are_recorded(client: TestClient, redis: Redis) -> None:
    store = Store(redis)
    post(client, "installation", p.installation("created"))
    assert store.installation_for(p.REPO_ID) == p.INSTALLATION
    post(client, "installation_repositories", p.installation_repositories())
    assert store.installation_for(77) == p.INSTALLATION
    post(client, "installation", p.installation("deleted"))
    assert store.installation_for(p.REPO_ID) is None
    assert store.installation_for(77) is None


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"redis": "ok"}


def test_redis_down_is_503_and_recovers_when_it_is_back() -> None:
    port = free_port()
    with embedded_redis(port=port) as url:
        redis = connect(url)
        with make_client(redis) as c:
            assert post(c, "issues", p.issues(number=1)).status_code == 202
    # The server is gone; the same client must now fail fast and say so.
    with make_client(redis) as c:
        down = post(c, "issues", p.issues(number=2), "d-down")
        assert down.status_code == 503
        assert c.get("/healthz").status_code == 503
        with embedded_redis(port=port):
            again = post(c, "issues", p.issues(number=2), "d-down")
            assert again.status_code == 202
            assert again.json()["tasks"] == [f"issue-{p.REPO_ID}-2"]
            assert c.get("/healthz").status_code == 200
    redis.close()


def test_the_app_s_own_comments_and_pushes_start_nothing(client: TestClient, redis: Redis) -> None:
    own = p.comment(body="/agent do more", sender="forgehand[bot]", sender_type="Bot")
    assert post(client, "issue_comment", own).json()["ignored"] == (
        "sender forgehand[bot] is a bot that is not in allowed_bots"
    )
    Store(redis).set_app_slug("forgehand")
    assert post(client, "issue_comment", own).json()["ignored"] == "sent by the App itself"
    push = {
        "ref": "refs/heads/agent/issue-7-x",
        "repository": p.repository(),
        "sender": p.user("forgehand[bot]", "Bot"),
        "installation": {"id": p.INSTALLATION},
    }
    assert post(client, "push", push).json()["ignored"] == (
        "push to agent/issue-7-x, an agent branch, not a base"
    )
    assert queued_ids(redis) == []
    # Its pushes to its own pull requests are bookkeeping: their files are read again.
    sync = p.pr_closed(sender="forgehand[bot]", sender_type="Bot") | {"action": "synchronize"}
    assert post(client, "pull_request", sync).json()["tasks"] == [f"sync-{p.REPO_ID}-12-{'a' * 40}"]


def test_a_stranger_commenting_on_a_public_repository_queues_nothing(
    client: TestClient, redis: Redis
) -> None:
    # Before any worker has learnt the App's name, as on a fresh Redis.
    approve = p.comment("/agent approve", association="NONE", labels=(), sender="mallory")
    lookalike = p.comment("<!-- forgehand:plan -->\nissues: []", association="NONE", labels=(),
                          sender="mallory") | {"action": "edited"}  # fmt: skip
    lookalike["comment"]["user"] = p.user("mallory")
    for n in range(3):
        assert post(client, "issue_comment", approve, f"approve-{n}").json()["tasks"] == []
        assert post(client, "issue_comment", lookalike, f"edit-{n}").json()["tasks"] == []
    assert queued_ids(redis) == []


def test_a_push_to_a_base_no_agent_pull_request_targets_starts_nothing(
    client: TestClient, redis: Redis
) -> None:
    from tests.app.web.test_triggers_push import AFTER, push

    body = post(client, "push", push()).json()
    assert body["ignored"] == "no open agent pull request targets main" and body["tasks"] == []
    assert queued_ids(redis) == []
    Store(redis).add_app_pull_request(p.REPO_ID, 12, 7, p.REPO, p.INSTALLATION, "main")
    assert post(client, "push", push(), "d-2").json()["tasks"] == [f"base-{p.REPO_ID}-{AFTER}"]


def test_events_from_repositories_outside_the_installation_start_nothing(
    client: TestClient, redis: Redis
) -> None:
    post(client, "installation_repositories", p.installation_repositories())  # repo 77 only
    body = post(client, "issues", p.issues()).json()  # repo 1296269, same installation
    assert body["ignored"] == "the App is not installed on this repository"
    post(client, "installation", p.installation("created"))  # now it is
    assert post(client, "issues", p.issues()).json()["tasks"] == [f"issue-{p.REPO_ID}-7"]
    post(client, "installation", p.installation("deleted"))
    assert post(client, "issues", p.issues(number=8)).json()["tasks"] == [f"issue-{p.REPO_ID}-8"]


def test_a_signed_body_nested_5000_deep_is_400(client: TestClient, redis: Redis) -> None:
    body = b'{"a": ' * 5000 + b"1" + b"}" * 5000
    response = client.post(PATH, content=body, headers=p.headers("issues", body))
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]
    assert queued_ids(redis) == []


def test_deliveries_that_start_nothing_are_answered_without_redis() -> None:
    nobody = connect(f"redis://127.0.0.1:{free_port()}/0")  # no server listens there
    with make_client(nobody) as c:
        ignored = post(c, "issues", p.issues(label="bug"), "d-fast")
        assert ignored.status_code == 202
        assert ignored.json() == {
            "delivery": "d-fast", "tasks": [], "ignored": "label bug is not agent"
        }  # fmt: skip
        # SPEC §3: a delivery that may start work still needs the store, and says so.
        assert post(c, "issues", p.issues()).status_code == 503
    nobody.close()


def test_ignored_deliveries_are_counted_in_metrics_without_a_log_line_each(
    client: TestClient, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="forgehand"):
        for _ in range(3):
            post(client, "issues", p.issues(label="bug"))
        post(client, "check_run", p.check_run(conclusion="success"))
    assert [r for r in caplog.records if r.name == "forgehand.webhook"] == []
    metrics = client.get("/metrics").text
    assert 'forgehand_deliveries_total{event="issues",outcome="ignored"} 3.0' in metrics
    assert 'forgehand_deliveries_total{event="check_run",outcome="ignored"} 1.0' in metrics
    summary = client.app.state.tally.summary()  # type: ignore[attr-defined]
    assert summary is not None
    assert summary.startswith("ignored 4 deliveries in ")
    assert summary.endswith(": issues 3, check_run 1")
    assert client.app.state.tally.summary() is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("event", "payloads", "cost"),
    [
        ("issues", [p.issues(number=n) for n in (1, 2)], 2),  # new work each time
        ("check_run", [p.check_run(run_id=n) for n in (1, 2, 3)], 2),  # one SHA's CI storm
        # Green: attempts reset (unless the commit failed before: a read, then the writes).
        ("check_suite", [p.check_suite("success", sha=c * 40) for c in "abc"], 4),
    ],
)
def test_real_work_costs_two_redis_round_trips(
    redis: Redis,
    monkeypatch: pytest.MonkeyPatch,
    event: str,
    payloads: list[dict[str, Any]],
    cost: int,
) -> None:
    store = Store(redis)
    facts = Facts(app_id=p.APP_ID)
    intake = Intake(store, Dispatcher(store, 60), facts, Tally())
    sends: list[int] = []
    send = AbstractConnection.send_packed_command

    def counted(self: AbstractConnection, command: object, check_health: bool = True) -> None:
        sends.append(1)
        send(self, command, check_health)  # type: ignore[no-untyped-call]

    rounds = []
    for n, payload in enumerate(payloads):
        early = early_decision(event, payload, facts)
        assert early is not None and early.tasks
        candidates = [t.id for t in early.tasks]
        with monkeypatch.context() as patch:
            patch.setattr(AbstractConnection, "send_packed_command", counted)
            result = intake.process(event, f"d-{n}", payload, candidates)
        rounds.append(len(sends))
        sends.clear()
        assert result.tasks or result.ignored == f"{candidates[0]} already queued"
    # The first delivery also loads the script into Redis (EVALSHA answered NOSCRIPT).
    assert rounds[1:] == [cost] * (len(payloads) - 1)
    assert len(queued_ids(redis)) == (1 if event == "check_run" else len(payloads))
    assert all(redis.get(f"fh:delivery:d-{n}") == b"done" for n in range(len(payloads)))

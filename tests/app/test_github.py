from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from githubkit.exception import PrimaryRateLimitExceeded, RequestFailed
from githubkit.response import Response
from githubkit.versions import LATEST_VERSION
from redis import Redis

from app.github import API_VERSION, USER_AGENT, App, GitHubError, Retry, segment
from app.settings import parse
from jobs.ci import job_log
from tests import fakes
from tests import payloads as p


@pytest.fixture
def github(tmp_path: object) -> Iterator[fakes.FakeGitHub]:
    fake = fakes.FakeGitHub(clone_url="file:///nowhere")
    for _router in fakes.mocked(fake):
        yield fake


@pytest.fixture
def app(redis: Redis, monkeypatch: pytest.MonkeyPatch) -> App:
    monkeypatch.setattr("app.github.BACKOFF", 0.0)
    settings = parse(
        {"APP_ID": str(p.APP_ID), "PRIVATE_KEY": fakes.app_key()[0], "GITHUB_API_URL": fakes.API}
    )
    return App(settings, redis)


def _failure(status: int) -> RequestFailed:
    request = httpx.Request("GET", "https://github.test/api/v3/x")
    return RequestFailed(Response(httpx.Response(status, request=request), object))


def _limited(seconds: int) -> PrimaryRateLimitExceeded:
    request = httpx.Request("GET", "https://github.test/api/v3/x")
    response = Response(httpx.Response(403, request=request), object)
    return PrimaryRateLimitExceeded(response, timedelta(seconds=seconds))


def test_retry_decisions() -> None:
    retry = Retry(attempts=3)
    assert retry(_failure(502), 0).do_retry
    assert retry(_failure(503), 2).do_retry
    assert not retry(_failure(502), 3).do_retry
    for status in (400, 401, 403, 404, 422):
        assert not retry(_failure(status), 0).do_retry
    assert retry(_limited(30), 0) == (True, timedelta(seconds=30))
    assert not retry(_limited(3600), 0).do_retry  # too long to hold a worker; RQ retries later


def test_installation_token_is_minted_once_and_shared(
    app: App, redis: Redis, github: fakes.FakeGitHub
) -> None:
    first = app.installation(p.INSTALLATION).token()
    other_worker = App(app.settings, redis)
    assert other_worker.installation(p.INSTALLATION).token() == first
    assert github.token_count == 1
    ttl = redis.ttl(f"fh:token:{p.INSTALLATION}")
    assert 45 * 60 < ttl <= 50 * 60  # an hour's token, handed out until 10 minutes before


def test_revoked_token_is_replaced_once(app: App, github: fakes.FakeGitHub) -> None:
    api = app.installation(p.INSTALLATION)
    api.token()
    github.tokens.clear()  # GitHub forgot every token
    assert api.get(f"/repos/{p.REPO}")["full_name"] == p.REPO
    assert github.token_count == 2


def test_server_errors_are_retried(app: App, github: fakes.FakeGitHub) -> None:
    github.failures[f"GET /repos/{p.REPO}"] = [502, 503]
    assert app.installation(p.INSTALLATION).get(f"/repos/{p.REPO}")["full_name"] == p.REPO
    assert len(github.requests("GET", f"^/repos/{p.REPO}$")) == 3


@pytest.mark.parametrize("status", [403, 404])
def test_client_errors_are_clear_and_permanent(
    app: App, github: fakes.FakeGitHub, status: int
) -> None:
    github.failures[f"GET /repos/{p.REPO}"] = [status]
    with pytest.raises(GitHubError) as err:
        app.installation(p.INSTALLATION).get(f"/repos/{p.REPO}")
    assert err.value.permanent
    assert str(err.value) == (
        f"GitHub answered {status} to GET /api/v3/repos/{p.REPO}: forced {status}"
    )


def test_app_endpoints_use_the_jwt(app: App, github: fakes.FakeGitHub) -> None:
    assert app.app_request("GET", "/app")["slug"] == "forgehand"
    assert github.calls[-1].auth.startswith("Bearer ")


def test_wrong_key_is_refused(redis: Redis, github: fakes.FakeGitHub) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    settings = parse(
        {"APP_ID": str(p.APP_ID), "PRIVATE_KEY": other.decode(), "GITHUB_API_URL": fakes.API}
    )
    with pytest.raises(GitHubError, match="GitHub answered 401 to GET /api/v3/app"):
        App(settings, redis).app_request("GET", "/app")


def test_short_rate_limit_is_waited_out(app: App, github: fakes.FakeGitHub) -> None:
    limited = (403, {"x-ratelimit-remaining": "0", "retry-after": "1"})
    github.failures[f"GET /repos/{p.REPO}"] = [limited]
    started = __import__("time").monotonic()
    assert app.installation(p.INSTALLATION).get(f"/repos/{p.REPO}")["full_name"] == p.REPO
    assert __import__("time").monotonic() - started >= 1


def test_long_rate_limit_is_not_waited_in_a_job_and_not_permanent(
    app: App, github: fakes.FakeGitHub
) -> None:
    limited = (403, {"x-ratelimit-remaining": "0", "retry-after": "3600"})
    github.failures[f"GET /repos/{p.REPO}"] = [limited]
    with pytest.raises(GitHubError, match="rate limit is exhausted for 3600s more") as err:
        app.installation(p.INSTALLATION).get(f"/repos/{p.REPO}")
    assert not err.value.permanent
    assert len(github.requests("GET", f"^/repos/{p.REPO}$")) == 1


def test_timeouts_are_reported_as_such(app: App, github: fakes.FakeGitHub) -> None:
    github.failures[f"GET /repos/{p.REPO}"] = [0]
    with pytest.raises(GitHubError, match="did not answer in time") as err:
        app.installation(p.INSTALLATION).get(f"/repos/{p.REPO}")
    assert not err.value.permanent


def test_the_api_version_is_the_one_githubkit_s_schema_describes() -> None:
    assert API_VERSION == LATEST_VERSION


def test_every_request_names_forgehand_and_the_api_version(redis: Redis, app: App) -> None:
    fake = fakes.FakeGitHub(clone_url="file:///nowhere")
    run = fake.add_check_run("c" * 40, log="line 1\nAssertionError\n")
    for router in fakes.mocked(fake):
        api = app.installation(p.INSTALLATION)
        api.get(f"/repos/{p.REPO}")  # mints a token with the JWT first
        list(app.app_pages("/app/hook/deliveries", {"per_page": 100}))
        assert job_log(api, p.REPO, run).endswith("AssertionError")
        hosts = {call.request.url.host for call in router.calls}
        assert hosts == {"github.test", "logs.github.test"}
        assert len(router.calls) == 5
        for call in router.calls:
            assert call.request.headers["user-agent"] == USER_AGENT, call.request.url
            if call.request.url.host == "github.test":
                assert call.request.headers["x-github-api-version"] == API_VERSION


def test_a_label_named_with_slash_query_and_hash_is_the_one_removed(
    app: App, github: fakes.FakeGitHub
) -> None:
    name = "a/b?#c"
    github.labels[7] = [name, "a", "agent"]
    api = app.installation(p.INSTALLATION)
    with pytest.raises(GitHubError) as unquoted:
        api.delete(f"/repos/{p.REPO}/issues/7/labels/{name}")  # what the job sent before
    assert unquoted.value.status == 404
    assert github.labels[7] == [name, "a", "agent"]
    api.delete(f"/repos/{p.REPO}/issues/7/labels/{segment(name)}")
    assert github.labels[7] == ["a", "agent"]
    assert github.calls[-1].path == f"/repos/{p.REPO}/issues/7/labels/a%2Fb%3F%23c"


def test_a_branch_keeps_its_slashes_and_loses_its_hash() -> None:
    assert segment("agent/issue-7-#fix", keep_slashes=True) == "agent/issue-7-%23fix"

"""GitHub App auth (JWT → installation token, shared through Redis) and a small REST client.

Only workers and operator commands use this module: the web process never calls GitHub.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
from githubkit import AppAuthStrategy, GitHub, TokenAuthStrategy
from githubkit.cache import MemCacheStrategy
from githubkit.exception import GitHubException, RateLimitExceeded, RequestFailed, RequestTimeout
from githubkit.retry import RetryOption
from redis import Redis

from app.settings import Settings
from app.store import text

# A token is handed out only while it has this long left, so a push at the end of a long
# agent run never starts with a token about to lapse.
TOKEN_MARGIN = timedelta(minutes=10)
# Waiting longer than this for a rate limit inside a job holds a worker hostage; beyond it the
# call fails and the job is retried later by RQ.
MAX_RATE_LIMIT_WAIT = timedelta(seconds=90)
USER_AGENT = "forgehand"
# The REST API version every request asks for: the one githubkit's schema (its models, which
# the simulator's tests validate against) describes, so what we expect is what GitHub answers.
API_VERSION = "2026-03-10"
# For requests made without githubkit (the manifest exchange, a job log's download).
HEADERS = {
    "User-Agent": USER_AGENT,
    "Accept": "application/vnd.github+json",
    "X-GitHub-Api-Version": API_VERSION,
}
# Seconds before the first retry of a 5xx answer; doubled for each further one.
BACKOFF = 1.0


class GitHubError(Exception):
    """GitHub refused a request; the message says what, for a status comment or a log."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status

    @property
    def permanent(self) -> bool:
        """Retrying will not help (401/403/404/422); 5xx, 429 and timeouts may pass."""
        return self.status in (400, 401, 403, 404, 410, 422)


class Retry:
    """githubkit retry decision: bounded waits for rate limits, backoff for 5xx."""

    def __init__(self, attempts: int = 3) -> None:
        self.attempts = attempts

    def __call__(self, exc: GitHubException, count: int) -> RetryOption:
        if count >= self.attempts:
            return RetryOption(False)
        if isinstance(exc, RateLimitExceeded):
            if exc.retry_after > MAX_RATE_LIMIT_WAIT:
                return RetryOption(False)
            return RetryOption(True, max(exc.retry_after, _wait(BACKOFF)))
        if isinstance(exc, RequestFailed) and exc.response.status_code >= 500:
            return RetryOption(True, _wait(BACKOFF * 2**count))
        return RetryOption(False)


def segment(value: str, keep_slashes: bool = False) -> str:
    """`value` quoted for a URL path: a label named `a/b?#c` must name the label, not another
    path, a query or a fragment. Branches keep their slashes (`git/refs/heads/agent/x`)."""
    return quote(value, safe="/" if keep_slashes else "")


def _pin_version(request: httpx.Request) -> None:
    request.headers["X-GitHub-Api-Version"] = API_VERSION


def _wait(seconds: float) -> timedelta:
    # githubkit reads a zero wait as "no wait given" and sleeps a minute instead.
    return timedelta(seconds=max(seconds, 0.001))


def _describe(exc: GitHubException) -> GitHubError:
    if isinstance(exc, RateLimitExceeded):
        wait = int(exc.retry_after.total_seconds())
        # Not the request's fault: a later run (RQ retries) may pass, so never "permanent".
        return GitHubError(f"GitHub's rate limit is exhausted for {wait}s more", 429)
    if isinstance(exc, RequestFailed):
        response = exc.response
        try:
            detail = response.json().get("message", "")
        except ValueError:
            detail = response.text[:200]
        request = response.raw_request
        path = request.url.path
        message = f"GitHub answered {response.status_code} to {request.method} {path}"
        return GitHubError(f"{message}: {detail}" if detail else message, response.status_code)
    if isinstance(exc, RequestTimeout):
        return GitHubError(f"GitHub did not answer in time: {exc}", 504)
    return GitHubError(f"GitHub request failed: {exc}", 502)


class App:
    """The App itself: its JWT client, installation tokens and identity."""

    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        settings.require("APP_ID", "PRIVATE_KEY")
        assert settings.app_id is not None and settings.private_key is not None
        self.settings = settings
        self.redis = redis
        self.retry = Retry()
        # One transport for every client the App makes: githubkit makes a client per request,
        # and each new transport would load the system's CA bundle again (~30 ms).
        self.transport = transport or httpx.HTTPTransport()
        # githubkit's default cache is global to the process: a JWT made with one key would
        # outlive a change of key. Each App keeps its own; tokens are shared through Redis.
        self.jwt_cache = MemCacheStrategy()
        self.jwt_client = GitHub(
            AppAuthStrategy(str(settings.app_id), settings.private_key), **self._options()
        )

    def _options(self) -> dict[str, Any]:
        return {
            "base_url": self.settings.github_api_url,
            "user_agent": USER_AGENT,
            "auto_retry": self.retry,
            "http_cache": False,
            "timeout": 30.0,
            "transport": self.transport,
            "cache_strategy": self.jwt_cache,
            # githubkit sends the version only from its generated methods, not from request().
            "event_hooks": {"request": [_pin_version]},
        }

    def app_request(self, method: str, path: str, **kwargs: Any) -> Any:
        return _call(self.jwt_client, method, path, **kwargs)

    def app_pages(self, path: str, params: dict[str, Any]) -> Iterator[list[Any]]:
        """Each page of a list the App reads with its JWT, following GitHub's Link headers."""
        url: str | None = path
        query: dict[str, Any] | None = params
        while url:
            try:
                response = self.jwt_client.request("GET", url, params=query)
            except GitHubException as exc:
                raise _describe(exc) from exc
            yield response.json()
            found = re.search(r'<([^>]+)>;\s*rel="next"', response.headers.get("link", ""))
            url, query = (found[1], None) if found else (None, None)

    def token(self, installation_id: int) -> str:
        """An installation token with at least TOKEN_MARGIN left, shared by every worker."""
        key = f"fh:token:{installation_id}"
        cached = self.redis.get(key)
        if isinstance(cached, bytes):
            return cached.decode()
        data = self.app_request("POST", f"/app/installations/{installation_id}/access_tokens")
        token: str = data["token"]
        expires = datetime.strptime(data["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        ttl = int((expires - datetime.now(UTC) - TOKEN_MARGIN).total_seconds())
        if ttl > 0:
            self.redis.set(key, token, ex=ttl)
        return token

    def forget_token(self, installation_id: int) -> None:
        self.redis.delete(f"fh:token:{installation_id}")

    def installation(self, installation_id: int) -> Installation:
        return Installation(self, installation_id)

    def identity(self, via: Installation) -> Identity:
        """The App's bot login and id, for commit authorship; read once, kept in Redis.

        GitHub serves the bot user only to installation tokens, hence `via`."""
        cached = self.redis.hgetall("fh:app:identity")
        if cached:
            fields = {text(k): text(v) for k, v in cached.items()}
            return Identity(fields["slug"], int(fields["bot_id"]))
        slug: str = self.app_request("GET", "/app")["slug"]
        bot = via.get(f"/users/{segment(slug + '[bot]')}")
        identity = Identity(slug, int(bot["id"]))
        self.redis.hset("fh:app:identity", mapping={"slug": slug, "bot_id": identity.bot_id})
        return identity


@dataclass(frozen=True)
class Identity:
    slug: str
    bot_id: int

    @property
    def login(self) -> str:
        return f"{self.slug}[bot]"

    @property
    def email(self) -> str:
        return f"{self.bot_id}+{self.slug}[bot]@users.noreply.github.com"


class Installation:
    """REST calls as one installation, with its token renewed through the App as needed."""

    def __init__(self, app: App, installation_id: int) -> None:
        self.app = app
        self.installation_id = installation_id
        self._client: GitHub[TokenAuthStrategy] | None = None
        self._client_token = ""

    def token(self) -> str:
        return self.app.token(self.installation_id)

    def _gh(self) -> GitHub[TokenAuthStrategy]:
        token = self.token()
        if self._client is None or token != self._client_token:
            self._client = GitHub(TokenAuthStrategy(token), **self.app._options())
            self._client_token = token
        return self._client

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return _call(self._gh(), method, path, **kwargs)
        except GitHubError as exc:
            if exc.status != 401:
                raise
            # A revoked or expired token: mint a new one once.
            self.app.forget_token(self.installation_id)
            return _call(self._gh(), method, path, **kwargs)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, json=body)

    def patch(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)


def _call(gh: GitHub[Any], method: str, path: str, **kwargs: Any) -> Any:
    try:
        response = gh.request(method, path, **kwargs)
    except GitHubException as exc:
        raise _describe(exc) from exc
    if response.status_code == 204 or not response.content:
        return None
    if "json" not in response.headers.get("content-type", "json"):
        return response.text  # a raw media type, such as a file's contents
    return response.json()

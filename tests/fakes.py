"""The test doubles, all in one place: a GitHub REST API (respx), an origin repository, keys.

FakeGitHub is the project's GitHub simulator set up for one test repository and reached
through respx, so unit tests assert on exactly the requests forgehand made.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import respx
from rq import Queue, SimpleWorker

from jobs.worker import ListenerFirstWorker
from simulator.github import Call, GitHubSimulator, git_out, logs_host
from simulator.sandbox import key_pair
from tests import payloads as p

API = "https://github.test/api/v3"
LOGS = "https://logs.github.test"
# A name the web process answers to (app/web/hosts.py); TestClient's own, testserver, is not.
LOCAL_URL = "http://127.0.0.1:3000"
SLUG = "forgehand"
BOT_ID = 4242


class BurstWorker(ListenerFirstWorker, SimpleWorker):
    """RQ's in-process worker, stopping as forgehand's workers do: RQ's own order made each
    burst wait out a minute now and then at its end (30 of the suite's 39 minutes)."""


def work_burst(queue: Queue) -> None:
    """Run every job on `queue` in this process, then return."""
    BurstWorker([queue], connection=queue.connection).work(burst=True)


@cache
def app_key() -> tuple[str, str]:
    """The test App's private key (PEM) and its public half, made once per run."""
    return key_pair()


@dataclass
class FakeGitHub(GitHubSimulator):
    repo: str = p.REPO
    repo_id: int = p.REPO_ID
    app_id: int = p.APP_ID
    public_key: str = field(default_factory=lambda: app_key()[1])
    logs_url: str = LOGS


def mocked(fake: GitHubSimulator) -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        router.route(url__startswith=LOGS).mock(side_effect=lambda r: logs_host(fake, r))
        router.route(url__startswith=API).mock(side_effect=fake.handle)
        yield router


__all__ = ["Call", "FakeGitHub"]


# --- git ------------------------------------------------------------------------------------

# The tests' git is the simulator's: Carol's commits, no config of this machine's.
sh_git = git_out


def make_origin(root: Path) -> Path:
    """A bare repository with a small Python project on `main`, as `origin`."""
    seed = root / "seed"
    seed.mkdir(parents=True)
    sh_git("init", "--quiet", "-b", "main", cwd=seed)
    (seed / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (seed / "README.md").write_text("# calc\n")
    (seed / ".github" / "workflows").mkdir(parents=True)
    (seed / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    sh_git("add", "-A", cwd=seed)
    sh_git("commit", "--quiet", "-m", "Initial commit", cwd=seed)
    origin = root / "origin.git"
    sh_git("clone", "--quiet", "--bare", str(seed), str(origin), cwd=root)
    return origin


def branches(origin: Path) -> dict[str, str]:
    out = sh_git(
        "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads", cwd=origin
    )
    return dict(line.split() for line in out.splitlines())


def show(origin: Path, ref: str, path: str) -> str:
    return sh_git("show", f"{ref}:{path}", cwd=origin)

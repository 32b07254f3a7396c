"""The agent boundary under attack: each test runs a hostile agent (tests/agents/attack.py)
through the real pipeline — real git, real bubblewrap, real Redis — and asserts that what it
went for stayed out of reach. One test per attack of issue #12's table, plus the network."""

from __future__ import annotations

import json
import os
import resource
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.__main__ import main
from app.settings import parse
from app.store import TaskRecord
from app.tasks import State
from jobs.agents.runner import LINE_LIMIT, LOG_LIMIT
from jobs.boundary import sandbox
from jobs.worker import reap
from jobs.workspace import Workspaces
from tests import fakes
from tests.jobs.conftest import BRANCH, World, wait_until

ATTACK = Path(__file__).resolve().parents[2] / "agents" / "attack.py"
WEBHOOK_SECRET = "whsec-do-not-leak-4e1f9a"
CLIENT_SECRET = "client-secret-do-not-leak-77c2"


@pytest.fixture
def hostile(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """A world whose worker holds every secret the issue's table names: the App key and
    webhook secret in its environment, a client secret in its `.env`."""
    home = tmp_path / "worker"
    home.mkdir()
    (home / ".env").write_text(f"GITHUB_CLIENT_SECRET={CLIENT_SECRET}\n")
    monkeypatch.chdir(home)
    world.setenv("WEBHOOK_SECRET", WEBHOOK_SECRET)
    world.setenv("AGENT_SANDBOX", "bwrap")
    yield world


def attack(world: World, mode: str, *targets: str) -> TaskRecord:
    """Run the hostile agent in `mode` on an issue whose text names its `targets`."""
    world.github.add_issue(
        7, "Addition subtracts", f"Please tidy up.\ntargets: {json.dumps(targets)}\n"
    )
    argv = [sys.executable, str(ATTACK), mode]
    world.setenv("AGENT_COMMAND", shlex.join(argv))
    return world.run(world.issue_task())


def why(world: World, record: TaskRecord) -> str:
    return record.error + "\n" + "\n".join(world.store.log_tail(record.id)[-20:])


def secrets(world: World) -> list[str]:
    key_lines = [line for line in fakes.app_key()[0].splitlines() if len(line) > 40]
    return [WEBHOOK_SECRET, CLIENT_SECRET, *key_lines[:3], *world.github.tokens]


def everything_public(world: World, record: TaskRecord) -> str:
    """All the attacker could read back: what was pushed, posted, logged and stored."""
    parts = [record.error, "\n".join(world.store.log_tail(record.id))]
    log = Workspaces(world.workspaces).log_path(record.id)
    parts.append(log.read_text(errors="replace") if log.exists() else "")
    for branch in fakes.branches(world.origin):
        files = fakes.sh_git("ls-tree", "-r", "--name-only", branch, cwd=world.origin).split()
        parts += [fakes.show(world.origin, branch, f) for f in files]
    parts += [f"{call.path} {call.body}" for call in world.github.calls]
    return "\n".join(parts)


def assert_nothing_leaked(world: World, record: TaskRecord) -> None:
    public = everything_public(world, record)
    for secret in secrets(world):
        assert secret not in public


def findings(world: World) -> str:
    return fakes.show(world.origin, BRANCH, "findings.txt")


def test_worker_environments_and_env_file_are_out_of_sight(hostile: World) -> None:
    env_file = Path.cwd() / ".env"
    record = attack(hostile, "environ", str(env_file), f"/proc/{os.getpid()}/environ")
    assert record.state is State.DONE, why(hostile, record)
    found = findings(hostile)
    assert "pid 1 cmdline" in found  # it looked, and saw only its own sandbox
    assert "PRIVATE_KEY" not in found and "WEBHOOK_SECRET" not in found
    assert f"{env_file}: <FileNotFoundError>" in found
    assert_nothing_leaked(hostile, record)


def test_redis_is_unreachable_by_tcp_proxy_or_socket(hostile: World, redis_url: str) -> None:
    from urllib.parse import urlsplit

    url = urlsplit(redis_url)
    host, port = (url.hostname or "127.0.0.1"), str(url.port or 6379)
    sockets = [url.path] if url.scheme == "unix" else []
    hostile.setenv("AGENT_ALLOW_HOSTS", "*")  # even with every host allowed
    record = attack(hostile, "redis", host, port, *sockets)
    assert record.state is State.DONE, why(hostile, record)
    assert hostile.redis.get("fh:pwned") is None
    found = findings(hostile)
    assert "refused" in found and "fh:token" not in found
    assert "403" in found or "proxy refused" in found


def test_hooks_in_any_git_directory_never_run_in_forgehands_git(
    hostile: World, tmp_path: Path
) -> None:
    marker = tmp_path / "hook-ran"
    evil = tmp_path / "evil.git"
    fakes.sh_git("init", "-q", "--bare", str(evil), cwd=tmp_path)
    record = attack(hostile, "poison-git", str(marker), f"file://{evil}/")
    assert record.state is State.DONE, why(hostile, record)
    assert not marker.exists()
    assert BRANCH in fakes.branches(hostile.origin)
    assert fakes.branches(evil) == {}
    # A harmless agent afterwards, on the same mirror and maybe the same kept tree.
    hostile.github.add_issue(8, "Another", "Fix it again.")
    hostile.use_agent("fix")
    again = hostile.run(hostile.issue_task(8))
    assert again.state is State.DONE, why(hostile, again)
    assert not marker.exists() and fakes.branches(evil) == {}
    task = again.task
    mirror = hostile.workspaces / "mirrors" / f"{task.installation_id}-{task.repo_id}.git"
    assert "pwn" not in (mirror / "config").read_text()
    assert not any((mirror / "hooks").glob("*")) if (mirror / "hooks").exists() else True


def test_a_poisoned_mirror_base_cannot_reach_a_later_task(hostile: World) -> None:
    record = attack(hostile, "move-base", "on: push\njobs: {evil: {}}\n")
    assert record.state is State.DONE, why(hostile, record)
    task = record.task
    mirror = hostile.workspaces / "mirrors" / f"{task.installation_id}-{task.repo_id}.git"
    main = fakes.sh_git("rev-parse", "main", cwd=hostile.origin).strip()
    assert fakes.sh_git("rev-parse", "refs/remotes/origin/main", cwd=mirror).strip() == main
    assert "999999" not in (mirror / "forgehand-fetches").read_text()
    assert (mirror / "objects" / "info" / "alternates").exists() is False
    hostile.github.add_issue(8, "Another", "Fix it again.")
    hostile.use_agent("fix")
    again = hostile.run(hostile.issue_task(8))
    assert again.state is State.DONE, why(hostile, again)
    (branch,) = (b for b in fakes.branches(hostile.origin) if b.startswith("agent/issue-8"))
    files = fakes.sh_git("ls-tree", "-r", "--name-only", branch, cwd=hostile.origin).split()
    assert ".github/workflows/evil.yml" not in files
    parent = fakes.sh_git("rev-parse", f"{branch}~1", cwd=hostile.origin).strip()
    assert parent == main


@pytest.mark.parametrize(
    "variant", ["quoted", "tab", "quote", "rename", "case", "config", "add-remove", "replace"]
)
def test_protected_paths_cannot_be_slipped_past(hostile: World, variant: str) -> None:
    record = attack(hostile, "protected", variant)
    assert record.state is State.FAILED, variant
    assert "protected paths" in record.error
    assert set(fakes.branches(hostile.origin)) == {"main"}


def _processes_tagged(tag: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if tag.encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def test_nothing_the_agent_starts_outlives_the_task(hostile: World) -> None:
    tag = f"fh-daemon-{os.getpid()}"
    record = attack(hostile, "daemon", tag)
    assert record.state is State.DONE, why(hostile, record)
    assert "left a daemon" in findings(hostile)
    assert _processes_tagged(tag) == []


def test_a_timed_out_agent_is_stopped_with_everything_it_started(hostile: World) -> None:
    hostile.setenv("AGENT_TIMEOUT", "2")
    tag = f"fh-hang-{os.getpid()}"
    record = attack(hostile, "hang", tag)
    assert record.state is State.FAILED and "was stopped" in record.error
    wait_until(lambda: _processes_tagged(tag) == [], "the agent's child to be gone", 10)
    assert hostile.leftovers() == []


def test_forged_bookkeeping_cannot_make_the_worker_kill(hostile: World) -> None:
    victim = subprocess.Popen(["sleep", "60"])
    try:
        record = attack(hostile, "horse", str(victim.pid))
        assert record.state is State.DONE, why(hostile, record)
        reap(Workspaces(hostile.workspaces))
        assert victim.poll() is None
        run = hostile.workspaces / "run"
        assert not (run / f"horse-{victim.pid}").exists()
        assert not (Workspaces(hostile.workspaces).run_dir / f"horse-{victim.pid}").exists()
    finally:
        victim.kill()
        victim.wait()


def test_a_fork_bomb_meets_the_process_limit(
    hostile: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = 64
    if os.geteuid() != 0:
        # RLIMIT_NPROC also counts the user's processes outside the sandbox.
        mine = [p for p in Path("/proc").iterdir() if p.name.isdigit()]
        limit += sum(1 for p in mine if p.stat().st_uid == os.getuid())
    monkeypatch.setattr(sandbox, "MAX_PROCESSES", limit)
    record = attack(hostile, "bomb", "1000")
    assert record.state is State.DONE, why(hostile, record)
    found = findings(hostile)
    assert "fork refused" in found
    started = int(found.split("started ")[1].split()[0])
    assert started < limit
    bomb = f"{ATTACK}\0bomb"
    wait_until(lambda: _processes_tagged(bomb) == [], "the bomb's processes to be gone", 10)


def test_an_endless_line_is_cut_and_the_worker_memory_stays_bounded(hostile: World) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    record = attack(hostile, "flood", str(256 << 20))
    assert record.state is State.DONE, why(hostile, record)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 64
    lines = hostile.store.log_tail(record.id)
    assert max(len(line) for line in lines) <= LINE_LIMIT + 20
    assert "after the flood" in lines
    log = Workspaces(hostile.workspaces).log_path(record.id)
    assert log.stat().st_size < LOG_LIMIT


def test_setup_and_test_commands_run_in_the_sandbox(hostile: World) -> None:
    leak = "cat /proc/*/environ /proc/*/cmdline > {0} 2>/dev/null; env >> {0}; true"
    hostile.github.config_text = (
        f"setup: {leak.format('leak-setup.txt')!r}\ntest: {leak.format('leak-test.txt')!r}\n"
    )
    hostile.use_agent("fix")
    hostile.setenv("AGENT_SANDBOX", "bwrap")
    record = hostile.run(hostile.issue_task())
    assert record.state is State.DONE, why(hostile, record)
    for name in ("leak-setup.txt", "leak-test.txt"):
        leaked = fakes.show(hostile.origin, BRANCH, name)
        assert "HOME=/home/agent" in leaked and "PRIVATE_KEY" not in leaked
    assert_nothing_leaked(hostile, record)


def test_only_allowed_hosts_are_reachable_and_refusals_are_logged(hostile: World) -> None:
    record = attack(hostile, "network", "example.com:443", "127.0.0.1:22")
    assert record.state is State.DONE, why(hostile, record)
    found = findings(hostile)
    assert "direct example.com:443: connected" not in found
    assert "proxy example.com:443: b'HTTP/1.1 403" in found
    lines = hostile.store.log_tail(record.id)
    assert any("refused" in line and "example.com:443" in line for line in lines)
    assert any("AGENT_ALLOW_HOSTS" in line for line in lines)


# --- the boundary's face, without an attacker ---------------------------------------------


def failing_bwrap(tmp_path: Path) -> str:
    fake = tmp_path / "bwrap"
    message = "bwrap: No permissions to create a new namespace"
    fake.write_text(f"#!/bin/sh\necho '{message}' >&2\nexit 1\n")
    fake.chmod(0o755)
    return str(fake)


def test_where_namespaces_cannot_be_made_the_check_names_cause_and_fix(tmp_path: Path) -> None:
    box = sandbox.Sandbox(parse({}))
    box.bwrap = failing_bwrap(tmp_path)
    with pytest.raises(sandbox.SandboxUnavailable) as err:
        box.check()
    message = str(err.value)
    assert "No permissions to create a new namespace" in message
    assert "user namespaces" in message and "AGENT_SANDBOX=none" in message
    assert "\n" not in message


def test_the_worker_refuses_to_start_without_a_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = failing_bwrap(tmp_path)
    monkeypatch.setattr(sandbox, "bwrap_program", lambda: fake)
    monkeypatch.chdir(tmp_path)
    for name, value in {
        "APP_ID": "1",
        "PRIVATE_KEY": fakes.app_key()[0],
        "REDIS_URL": "redis://127.0.0.1:1/0",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AGENT_SANDBOX", raising=False)
    assert main(["worker", "--burst"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("forgehand: AGENT_SANDBOX=bwrap but namespaces cannot be created")


def test_no_sandbox_is_written_on_the_tasks_timeline(world: World) -> None:
    world.use_agent("fix")
    world.setenv("AGENT_SANDBOX", "none")
    record = world.run(world.issue_task())
    assert record.state is State.DONE, record.error
    warned = [e for e in world.store.events(record.id) if e["event"] == "unsandboxed"]
    assert warned and "AGENT_SANDBOX=none" in warned[0]["detail"]


def test_the_workers_own_services_are_never_allowed() -> None:
    box = sandbox.Sandbox(parse({"REDIS_URL": "redis://10.1.2.3:6380/0", "PORT": "3001"}))
    never = box.never()
    assert ("10.1.2.3", 6380) in never and ("127.0.0.1", 6380) in never
    assert ("127.0.0.1", 3001) in never and ("localhost", 3001) in never


def test_a_program_outside_the_system_shows_its_libraries_not_its_neighbours(
    tmp_path: Path,
) -> None:
    local = tmp_path / ".local"
    for name in ("bin", "lib/python3.11/site-packages", "share/other-tool"):
        (local / name).mkdir(parents=True)
    program = local / "bin" / "agent"
    program.write_text("#!/bin/sh\n")
    shown = sandbox._prefixes(program)
    assert program in shown and local / "lib" in shown
    assert not any(p in (local, local / "share") for p in shown)


def test_the_workers_files_under_a_shown_directory_are_covered(tmp_path: Path) -> None:
    shown = tmp_path / "opt"
    (shown / "forgehand" / "workspaces").mkdir(parents=True)
    (shown / "forgehand" / ".env").write_text("WEBHOOK_SECRET=x\n")
    hidden = [shown / "forgehand" / "workspaces", shown / "forgehand" / ".env", tmp_path / "x"]
    assert sandbox._hide(hidden, [shown]) == [
        "--tmpfs", str(shown / "forgehand" / "workspaces"),
        "--ro-bind", os.devnull, str(shown / "forgehand" / ".env"),
    ]  # fmt: skip
    assert sandbox._hide([shown], [shown]) == []  # never the shown directory itself


def test_links_planted_in_the_agents_home_cannot_steer_the_workers_writes(
    hostile: World, tmp_path: Path
) -> None:
    """`setup` (the repository's) links the preset's config directory in HOME to a path of
    the worker's; forgehand then writes the preset's config, with the worker's rights."""
    victim = tmp_path / "victim"
    victim.mkdir()
    plant = f"ln -s {victim} $HOME/.claude; ln -s {victim}/owned $HOME/.forgehand-last-message"
    hostile.github.config_text = f"setup: {plant!r}\n"
    fake_claude = tmp_path / "bin" / "claude"
    fake_claude.parent.mkdir()
    result = json.dumps({"type": "result", "is_error": False, "num_turns": 1, "result": "done"})
    fake_claude.write_text(
        f"#!{getattr(sys, '_base_executable', sys.executable)}\n"
        "import sys, pathlib\nsys.stdin.read()\n"
        "pathlib.Path('calc.py').write_text('def add(a, b):\\n    return a + b\\n')\n"
        f"print({result!r})\n"
    )
    fake_claude.chmod(0o755)
    hostile.setenv("PATH", f"{fake_claude.parent}:{os.environ['PATH']}")
    hostile.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    hostile.setenv("AGENT_ENV", "ANTHROPIC_API_KEY")
    hostile.setenv("AGENT", "claude")
    record = hostile.run(hostile.issue_task())
    assert record.state is State.DONE, why(hostile, record)
    assert list(victim.iterdir()) == []

"""The pipeline tasks run through: workspace → agent → verify → commit → push → report.

Each kind of task supplies what differs (prompt, branch, what to do with the result); the
steps in between are shared.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from app import budget
from app.github import App, GitHubError, Identity, Installation, segment
from app.repo_config import PATH as CONFIG_PATH
from app.repo_config import RepoConfig
from app.repo_config import parse as parse_config
from app.settings import Settings
from app.store import Store, observe_agent, spend
from app.tasks import Task
from jobs.agents import PRESETS, Preset, prompts, write_home
from jobs.agents import runner as agent
from jobs.boundary import (
    UNSAFE_WARNING,
    Admit,
    Gateway,
    GitError,
    Limits,
    Meter,
    Redactor,
    Sandbox,
    agent_variables,
    git_capped,
    handoff,
    new_placeholder,
    protected,
    redactor_for,
    upstreams,
)
from jobs.errors import (
    HANDED_BACK,
    AgentConfigError,
    BudgetStopped,
    DayBudgetReached,
    HandedBack,
    TaskFailed,
)
from jobs.report import CheckRun, Heartbeat, StatusComment, dashboard_url
from jobs.report import words as report
from jobs.spend import AGENT_KINDS, Caps, TaskMeter, day_refusal
from jobs.workspace import Workspaces, Worktree

WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})
PUSH_TRIES = 3
CHANGED_SHOWN = 50  # paths of an unfinished change listed in the log at most
CHANGED_LISTING_LIMIT = 1024 * 1024
# What the task page shows of the change, and how many of its commits the report lists.
DIFF_LIMIT = 16 * 1024 * 1024
MAX_COMMITS_LISTED = 100


@dataclass(frozen=True)
class Context:
    store: Store
    settings: Settings
    app: App
    workspaces: Workspaces

    @cached_property
    def sandbox(self) -> Sandbox:
        return Sandbox(self.settings)


@dataclass(frozen=True)
class Repo:
    """What a task knows of its repository once it has read it and its config."""

    full_name: str
    clone_url: str
    default_branch: str
    config: RepoConfig
    problems: tuple[str, ...]

    @property
    def base_branch(self) -> str:
        return self.config.base_branch or self.default_branch


def pgid_file_for(workspaces: Workspaces, horse_pid: int) -> Path:
    """Where the job in work-horse `horse_pid` records its agent's process group."""
    return workspaces.run_dir / f"agent-{horse_pid}.pgid"


# --- shared steps -------------------------------------------------------------------------


def has_write_access(api: Installation, repo: str, login: str) -> bool:
    data = api.get(f"/repos/{repo}/collaborators/{segment(login)}/permission")
    role = data.get("role_name") or data.get("permission")
    return role in WRITE_PERMISSIONS or data.get("permission") in WRITE_PERMISSIONS


def read_repo(api: Installation, ctx: Context, task: Task) -> Repo:
    data = api.get(f"/repos/{task.repo}")
    config, problems = parse_config(_config_text(api, task.repo, data["default_branch"]))
    ctx.store.set_allowed_bots(task.repo_id, config.allowed_bots)
    return Repo(
        full_name=task.repo,
        clone_url=data["clone_url"],
        default_branch=data["default_branch"],
        config=config,
        problems=tuple(problems),
    )


def _config_text(api: Installation, repo: str, ref: str) -> str | None:
    try:
        data = api.request(
            "GET",
            f"/repos/{repo}/contents/{CONFIG_PATH}",
            params={"ref": ref},
            headers={"Accept": "application/vnd.github.raw+json"},
        )
    except GitHubError as exc:
        if exc.status == 404:
            return None
        raise
    # The raw media type answers with the file itself; some servers still send JSON.
    if isinstance(data, dict) and "content" in data:
        return base64.b64decode(data["content"]).decode(errors="replace")
    return data if isinstance(data, str) else None


def branch_name(prefix: str, number: int, title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40].rstrip("-")
    return f"{prefix}issue-{number}" + (f"-{slug}" if slug else "")


def run_sandboxed(
    sandbox: Sandbox,
    tree: Worktree,
    argv: list[str],
    prompt: str,
    env: dict[str, str],
    *,
    files: tuple[Path, ...],
    trusted: bool,
    preset: Preset | None,
    repository_allow: tuple[str, ...],
    log_path: Path,
    timeout: float,
    idle_timeout: float,
    on_output: Callable[[list[str]], None],
    on_refused: Callable[[str], None],
    admit: Admit,
    meter: Meter,
    pgid_file: Path | None = None,
) -> agent.AgentResult:
    """One process of a task's — the agent, `setup` or `test` — in the sandbox, with its
    preset's config in its HOME, its output rendered for people and its final message read.
    Its model calls go through a gateway of its own: the model API keys in `env` are replaced
    by the gateway's placeholder and each API's base URL by the gateway's."""
    try:
        found = upstreams(env)
    except ValueError as exc:
        raise AgentConfigError(str(exc)) from None
    placeholder = new_placeholder()
    with Gateway(found, placeholder, admit, meter) as gateway:
        env = agent_variables(env, found, sandbox.gateway_url(gateway), placeholder)
        if preset is not None:
            env = preset.environment(env) | env
            write_home(preset, tree.home, env)
            # Folded into the config just written, under forgehand's safety settings: passed
            # on, they would take precedence over it.
            env = {k: v for k, v in env.items() if k not in preset.config_vars}
        allow = sandbox.settings.agent_allow_hosts
        with sandbox.jail(
            tree.path, tree.home, tree.objects, allow, on_refused, repository_allow, gateway
        ) as jail:
            launch = jail.command(argv, env, files, trusted)
            result = agent.run(
                launch.argv,
                workdir=tree.path,
                prompt=prompt,
                env=launch.env,
                log_path=log_path,
                timeout=timeout,
                idle_timeout=idle_timeout,
                on_output=on_output,
                pgid_file=pgid_file,
                preexec=launch.preexec,
                render=preset.render if preset is not None else None,
                disk=agent.DiskCap((tree.path, tree.home), sandbox.settings.agent_max_disk),
            )
        stopped = gateway.refused[0] if gateway.refused else ""
    if result.killed == "disk":
        raise TaskFailed(
            f"The files of the task's tree and the agent's home passed "
            f"{sandbox.settings.agent_max_disk} bytes (AGENT_MAX_DISK), so it was stopped.",
            result.tail,
        )
    summary = preset.summary(result.lines, tree.home) if preset else result.tail
    return replace(result, summary=summary.strip(), stopped=stopped)


@dataclass
class Run:
    """One task's run in its worktree: the agent, the checks, and the result."""

    task: Task
    ctx: Context
    repo: Repo
    tree: Worktree
    identity: Identity
    heartbeat: Heartbeat | None = None  # shows the agent's progress while it runs

    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    @cached_property
    def redactor(self) -> Redactor:
        return redactor_for(self.settings, self.ctx.app.token(self.task.installation_id))

    def _env(self) -> dict[str, str]:
        return agent.agent_env(os.environ, self.settings.agent_env, self.who())

    def _process(
        self,
        argv: list[str],
        prompt: str,
        files: tuple[Path, ...] = (),
        trusted: bool = False,
        preset: Preset | None = None,
    ) -> agent.AgentResult:
        timeout = self.repo.config.timeout or self.settings.agent_timeout
        sandbox, store = self.ctx.sandbox, self.ctx.store
        if not sandbox.contained:
            store.audit(self.task.id, "unsandboxed", UNSAFE_WARNING)
        meter = self.meter()
        return run_sandboxed(
            sandbox, self.tree, argv, prompt, self._env(),
            files=files, trusted=trusted, preset=preset,
            repository_allow=self.repo.config.allow_hosts, admit=meter.admit, meter=meter.record,
            log_path=self.ctx.workspaces.log_path(self.task.id),
            timeout=timeout, idle_timeout=min(self.settings.agent_idle_timeout, timeout),
            on_output=self._output,
            on_refused=self._refused,
            pgid_file=pgid_file_for(self.ctx.workspaces, os.getpid()),
        )  # fmt: skip

    def meter(self) -> TaskMeter:
        """The meter of this task's run and attempt as they stand, with its caps."""
        record = self.ctx.store.get(self.task.id)
        config, settings = self.repo.config, self.settings
        raised = spend.raised_cap(self.ctx.store.redis, self.task.repo_id, self.task.number)
        where = spend.Where(
            self.task.id, record.run if record else 0, record.attempt if record else 0,
            self.task.installation_id, self.task.repo, config.agent or settings.agent,
        )  # fmt: skip
        caps = Caps(
            task=budget.task_cap(settings.max_cost_per_task, config.max_cost_per_task, raised),
            day=settings.max_cost_per_day, repo_day=config.max_cost_per_day,
        )  # fmt: skip
        return TaskMeter(
            self.ctx.store.redis, where, settings.prices, caps,
            say=lambda line: self.ctx.store.append_log(self.task.id, [line]),
        )  # fmt: skip

    def _output(self, lines: list[str]) -> None:
        self.ctx.store.append_log(self.task.id, self.redactor.lines(lines))
        if self.heartbeat is not None:
            self.heartbeat.output()

    def _refused(self, line: str) -> None:
        # The host name is the agent's choice, and could carry a secret out.
        line = self.redactor.text(line)
        self.ctx.store.append_log(self.task.id, [line])
        self.ctx.store.audit(self.task.id, "egress refused", line)

    def shell(self, label: str, command: str) -> agent.AgentResult:
        self.ctx.store.audit(self.task.id, label, command)
        self.ctx.store.append_log(self.task.id, [f"$ {command}"])
        return self._process(["sh", "-c", command], "")

    def run_agent(self, prompt: str) -> agent.AgentResult:
        prompt_file = self.tree.task_dir / "prompt.md"
        prompt_file.write_text(prompt)
        # The task page shows the last prompt; issue text in it is shown escaped.
        self.ctx.store.set_prompt(self.task.id, self.redactor.text(prompt))
        config = self.repo.config
        name = config.agent or self.settings.agent
        command = config.agent_command if config.agent else self.settings.agent_command
        try:
            argv = agent.argv_for(name, command, prompt_file, self.tree.path)
            agent.check_keys(name, self.settings.agent_env, os.environ)
        except AgentConfigError as exc:
            raise TaskFailed(str(exc)) from None
        self.ctx.store.audit(self.task.id, "agent", " ".join(argv[:3]))
        try:
            # Only a repository's own `agent: command` is untrusted; presets and the
            # operator's AGENT_COMMAND may have their programs shown to the sandbox.
            trusted = config.agent != "command"
            preset = PRESETS.get(name)
            with self.heartbeat.beating() if self.heartbeat else nullcontext():
                result = self._process(argv, prompt, (prompt_file,), trusted, preset)
        except AgentConfigError as exc:
            raise TaskFailed(str(exc)) from None
        observe_agent(self.ctx.store.redis, result.seconds)
        if result.stopped:
            # The budget's refusal reaches the CLI as an API error; whatever it did with it,
            # the budget is the reason. What it had done is in its log.
            said = (
                result.stopped
                if result.stopped.startswith("stopped")
                else f"stopped: {result.stopped}"
            )
            self._changed_so_far()
            raise BudgetStopped(f"The agent {said}.", result.tail)
        if result.killed == "timeout":
            raise TaskFailed(
                f"The agent ran longer than {result.seconds:.0f}s and was stopped.", result.tail
            )
        if result.killed == "idle":
            raise TaskFailed(
                f"The agent printed nothing and changed nothing for "
                f"{self.settings.agent_idle_timeout}s and was judged stuck.",
                result.tail,
            )
        if result.exit_code != 0:
            said = result.complaint
            reason = f"The agent exited with status {result.exit_code}"
            raise TaskFailed(f"{reason}: {said}" if said else f"{reason}.", result.tail)
        return result

    def _changed_so_far(self) -> None:
        """Put in the task's log what the agent had changed when its budget stopped it (its
        work is not committed: the log is where it is kept)."""
        tree = self.tree
        # The agent decides how many paths there are: their listing is read with a cap.
        status, cut = git_capped(
            ["--git-dir", str(tree.gitdir), "--work-tree", str(tree.path),
             "status", "--porcelain", "--untracked-files=all"],
            tree.task_dir, CHANGED_LISTING_LIMIT,
        )  # fmt: skip
        paths = status.splitlines()[:-1] if cut else status.splitlines()
        shown = [protected.printable(line) for line in paths[:CHANGED_SHOWN]]
        more = [f"… and {len(paths) - CHANGED_SHOWN} more"] if len(paths) > CHANGED_SHOWN else []
        count = f"more than {len(paths)}" if cut else str(len(paths))
        lines = [f"forgehand: the agent had changed {count} paths when it was stopped:"]
        self.ctx.store.append_log(self.task.id, self.redactor.lines(lines + shown + more))

    def setup(self) -> None:
        if self.repo.config.setup:
            result = self.shell("setup", self.repo.config.setup)
            if not result.ok:
                raise TaskFailed(
                    f"The setup command `{self.repo.config.setup}` failed.", result.tail
                )

    def agent_then_tests(self, prompt: str) -> agent.AgentResult:
        """Run the agent; if `test` fails afterwards, show it the failure once more."""
        result = self.run_agent(prompt)
        test = self.repo.config.test
        if not test:
            return result
        checked = self.shell("test", test)
        if checked.ok:
            return result
        self.ctx.store.audit(self.task.id, "test failed", "feeding the failure back to the agent")
        result = self.run_agent(prompts.test_feedback_prompt(test, checked.tail))
        checked = self.shell("test", test)
        if not checked.ok:
            raise TaskFailed(
                f"The test command `{test}` still fails after the agent's fix.", checked.tail
            )
        return result

    def who(self) -> dict[str, str]:
        """The App's identity, which forgehand's commits carry."""
        return {
            "GIT_AUTHOR_NAME": self.identity.login,
            "GIT_AUTHOR_EMAIL": self.identity.email,
            "GIT_COMMITTER_NAME": self.identity.login,
            "GIT_COMMITTER_EMAIL": self.identity.email,
        }

    def take(self, message: str) -> str:
        """The agent's work as a commit in forgehand's git directory (jobs/boundary/handoff.py); the
        base when it changed nothing."""
        limits = Limits.of(self.settings)
        return handoff.take(self.ctx.sandbox, self.tree, message, self.who(), limits)

    def commit(self, message: str) -> list[str]:
        """Take the agent's work onto the branch: its commits that build on the base and its
        tree on top, handed over as data; return the commits made since the base."""
        tree = self.tree
        head = self.take(message)
        # The index stays at the base, which the tree still matches but for the agent's
        # changes: the next task's checkout of this tree rewrites only those.
        tree.git(["update-ref", "HEAD", head])
        diff, cut = git_capped(
            ["--git-dir", str(tree.gitdir), "diff", "--no-ext-diff", "--no-textconv",
             f"{tree.base}..{head}"],
            tree.task_dir, DIFF_LIMIT,
        )  # fmt: skip
        if cut:
            diff += f"\n(the diff is longer than {DIFF_LIMIT} bytes; the rest is not shown)"
        self.ctx.store.set_diff(self.task.id, self.redactor.text(diff))
        log, _ = git_capped(
            ["--git-dir", str(tree.gitdir), "log", f"--max-count={MAX_COMMITS_LISTED}",
             "--format=%h %s", f"{tree.base}..{head}"],
            tree.task_dir, DIFF_LIMIT,
        )  # fmt: skip
        return [line for line in log.splitlines() if line.strip()]

    def check_protected(self, base: str | None = None) -> None:
        """Refuse the push if the change since `base` touches a protected path by any route:
        the whole change from the base, and every commit on the way, a merge included where
        it differs from all its parents (a file added then removed still counts)."""
        globs = self.repo.config.protected_paths
        if not globs:
            return
        since = base or self.tree.base
        hit = protected.violations(self.changed_names(since, "HEAD"), globs)
        if hit:
            raise TaskFailed(
                "The agent changed protected paths, so nothing was pushed: "
                + ", ".join(f"`{protected.printable(f)}`" for f in hit)
                + ". Set `protected_paths` in .github/forgehand.yml to allow them."
            )

    def changed_names(self, since: str, head: str, commits: bool = True) -> set[str]:
        """Every path the change from `since` to `head` touches: the two trees compared and,
        with `commits`, each commit between them on its own; both sides of a rename,
        NUL-separated so that no name is quoted or split."""
        where = ["--git-dir", str(self.tree.gitdir)]
        # A gitlink is a change too (jobs/boundary/own_git.py has diffs ignore submodules).
        flags = ["--no-renames", "--ignore-submodules=none", "--name-only", "-z"]
        whole = ["diff", *flags, since, head]
        each = ["log", "-c", *flags, "--format=", f"{since}..{head}"]
        names: set[str] = set()
        for args in (whole, each) if commits else (whole,):
            out, cut = git_capped([*where, *args], self.tree.task_dir, DIFF_LIMIT)
            if cut:
                raise TaskFailed("The change is too large to check, so nothing was pushed.")
            names |= {n for n in out.split("\0") if n}
        return names

    def push(self, api: Installation) -> None:
        """Push without force; if someone pushed to the branch meanwhile, replay the work on
        top of theirs and push again."""
        tree, url = self.tree, self.repo.clone_url
        branch = tree.branch
        self.ctx.store.audit(self.task.id, "push", branch)
        for _ in range(PUSH_TRIES):
            try:
                tree.git(["push", "--quiet", url, f"HEAD:refs/heads/{branch}"], token=api.token())
                return
            except GitError as exc:
                missing = permission_refused(str(exc))
                if missing:
                    raise TaskFailed(missing) from None
                if not any(word in str(exc) for word in ("rejected", "fetch first", "non-fast")):
                    raise TaskFailed(f"Pushing {branch} failed: {exc}") from None
            self.ctx.store.audit(self.task.id, "rebase", f"{branch} moved while the agent worked")
            tree.git(["fetch", "--quiet", url, f"refs/heads/{branch}"], token=api.token())
            theirs = tree.git(["rev-parse", "FETCH_HEAD"]).strip()
            tree.git(["read-tree", "--reset", "HEAD"])  # commit() left it at the base
            try:
                tree.git(["rebase", "--quiet", theirs], env=self._env())
            except GitError:
                tree.git(["rebase", "--abort"], check=False)
                raise TaskFailed(
                    f"Someone pushed to {branch} while the agent worked, and its changes "
                    "conflict with theirs; nothing was pushed."
                ) from None
            self.check_protected(theirs)
        raise TaskFailed(f"Pushing {branch} was rejected {PUSH_TRIES} times; nothing was forced.")


_WORKFLOW_REFUSAL = re.compile(
    r"create or update workflow `([^`]*)` without `workflows` permission"
)


def permission_refused(error: str) -> str:
    """Why GitHub refused a push for a permission the App lacks, with what to change; "" when
    it refused for something else."""
    found = _WORKFLOW_REFUSAL.search(error)
    if not found:
        return ""
    path = protected.printable(found[1])[:200]
    return (
        f"GitHub refused the push: the change touches the workflow `{path}`, and the App has "
        "no `workflows` permission, which GitHub requires for any change under "
        '.github/workflows/. To allow it, give the App "Workflows: Read and write" in its '
        "settings (Permissions & events), accept the new permission on the installation, then "
        f"retry; or keep `.github/workflows/**` in `protected_paths` so such changes are never "
        "pushed. Nothing was pushed."
    )


@contextmanager
def reported(status: StatusComment, ctx: Context, task: Task) -> Iterator[None]:
    """Turn a task failure into the status comment's last word, then re-raise it."""
    try:
        yield
    except TaskFailed as exc:
        log = exc.log or "\n".join(ctx.store.log_tail(task.id, report.EXCERPT_LINES))
        status.update(f"❌ {exc}", log=log)
        raise
    except GitHubError as exc:
        if exc.permanent:
            status.update(f"❌ {exc}")
            raise TaskFailed(str(exc)) from exc
        raise
    except HandedBack:
        status.update(f"⏸️ {HANDED_BACK}.")
        raise


# --- pull requests ------------------------------------------------------------------------


@dataclass(frozen=True)
class PullRequest:
    number: int
    branch: str
    head_sha: str
    state: str
    merged: bool
    fork: bool
    author: str


def read_pull(api: Installation, task: Task, number: int) -> PullRequest:
    data = api.get(f"/repos/{task.repo}/pulls/{number}")
    head = data["head"]
    return PullRequest(
        number=number,
        branch=head["ref"],
        head_sha=head["sha"],
        state=data["state"],
        merged=bool(data.get("merged")),
        fork=(head.get("repo") or {}).get("id") != task.repo_id,
        author=(data.get("user") or {}).get("login", ""),
    )


def find_pull(api: Installation, task: Task) -> int | None:
    """The open pull request whose head is the task's branch in its own repository."""
    owner = task.repo.split("/")[0]
    found = api.get(f"/repos/{task.repo}/pulls", head=f"{owner}:{task.branch}", state="open")
    for data in found or []:
        if data["head"]["ref"] == task.branch:
            return int(data["number"])
    return None


@dataclass(frozen=True)
class Change:
    commits: list[str]
    head: str  # the pushed commit, or "" when the agent changed nothing
    result: agent.AgentResult


def change_pull_request(
    task: Task, ctx: Context, api: Installation, repo: Repo, pr: PullRequest, prompt: str,
    message: str, check: CheckRun,
) -> Change:  # fmt: skip
    """Run the agent on the pull request's branch at its head and push what it changes,
    showing its progress on the task's check run."""
    identity = ctx.app.identity(api)
    ctx.store.set_app_slug(identity.slug)
    if pr.author != identity.login:
        # An `agent/` branch someone else opened is theirs: the App pushes only to its own.
        raise TaskFailed(
            f"#{pr.number} was opened by {pr.author}, not by the App; nothing was done."
        )
    with ctx.workspaces.worktree(
        task.id, task.repo_id, repo.clone_url, api.token(), pr.branch, pr.branch,
        new_branch=False, identity=(identity.login, identity.email),
        installation=task.installation_id,
    ) as tree:  # fmt: skip
        ctx.store.audit(task.id, "worktree", f"{pr.branch} at {tree.base[:7]}")
        work = Run(task, ctx, repo, tree, identity, Heartbeat(check.progress))
        work.setup()
        result = work.agent_then_tests(prompt)
        commits = work.commit(message)
        if not commits:
            return Change([], "", result)
        work.check_protected()
        work.push(api)
        head = tree.git(["rev-parse", "HEAD"]).strip()
    return Change(commits, head, result)


def check_sender(api: Installation, task: Task, repo: Repo) -> None:
    """Stop unless whoever started the task may: write access, or an allowed bot."""
    allowed = {b.removesuffix("[bot]") for b in repo.config.allowed_bots}
    if task.sender.endswith("[bot]") and task.sender.removesuffix("[bot]") in allowed:
        return
    if not has_write_access(api, task.repo, task.sender):
        raise TaskFailed(f"{task.sender} has no write access to {task.repo}; nothing was done.")


def prepare(task: Task, ctx: Context, check: bool = True) -> tuple[Installation, Repo]:
    """The installation client and the repository, once the sender is known to be allowed."""
    api = ctx.app.installation(task.installation_id)
    try:
        repo = read_repo(api, ctx, task)
        if check:
            check_sender(api, task, repo)
    except GitHubError as exc:
        if exc.permanent:
            raise TaskFailed(str(exc)) from exc
        raise
    # The operator's day cap was checked before the task began (jobs/day_budget.py); the
    # repository's own is known only now that its config is read.
    repo_day = repo.config.max_cost_per_day
    if repo_day is not None and task.kind in AGENT_KINDS:
        why = day_refusal(ctx.store.redis, task.installation_id, task.repo, Caps(repo_day=repo_day))
        if why is not None:
            raise DayBudgetReached(why)
    if task.number:
        note_title(api, ctx, task)
    return api, repo


def note_title(api: Installation, ctx: Context, task: Task) -> None:
    """Keep the issue's or pull request's title for the dashboard, which never asks GitHub."""
    try:
        data = api.get(f"/repos/{task.repo}/issues/{task.number}")
    except GitHubError as exc:
        ctx.store.audit(task.id, "title not read", str(exc))
        return
    title = redactor_for(ctx.settings, api.token()).text(str(data.get("title") or ""))
    ctx.store.note_item(task.repo_id, task.number, title, "pull_request" in data)


def status_for(api: Installation, ctx: Context, task: Task) -> StatusComment:
    """The task's status comment, which redacts what it posts of the agent's words."""
    return StatusComment(api, ctx.store, task, redactor_for(ctx.settings, api.token()))


def check_run_for(api: Installation, ctx: Context, task: Task, sha: str) -> CheckRun:
    """The task's `forgehand` check run on `sha`, which redacts what it shows."""
    url = dashboard_url(ctx.settings.web_url, task.id)
    return CheckRun(api, ctx.store, task, sha, redactor_for(ctx.settings, api.token()), url)


def config_problems(repo: Repo) -> str:
    if not repo.problems:
        return ""
    items = "\n".join(f"- {p}" for p in repo.problems)
    return f"⚠️ `{CONFIG_PATH}` has problems; defaults are used for those settings:\n{items}"

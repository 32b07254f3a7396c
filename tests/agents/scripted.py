"""A stand-in coding agent for tests: reads its task on stdin, acts by the mode it is given.

Usage: scripted.py MODE [--out FILE] [--mark DIR] [--origin PATH] [--say=TEXT] [--calls N]

--say prints TEXT before the mode acts: what a hostile agent might show of what it found
(`=` keeps a TEXT that starts with `-`, such as a PEM key, from reading as an option).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

FIXED = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a * b\n"
# What a planning agent writes: three rows, `docs` after `fix-add`, `three` colliding with it.
PLAN = """\
summary: Fix add() first; the third argument and the docs build on calc.py in turn.
issues:
  - key: fix-add
    title: add() subtracts
    body: Make add() return a + b.
    files: [calc.py]
    size: S
  - key: three
    title: add() takes three numbers
    body: Give add() an optional third argument.
    files: [calc.py]
    size: M
  - key: docs
    title: Document add()
    body: Say in README.md what add() does.
    files: [README.md, docs/usage.md]
    depends_on: [fix-add]
    size: S
"""


def ask_model(prompt: str) -> str | None:
    """One streamed call; its text, or None having printed the API's error."""
    request = urllib.request.Request(
        os.environ["OPENAI_BASE_URL"].rstrip("/") + "/chat/completions",
        data=json.dumps({"model": os.environ.get("MODEL", "gpt-4o"), "stream": True,
                         "messages": [{"role": "user", "content": prompt[:2000]}]}).encode(),
        headers={"Authorization": f"Bearer {os.environ['OPENAI_API_KEY']}",
                 "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            text: str = answer.read().decode()
    except urllib.error.HTTPError as exc:
        print(f"error: the model API answered {exc.code}: {exc.read().decode()[:500]}", flush=True)
        return None
    print(f"model: {len(text)} bytes", flush=True)
    return text


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode")
    parser.add_argument("--out")
    parser.add_argument("--mark")
    parser.add_argument("--origin")
    parser.add_argument("--say")
    parser.add_argument("--calls", type=int, default=1)
    args = parser.parse_args()
    prompt = sys.stdin.read()
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {"env": dict(os.environ), "prompt": prompt, "pid": os.getpid(), "cwd": os.getcwd()}
            )
        )
    if args.say:
        print(args.say, flush=True)
    mode = args.mode
    if mode == "fix":
        Path("calc.py").write_text(FIXED)
        print("Changed add() to return a + b.")
    elif mode == "tweak":
        # A change every time, never a fix: CI that stays red.
        with Path("calc.py").open("a") as f:
            f.write(f"# attempt at {time.time()}\n")
        print("Tweaked calc.py.")
    elif mode in ("race", "race-conflict"):
        # A person pushes to the same branch of --origin while the agent works.
        branch = subprocess.run(
            ["git", "branch", "--show-current"], capture_output=True, text=True, check=True
        ).stdout.strip()
        human = Path(args.mark)
        who = {
            "GIT_AUTHOR_NAME": "Hu",
            "GIT_AUTHOR_EMAIL": "hu@example.com",
            "GIT_COMMITTER_NAME": "Hu",
            "GIT_COMMITTER_EMAIL": "hu@example.com",
        }
        env = dict(os.environ) | who
        subprocess.run(
            ["git", "clone", "-q", "-b", branch, args.origin, str(human)], check=True, env=env
        )
        if mode == "race-conflict":
            (human / "calc.py").write_text("def add(a, b):\n    return b + a\n")
        else:
            (human / "NOTES.md").write_text("human\n")
        for step in (
            ["add", "-A"],
            ["commit", "-qm", "human change"],
            ["push", "-q", "origin", branch],
        ):
            subprocess.run(["git", *step], cwd=human, check=True, env=env)
        Path("calc.py").write_text(Path("calc.py").read_text() + "# agent was here\n")
        print("changed calc.py while a human pushed")
    elif mode == "model":
        # A command agent that asks its model, as a CLI would: a streamed Chat Completions
        # call to OPENAI_BASE_URL with OPENAI_API_KEY, through the proxy its environment names.
        Path("calc.py").write_text(FIXED)
        for _ in range(args.calls):
            said = ask_model(prompt)
            if said is None:
                return 1
        print("Fixed add() as the model said.")
    elif mode in ("plan", "bad-plan", "no-plan"):
        # A planner that also edits code: forgehand must discard that and push nothing.
        Path("calc.py").write_text(WRONG)
        if mode != "no-plan":
            text = PLAN if mode == "plan" else PLAN.replace("size: M", "size: XXL", 1)
            Path("forgehand-plan.yml").write_text(text)
        print("Planned three rows." if mode == "plan" else "I could not decide.")
    elif mode == "noop":
        print("Nothing needed changing.")
    elif mode == "fail":
        print("error: the model is unavailable", flush=True)
        return 3
    elif mode in ("hang", "forever"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        if args.out:
            Path(args.out + ".pids").write_text(f"{os.getpid()} {child.pid}")
        print("thinking…", flush=True)
        while True:
            time.sleep(0.1)
            if mode == "forever":
                print("still thinking…", flush=True)
    elif mode == "commit":
        Path("calc.py").write_text(FIXED)
        subprocess.run(["git", "commit", "-qam", "Fix add() (by the agent)"], check=True)
        print("Committed the fix myself.")
    elif mode == "protected":
        Path("calc.py").write_text(FIXED)
        Path(".github/workflows/ci.yml").write_text("on: push\njobs: {}\n")
        print("Also tidied the workflow.")
    elif mode == "feedback":
        fixed = "test command failed" in prompt
        Path("calc.py").write_text(FIXED if fixed else WRONG)
        print("Second try." if fixed else "First try.")
    elif mode == "push":
        Path("calc.py").write_text(FIXED)
        tried = subprocess.run(
            ["git", "push", "origin", "HEAD:refs/heads/sneaky"], capture_output=True
        )
        print(f"push exit {tried.returncode}")
    elif mode == "barrier":
        # Two agents meet here: each proves the other is running at the same time.
        meeting = Path(args.mark)
        meeting.mkdir(exist_ok=True)
        (meeting / str(os.getpid())).write_text(os.getcwd())
        deadline = time.monotonic() + 30
        while len(list(meeting.iterdir())) < 2:
            if time.monotonic() > deadline:
                print("the other task never started", flush=True)
                return 4
            time.sleep(0.05)
        Path("calc.py").write_text(FIXED)
        Path("cwd.txt").write_text(os.getcwd())
        print("done together")
    else:
        print(f"unknown mode {mode}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

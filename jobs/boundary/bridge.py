"""Inside the sandbox: the bridge from the agent's loopback to forgehand's egress proxy.

Run as `python3 -I -S bridge.py PORT SOCKET -- ARGV...`. It listens on 127.0.0.1:PORT, then
forks: the child relays each connection to the Unix socket SOCKET (the proxy, outside the
sandbox); the parent becomes the agent (exec), keeping its pid, stdio and exit code. The child
exits when the agent does.

Every agent start waits for this script, so it imports only C modules (`_socket`, `_thread`,
`_signal`): `socket`, `threading` and `signal` would pull in enum, selectors and collections,
which cost more than the rest of the sandbox's start. Nothing is imported from forgehand: it
runs with the sandbox's view.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # the C half of `signal`, no stubs
import _socket
import _thread
import os
import sys
import time

CHUNK = 65536
# How often the bridge looks whether the agent is still there.
WATCH = 0.2
SHUT_WR, SHUT_RDWR = 1, 2


def pipe(source: _socket.socket, sink: _socket.socket, done: _thread.LockType) -> None:
    """Copy until source ends, then pass the end on as a half-close; on an error end both."""
    try:
        while data := source.recv(CHUNK):
            sink.sendall(data)
        sink.shutdown(SHUT_WR)
    except OSError:
        for sock in (source, sink):
            try:  # noqa: SIM105 - contextlib would cost the start what _socket saves
                sock.shutdown(SHUT_RDWR)
            except OSError:
                pass
    finally:
        done.release()


def connection(client: _socket.socket, path: str) -> None:
    upstream = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        upstream.connect(path)
    except OSError:
        client.close()
        upstream.close()
        return
    back = _thread.allocate_lock()
    back.acquire()
    _thread.start_new_thread(pipe, (upstream, client, back))
    forth = _thread.allocate_lock()
    forth.acquire()
    pipe(client, upstream, forth)
    back.acquire()
    client.close()
    upstream.close()


def watch(agent: int) -> None:
    # The agent keeps this process's parent pid across exec; once it exits we are reparented.
    while os.getppid() == agent:
        time.sleep(WATCH)
    os._exit(0)


def serve(listener: _socket.socket, path: str, agent: int) -> None:
    # Holding none of the agent's stdio, the bridge never keeps a reader of its output waiting.
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    _thread.start_new_thread(watch, (agent,))
    while True:
        fd, _ = listener._accept()  # type: ignore[attr-defined]  # what socket.accept wraps
        client = _socket.socket(fileno=fd)
        _thread.start_new_thread(connection, (client, path))


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--" or not argv[0].isdigit():
        print("usage: bridge.py PORT SOCKET -- ARGV...", file=sys.stderr)
        return 2
    port, path, program = int(argv[0]), argv[1], argv[3:]
    listener = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    listener.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    # Listening before the fork: the agent's first connection waits in the backlog.
    listener.listen(128)
    agent = os.getpid()
    if os.fork() == 0:
        try:
            serve(listener, path, agent)
        finally:
            os._exit(0)
    listener.close()
    # Python ignores these; an ignored signal stays ignored across exec, and the agent's own
    # pipelines (`... | head`) rely on SIGPIPE.
    _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)
    _signal.signal(_signal.SIGXFSZ, _signal.SIG_DFL)
    try:
        os.execvp(program[0], program)
    except (FileNotFoundError, NotADirectoryError):
        print(f"forgehand: agent program not found: {program[0]}", file=sys.stderr)
        return 127
    except OSError:
        print(f"forgehand: agent program is not executable: {program[0]}", file=sys.stderr)
        return 126


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Inside the sandbox: the bridge from the agent's loopback to forgehand's egress proxy.

Run as `python3 -I -S bridge.py PORT SOCKET -- ARGV...`. It listens on 127.0.0.1:PORT, then
forks: the child relays each connection to the Unix socket SOCKET (the proxy, outside the
sandbox); the parent becomes the agent (exec), keeping its pid, stdio and exit code. The child
exits when the agent does.

Standard library only, and nothing imported from forgehand: it runs with the sandbox's view,
and every agent start waits for it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time

CHUNK = 65536
# How often the bridge looks whether the agent is still there.
WATCH = 0.2


def pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy until source ends, then pass the end on as a half-close; on an error end both."""
    try:
        while data := source.recv(CHUNK):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
        return
    except OSError:
        pass
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def connection(client: socket.socket, path: str) -> None:
    with client, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as upstream:
        try:
            upstream.connect(path)
        except OSError:
            return
        back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
        back.start()
        pipe(client, upstream)
        back.join()


def watch(agent: int) -> None:
    # The agent keeps this process's parent pid across exec; once it exits we are reparented.
    while os.getppid() == agent:
        time.sleep(WATCH)
    os._exit(0)


def serve(listener: socket.socket, path: str, agent: int) -> None:
    # Holding none of the agent's stdio, the bridge never keeps a reader of its output waiting.
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    threading.Thread(target=watch, args=(agent,), daemon=True).start()
    while True:
        client, _ = listener.accept()
        threading.Thread(target=connection, args=(client, path), daemon=True).start()


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--" or not argv[0].isdigit():
        print("usage: bridge.py PORT SOCKET -- ARGV...", file=sys.stderr)
        return 2
    port, path, program = int(argv[0]), argv[1], argv[3:]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
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

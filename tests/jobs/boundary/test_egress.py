"""The egress proxy and the bridge, with real sockets, a real origin server and real processes."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from jobs.boundary import egress
from jobs.boundary.egress import (
    MAX_CONNECTIONS,
    NOT_ALLOWED,
    OWN_SERVICE,
    BadRequest,
    EgressProxy,
    Policy,
    parse_request,
    refusal_line,
)

BRIDGE = Path(__file__).resolve().parents[3] / "jobs" / "boundary" / "bridge.py"
TIMEOUT = 10.0
LOCAL = "local or private address"
PUBLIC = ["93.184.216.34"]


@pytest.mark.parametrize(
    ("allow", "never", "host", "port", "addresses", "expected"),
    [
        (("example.com",), (), "example.com", 443, PUBLIC, None),
        (("example.com",), (), "example.com", 80, PUBLIC, None),
        (("example.com",), (), "example.com", 8443, PUBLIC, NOT_ALLOWED),
        (("example.com:8443",), (), "example.com", 8443, PUBLIC, None),
        (("example.com:8443",), (), "example.com", 443, PUBLIC, NOT_ALLOWED),
        (("EXAMPLE.com.",), (), "Example.COM.", 443, PUBLIC, None),
        (("example.com",), (), "other.com", 443, PUBLIC, NOT_ALLOWED),
        ((), (), "example.com", 443, PUBLIC, NOT_ALLOWED),
        (("*.example.com",), (), "api.example.com", 443, PUBLIC, None),
        (("*.example.com",), (), "a.b.example.com", 443, PUBLIC, None),
        (("*.example.com",), (), "example.com", 443, PUBLIC, NOT_ALLOWED),
        (("*.example.com",), (), "badexample.com", 443, PUBLIC, NOT_ALLOWED),
        (("*",), (), "anything.org", 443, PUBLIC, None),
        (("*",), (), "1.1.1.1", 443, (), None),
        (("*",), (), "anything.org", 22, PUBLIC, NOT_ALLOWED),
        (("*:8080",), (), "anything.org", 8080, PUBLIC, None),
        # A wildcard never reaches the machine or its network, whatever the name.
        (("*",), (), "127.0.0.1", 443, (), LOCAL),
        (("*",), (), "sneaky.example", 443, ["127.0.0.1"], LOCAL),
        (("*",), (), "sneaky.example", 443, ["93.184.216.34", "10.0.0.5"], LOCAL),
        (("*.example.com",), (), "db.example.com", 443, ["192.168.1.2"], LOCAL),
        (("*",), (), "::ffff:127.0.0.1", 443, (), LOCAL),
        (("*",), (), "0.0.0.0", 80, (), LOCAL),
        (("*",), (), "169.254.169.254", 80, (), LOCAL),
        (("*",), (), "224.0.0.1", 80, (), LOCAL),
        (("*",), (), "fe80::1", 80, (), LOCAL),
        (("*",), (), "100.64.0.1", 80, (), LOCAL),
        (("*",), (), "localhost", 443, ["127.0.0.1", "::1"], LOCAL),
        # Named exactly, a local server is reachable.
        (("127.0.0.1:8080",), (), "127.0.0.1", 8080, ["127.0.0.1"], None),
        (("127.0.0.1:8080",), (), "127.0.0.1", 8081, ["127.0.0.1"], NOT_ALLOWED),
        (("localhost:8080",), (), "localhost", 8080, ["127.0.0.1", "::1"], None),
        (("models.internal",), (), "models.internal", 443, ["10.1.2.3"], None),
        (("[::1]:8080",), (), "::1", 8080, ["::1"], None),
        # The worker's own services, never, by name or by address.
        (("*", "127.0.0.1:6379"), {("127.0.0.1", 6379)}, "127.0.0.1", 6379, (), OWN_SERVICE),
        (("localhost:6379",), {("localhost", 6379)}, "LOCALHOST.", 6379, (), OWN_SERVICE),
        (("r.example:6379",), {("127.0.0.1", 6379)}, "r.example", 6379, ["127.0.0.1"], OWN_SERVICE),
        (("[::ffff:127.0.0.1]:6379",), {("127.0.0.1", 6379)}, "::ffff:127.0.0.1", 6379, (),
         OWN_SERVICE),
        (("127.0.0.1:6380",), {("127.0.0.1", 6379)}, "127.0.0.1", 6380, (), None),
        # Their ports stay closed on every local address (a web process on 0.0.0.0).
        (("10.0.0.7:3000",), {("127.0.0.1", 3000)}, "10.0.0.7", 3000, (), OWN_SERVICE),
        (("host.lan:3000",), {("127.0.0.1", 3000)}, "host.lan", 3000, ["192.168.0.9"],
         OWN_SERVICE),
    ],
)  # fmt: skip
def test_policy(
    allow: tuple[str, ...],
    never: set[tuple[str, int]],
    host: str,
    port: int,
    addresses: list[str],
    expected: str | None,
) -> None:
    reason = Policy(allow, frozenset(never)).decide(host, port, addresses)
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason


def test_only_the_operators_entries_open_local_addresses() -> None:
    repository = ("127.0.0.1:8080", "models.internal", "api.example.com")
    policy = Policy(("127.0.0.1:9000", *repository), local=("127.0.0.1:9000",))
    assert policy.decide("127.0.0.1", 9000, ["127.0.0.1"]) is None
    assert LOCAL in (policy.decide("127.0.0.1", 8080, ["127.0.0.1"]) or "")
    assert LOCAL in (policy.decide("models.internal", 443, ["10.1.2.3"]) or "")
    assert policy.decide("api.example.com", 443, PUBLIC) is None


@pytest.mark.parametrize("entry", ["", "host:http", "host:0", "host:70000", "a*.b", "*.", "**"])
def test_policy_refuses_a_malformed_entry(entry: str) -> None:
    with pytest.raises(ValueError):
        Policy((entry,))


def test_refusal_lines_say_how_to_allow_except_for_own_services() -> None:
    assert refusal_line("evil.example", 443, NOT_ALLOWED) == (
        "forgehand: refused a connection to evil.example:443 (not in AGENT_ALLOW_HOSTS); "
        "to allow it, add it to AGENT_ALLOW_HOSTS or to allow_hosts in .github/forgehand.yml"
    )
    own = refusal_line("127.0.0.1", 6379, OWN_SERVICE)
    assert "worker's own services" in own and "never be allowed" in own
    assert "to allow it" not in own


def test_an_absolute_request_is_rewritten_for_the_origin() -> None:
    request = parse_request(
        b"POST http://Example.com:8080?q=1#frag HTTP/1.1\r\nHost: wrong\r\n"
        b"Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\n"
        b"Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nContent-Length: 3"
    )
    assert (request.method, request.host, request.port) == ("POST", "Example.com", 8080)
    assert request.head == (
        b"POST /?q=1 HTTP/1.1\r\nHost: Example.com:8080\r\nContent-Length: 3\r\n"
        b"Connection: close\r\n\r\n"
    )
    assert parse_request(b"GET http://example.com HTTP/1.0").head.startswith(b"GET / HTTP/1.0")
    assert parse_request(b"CONNECT [::1]:443 HTTP/1.1").host == "::1"


@pytest.mark.parametrize(
    "head",
    [
        b"GET /relative HTTP/1.1",
        b"GET https://example.com/ HTTP/1.1",
        b"GET http://user@example.com/ HTTP/1.1",
        b"CONNECT example.com HTTP/1.1",
        b"CONNECT example.com:99999 HTTP/1.1",
        b"GET http://example.com/ SPDY/3",
        b"GET  http://example.com/ HTTP/1.1",
        b"GET http://example.com/ HTTP/1.1\r\nno colon",
        b"GET http://example.com/ HTTP/1.1\r\n folded: x",
        b"GET http://example.com/ HTTP/1.1\r\nX: a\rb",
    ],
)
def test_a_malformed_request_is_refused(head: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_request(head)


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.answer(b"")

    def do_POST(self) -> None:
        self.answer(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

    def answer(self, body: bytes) -> None:
        text = (
            f"{self.command} {self.path} host={self.headers['Host']} "
            f"connection={self.headers['Connection']} proxy={self.headers['Proxy-Connection']} "
            f"body={body.decode()}"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def origin() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(TIMEOUT)


@pytest.fixture
def sock() -> Iterator[Path]:
    # Not tmp_path: a Unix socket's path must stay under about a hundred bytes.
    with tempfile.TemporaryDirectory(prefix="fh-") as scratch:
        yield Path(scratch) / "egress.sock"


@contextmanager
def proxy(
    path: Path, *allow: str, never: frozenset[tuple[str, int]] = frozenset()
) -> Iterator[list[str]]:
    lines: list[str] = []
    with EgressProxy(path, Policy(allow, never), lines.append):
        yield lines


def connect(path: Path) -> socket.socket:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(TIMEOUT)
    try:
        client.connect(str(path))
    except OSError:
        client.close()
        raise
    return client


def read_head(client: socket.socket) -> bytes:
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = client.recv(1)
        assert byte, f"closed after {head!r}"
        head += byte
    return head


def read_all(client: socket.socket) -> bytes:
    data = b""
    # A peer that closes with some of what we sent unread resets the connection after its
    # answer, as the proxy does when it refuses before reading everything.
    with contextlib.suppress(ConnectionResetError):
        while chunk := client.recv(65536):
            data += chunk
    return data


def ask(path: Path, request: bytes) -> bytes:
    with connect(path) as client:
        client.sendall(request)
        return read_all(client)


def get(target: str) -> bytes:
    return f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode()


def test_connect_to_an_allowed_host_relays_both_ways(sock: Path, origin: int) -> None:
    with proxy(sock, f"127.0.0.1:{origin}") as lines, connect(sock) as client:
        client.sendall(get(f"127.0.0.1:{origin}"))
        assert read_head(client) == b"HTTP/1.1 200 Connection established\r\n\r\n"
        client.sendall(b"GET /tunnel HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = read_all(client)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"GET /tunnel host=x connection=close proxy=None body=")
    assert lines == []


def test_bytes_sent_with_the_connect_head_reach_the_origin(sock: Path, origin: int) -> None:
    request = get(f"127.0.0.1:{origin}") + b"GET /early HTTP/1.1\r\nHost: x\r\n\r\n"
    with proxy(sock, f"127.0.0.1:{origin}"), connect(sock) as client:
        client.sendall(request)
        client.shutdown(socket.SHUT_WR)  # the response still arrives after a half-close
        answer = read_all(client)
    assert answer.startswith(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 ")
    assert b"GET /early host=x" in answer


def test_an_absolute_form_request_is_forwarded(sock: Path, origin: int) -> None:
    request = (
        f"POST http://127.0.0.1:{origin}/echo?x=1 HTTP/1.1\r\nHost: wrong\r\n"
        "Proxy-Connection: keep-alive\r\nContent-Length: 5\r\n\r\nhello"
    ).encode()
    with proxy(sock, f"127.0.0.1:{origin}"):
        answer = ask(sock, request)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(
        f"POST /echo?x=1 host=127.0.0.1:{origin} connection=close proxy=None body=hello".encode()
    )


def test_a_refused_host_gets_403_and_one_line(sock: Path) -> None:
    with proxy(sock, "example.com") as lines:
        answer = ask(sock, get("evil.example:443"))
    assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert lines == [refusal_line("evil.example", 443, NOT_ALLOWED)]
    assert answer.endswith(lines[0].encode() + b"\n")


def test_a_refused_absolute_request_gets_403(sock: Path) -> None:
    with proxy(sock, "example.com") as lines:
        answer = ask(sock, b"GET http://evil.example/x HTTP/1.1\r\nHost: evil.example\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert len(lines) == 1 and "evil.example:80" in lines[0]


def test_the_workers_own_services_are_refused_even_under_star(sock: Path, origin: int) -> None:
    never = frozenset({("127.0.0.1", origin)})
    with proxy(sock, "*", f"127.0.0.1:{origin}", f"localhost:{origin}", never=never) as lines:
        by_address = ask(sock, get(f"127.0.0.1:{origin}"))
        by_name = ask(sock, get(f"localhost:{origin}"))
    assert by_address.startswith(b"HTTP/1.1 403 ") and by_name.startswith(b"HTTP/1.1 403 ")
    assert len(lines) == 2
    assert all("worker's own services" in line for line in lines)


def test_star_does_not_reach_loopback_unless_named(sock: Path, origin: int) -> None:
    with proxy(sock, f"*:{origin}") as lines:
        answer = ask(sock, get(f"127.0.0.1:{origin}"))
    assert answer.startswith(b"HTTP/1.1 403 ")
    assert len(lines) == 1 and LOCAL in lines[0] and f"127.0.0.1:{origin}" in lines[0]


def test_an_unresolvable_host_gets_502(sock: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_host(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    # The machine's resolver may be slow or absent; the proxy's answer is what is under test.
    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    with proxy(sock, "*") as lines:
        answer = ask(sock, get("nothing.invalid:443"))
    assert answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert lines == ["forgehand: could not resolve nothing.invalid (asked for nothing.invalid:443)"]


def test_a_refused_name_is_never_looked_up(sock: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    looked_up: list[object] = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: looked_up.append(args))
    with proxy(sock, "example.com"):
        assert ask(sock, get("secret-data.attacker.example:443")).startswith(b"HTTP/1.1 403 ")
    assert looked_up == []


def test_a_malformed_or_oversized_request_gets_400(sock: Path) -> None:
    with proxy(sock, "*") as lines:
        malformed = ask(sock, b"GET /relative HTTP/1.1\r\n\r\n")
        huge = ask(sock, b"GET http://example.com/ HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n")
    assert malformed.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert huge.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"too large" in huge
    assert lines == []


def test_the_socket_is_open_to_every_uid(sock: Path) -> None:
    with proxy(sock):
        assert stat.S_IMODE(sock.stat().st_mode) == 0o666
    assert not sock.exists()


def test_too_many_connections_get_503_and_close_ends_them(sock: Path) -> None:
    running = EgressProxy(sock, Policy(), lambda line: None)
    with running, contextlib.ExitStack() as stack:
        idle = [stack.enter_context(connect(sock)) for _ in range(MAX_CONNECTIONS)]
        answer = ask(sock, get("example.com:443"))
        started = time.monotonic()
        running.close()
        assert time.monotonic() - started < 3
        assert all(client.recv(1) == b"" for client in idle)
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")


def test_close_ends_an_open_tunnel_promptly(sock: Path, origin: int) -> None:
    running = EgressProxy(sock, Policy((f"127.0.0.1:{origin}",)), lambda line: None)
    with running, connect(sock) as client:
        client.sendall(get(f"127.0.0.1:{origin}"))
        read_head(client)
        started = time.monotonic()
        running.close()
        assert time.monotonic() - started < 3
        assert client.recv(1) == b""
        assert not sock.exists()
        with pytest.raises(OSError):
            connect(sock).close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def bridge(port: int, path: Path, *argv: str) -> tuple[int, int, str, str]:
    """Runs the bridge with argv as the agent: its pid, exit code, stdout and stderr."""
    command = [sys.executable, "-I", "-S", str(BRIDGE), str(port), str(path), "--", *argv]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:
        try:
            out, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            raise
        return p.pid, p.returncode, out, err


AGENT = """
import os, socket, sys
port, target = int(sys.argv[1]), sys.argv[2]
with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
    s.sendall(f"CONNECT {target} HTTP/1.1\\r\\nHost: {target}\\r\\n\\r\\n".encode())
    head = b""
    while not head.endswith(b"\\r\\n\\r\\n"):
        head += s.recv(1)
    s.sendall(b"GET /via-bridge HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
    data = b""
    while chunk := s.recv(65536):
        data += chunk
print(os.getpid())
print(head.split(b"\\r\\n")[0].decode())
print(data.split(b"\\r\\n\\r\\n", 1)[1].decode())
sys.exit(3)
"""


def test_the_bridge_carries_the_agents_connections(sock: Path, origin: int) -> None:
    port = free_port()
    with proxy(sock, f"127.0.0.1:{origin}"):
        pid, code, out, err = bridge(
            port, sock, sys.executable, "-c", AGENT, str(port), f"127.0.0.1:{origin}"
        )
    assert (code, err) == (3, "")
    assert out.splitlines() == [
        str(pid),  # the agent is the bridge's process, exec'd
        "HTTP/1.1 200 Connection established",
        "GET /via-bridge host=x connection=close proxy=None body=",
    ]
    # The bridge goes with the agent.
    deadline = time.monotonic() + 5
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            break
        assert time.monotonic() < deadline, "the bridge outlived the agent"
        time.sleep(0.1)


def test_the_agent_gets_default_signal_handling(sock: Path) -> None:
    _, code, out, _ = bridge(free_port(), sock, "cat", "/proc/self/status")
    ignored = next(line for line in out.splitlines() if line.startswith("SigIgn:"))
    assert code == 0
    assert int(ignored.split()[1], 16) & (1 << (13 - 1)) == 0  # SIGPIPE


def test_a_missing_agent_program_exits_127(sock: Path) -> None:
    _, code, out, err = bridge(free_port(), sock, "forgehand-no-such-agent")
    assert (code, out) == (127, "")
    assert err == "forgehand: agent program not found: forgehand-no-such-agent\n"


def test_an_agent_program_that_is_not_executable_exits_126(sock: Path, tmp_path: Path) -> None:
    program = tmp_path / "agent"
    program.write_text("#!/bin/sh\n")
    _, code, _, err = bridge(free_port(), sock, str(program))
    assert code == 126
    assert err == f"forgehand: agent program is not executable: {program}\n"


def test_the_bridge_needs_its_arguments() -> None:
    run = subprocess.run(
        [sys.executable, "-I", "-S", str(BRIDGE), "3128", "/nowhere"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 2 and run.stderr.startswith("usage:")


@pytest.mark.parametrize(
    "host",
    [
        "64:ff9b::7f00:1",  # NAT64, well-known prefix
        "64:ff9b:1:7f00:0:100::",  # NAT64, local-use /48
        "2002:7f00:1::",  # 6to4
        "::127.0.0.1",  # IPv4-compatible
        "::ffff:127.0.0.1",  # IPv4-mapped
        "64:ff9b::a00:7",  # 10.0.0.7, a private address
        "2002:c0a8:101::1",  # 192.168.1.1
    ],
)
def test_ipv4_inside_ipv6_is_judged_as_that_ipv4(host: str) -> None:
    policy = Policy(("*",), frozenset({("127.0.0.1", 6379)}))
    reason = policy.decide(host, 443, [host])
    assert reason is not None and "local or private" in reason, reason
    assert policy.decide(host, 6379, [host]) in (OWN_SERVICE, reason)
    assert Policy(("*",)).decide("64:ff9b::808:808", 443, ["64:ff9b::808:808"]) is None


def test_the_workers_own_interface_addresses_count_as_local(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert ipaddress.ip_address("127.0.0.1") in egress.own_addresses()
    public = "8.8.4.4"  # as if the worker's interface had this public address
    monkeypatch.setattr(egress, "own_addresses", lambda: frozenset({ipaddress.ip_address(public)}))
    policy = Policy(("*",), frozenset({("127.0.0.1", 3000)}))
    reason = policy.decide("worker.example.com", 443, [public])
    assert reason is not None and "local or private" in reason
    assert policy.decide("worker.example.com", 3000, [public]) == OWN_SERVICE
    assert policy.decide("example.com", 443, ["93.184.216.34"]) is None

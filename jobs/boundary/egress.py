"""The agent's only way out to the network: an HTTP proxy on a Unix socket, and its policy.

The sandbox has loopback only; jobs/boundary/bridge.py inside it forwards 127.0.0.1:PORT to the Unix
socket this proxy serves, so every connection the agent makes passes `Policy.decide` first.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import selectors
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from app.parsing import allow_entry, ip_of, normalize, split_host_port

if TYPE_CHECKING:
    from jobs.boundary.gateway import Gateway

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]

NOT_ALLOWED = "not in AGENT_ALLOW_HOSTS"
OWN_SERVICE = "one of the worker's own services, which can never be allowed"
HINT = "to allow it, add it to AGENT_ALLOW_HOSTS or to allow_hosts in .github/forgehand.yml"

MAX_HEAD = 64 * 1024
MAX_CONNECTIONS = 128
# A client that opens a connection and says nothing would otherwise hold one of the slots.
HEAD_TIMEOUT = 30.0
CONNECT_TIMEOUT = 20.0
# How long close() waits for connection threads; only one stuck in getaddrinfo outlives it.
CLOSE_WAIT = 2.0
CHUNK = 64 * 1024
# Request headers that concern the hop to the proxy, not the origin.
HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "upgrade", "host"}
)


def own_addresses() -> frozenset[IPAddress]:
    """The addresses of this machine's interfaces (Linux's /proc; empty elsewhere): a public
    one reaches the worker's own services as loopback does."""
    found: set[IPAddress] = set()
    with contextlib.suppress(OSError):
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
        for before, line in itertools.pairwise(lines):
            if line.strip() == "/32 host LOCAL":
                with contextlib.suppress(ValueError):
                    found.add(ipaddress.IPv4Address(before.strip().removeprefix("|-- ")))
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            with contextlib.suppress(ValueError, IndexError):
                found.add(ipaddress.IPv6Address(bytes.fromhex(line.split()[0])))
    return frozenset(found)


def _is_local(ip: IPAddress) -> bool:
    # Not globally routable covers loopback, private, link-local, unspecified, CGNAT and
    # reserved ranges; multicast counts as global for ipaddress but is never a web server.
    return ip.is_multicast or not ip.is_global


def _matches(pattern: str, host: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return pattern == host


@dataclass(frozen=True)
class Policy:
    """Which (host, port) the agent may reach. Raises ValueError for a malformed entry."""

    allow: tuple[str, ...] = ()
    never: frozenset[tuple[str, int]] = frozenset()
    # The entries that may open a local or private address when they name it exactly: the
    # operator's (None: all of `allow`). A repository's `allow_hosts` must not open the
    # worker's own network.
    local: tuple[str, ...] | None = None
    _entries: tuple[tuple[str, frozenset[int]], ...] = field(init=False, repr=False, compare=False)
    _never: frozenset[tuple[str, int]] = field(init=False, repr=False, compare=False)
    _local: tuple[tuple[str, frozenset[int]], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_entries", tuple(allow_entry(e) for e in self.allow))
        object.__setattr__(self, "_never", frozenset((normalize(h), p) for h, p in self.never))
        local = self.allow if self.local is None else self.local
        object.__setattr__(self, "_local", tuple(allow_entry(e) for e in local))

    def decide(self, host: str, port: int, addresses: Sequence[str]) -> str | None:
        """None when the agent may connect to host:port, which resolved to addresses; else why
        not. With no addresses only the name is checked, which needs no DNS lookup."""
        name = normalize(host)
        ips = [ip for ip in (ip_of(a) for a in (name, *addresses)) if ip is not None]
        mine = own_addresses() if any(not _is_local(ip) for ip in ips) else frozenset()
        local = next((ip for ip in ips if _is_local(ip) or ip in mine), None)
        if any((target, port) in self._never for target in {name, *map(str, ips)}):
            return OWN_SERVICE
        # The worker's services may listen on every address of the machine (0.0.0.0): their
        # ports are closed on any local address, whatever name reaches it.
        if local is not None and port in {p for _, p in self._never}:
            return OWN_SERVICE
        matching = {p for p, ports in self._entries if port in ports and _matches(p, name)}
        if not matching:
            return NOT_ALLOWED
        # A wildcard or a repository's entry must not open the worker's machine or network.
        exact = any(name == p and port in ports for p, ports in self._local)
        if local is not None and not exact:
            return (
                f"{local} is a local or private address, reachable only when AGENT_ALLOW_HOSTS "
                "names it exactly"
            )
        return None


def refusal_line(host: str, port: int, reason: str) -> str:
    if reason == OWN_SERVICE:
        return f"forgehand: refused a connection to {host}:{port} ({reason})"
    return f"forgehand: refused a connection to {host}:{port} ({reason}); {HINT}"


def is_gateway_request(head: bytes, authority: str) -> bool:
    """Whether a request head is meant for the model gateway: an origin-form request (only a
    client that takes the bridge for the gateway itself sends one), or a proxy request for the
    gateway's own authority inside the sandbox."""
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
    if len(parts) != 3:
        return False
    method, target = parts[0], parts[1].lower()
    if target.startswith("/"):
        return True
    if method == "CONNECT":
        return target == authority
    return target == f"http://{authority}" or target.startswith(f"http://{authority}/")


class BadRequest(ValueError):
    pass


@dataclass(frozen=True)
class Request:
    method: str
    host: str
    port: int
    # What goes to the origin first: nothing for CONNECT, else the rewritten request head.
    head: bytes


def parse_request(head: bytes) -> Request:
    """A proxy request head (without the blank line): CONNECT or an absolute-form http:// URL."""
    lines = head.split(b"\r\n")
    if any(b"\r" in line or b"\n" in line for line in lines):
        raise BadRequest("stray CR or LF in the request head")
    parts = lines[0].decode("latin-1").split(" ")
    if len(parts) != 3 or not parts[0] or not parts[2].startswith("HTTP/1."):
        raise BadRequest("malformed request line")
    method, target, version = parts
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon or not name or name != name.strip():
            raise BadRequest("malformed header line")
        headers.append((name, value.strip()))
    try:
        if method == "CONNECT":
            host, port = split_host_port(target)
            if port is None:
                raise BadRequest("CONNECT needs host:port")
            return Request(method, host, port, b"")
        if target[:7].lower() != "http://":
            raise BadRequest("only CONNECT and absolute http:// URLs are proxied")
        rest = target[7:]
        cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
        authority, path = rest[:cut], rest[cut:].partition("#")[0]
        if "@" in authority:
            raise BadRequest("credentials in the URL are not supported")
        host, port = split_host_port(authority)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    path = "/" + path if not path.startswith("/") else path
    drop = HOP_HEADERS | {
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
    }
    kept = [f"{n}: {v}" for n, v in headers if n.lower() not in drop]
    out = [f"{method} {path} {version}", f"Host: {authority}", *kept, "Connection: close", ""]
    return Request(method, host, port or 80, ("\r\n".join(out) + "\r\n").encode("latin-1"))


def _response(status: str, text: str) -> bytes:
    body = (text + "\n").encode()
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def _shut(sock: socket.socket) -> None:
    # shutdown, unlike close, wakes a thread blocked in recv, send or connect on the socket.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _pipe(src: socket.socket, dst: socket.socket, *, last: bool) -> None:
    """Copy src to dst. The client's EOF is passed on as a half-close, so a request body can
    end while the response still flows; the origin's EOF (last) ends the whole connection."""
    try:
        while data := src.recv(CHUNK):
            dst.sendall(data)
        if not last:
            dst.shutdown(socket.SHUT_WR)
            return
    except OSError:
        pass
    _shut(src)
    _shut(dst)


class EgressProxy:
    """Serves HTTP proxy requests on a Unix socket, letting through what `policy` allows.

    on_refused gets one line per refused or unresolvable request, from a connection thread;
    it must be thread-safe and must not raise.
    """

    def __init__(
        self,
        socket_path: Path,
        policy: Policy,
        on_refused: Callable[[str], None],
        gateway: Gateway | None = None,
        gateway_authority: str = "",
    ) -> None:
        self.socket_path = socket_path
        self.policy = policy
        self.on_refused = on_refused
        # The model gateway, served on the same socket: the sandbox has one way out.
        self.gateway = gateway
        self.gateway_authority = gateway_authority
        self._lock = threading.Lock()
        self._closed = False
        self._sockets: set[socket.socket] = set()
        self._handlers: set[threading.Thread] = set()
        self._listener: socket.socket | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._acceptor: threading.Thread | None = None

    def start(self) -> EgressProxy:
        # A socket left by a worker that died would make bind fail.
        if self.socket_path.is_socket():
            self.socket_path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(self.socket_path))
            # The sandboxed side may run as another uid.
            self.socket_path.chmod(0o666)
            listener.listen(MAX_CONNECTIONS)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        self._wake = socket.socketpair()
        self._acceptor = threading.Thread(target=self._accept, name="egress-accept", daemon=True)
        self._acceptor.start()
        return self

    def __enter__(self) -> EgressProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting, end every open connection and remove the socket file."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._acceptor is not None and self._wake is not None:
            self._wake[1].send(b"x")
            self._acceptor.join()
        for sock in (self._listener, *(self._wake or ())):
            if sock is not None:
                sock.close()
        if self._listener is not None:
            self.socket_path.unlink(missing_ok=True)
        with self._lock:
            sockets, handlers = list(self._sockets), list(self._handlers)
        for sock in sockets:
            _shut(sock)
        deadline = time.monotonic() + CLOSE_WAIT
        for thread in handlers:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _accept(self) -> None:
        assert self._listener is not None and self._wake is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake[0], selectors.EVENT_READ)
            while True:
                ready = {key.fileobj for key, _ in selector.select()}
                if self._wake[0] in ready:
                    return
                with contextlib.suppress(OSError):
                    self._admit(self._listener.accept()[0])

    def _admit(self, client: socket.socket) -> None:
        with self._lock:
            full = len(self._handlers) >= MAX_CONNECTIONS
            if not full:
                thread = threading.Thread(
                    target=self._serve, args=(client,), name="egress-conn", daemon=True
                )
                self._handlers.add(thread)
                self._sockets.add(client)
        if full:
            # Never block the accept loop on a client that does not read.
            client.setblocking(False)
            with contextlib.suppress(OSError):
                client.send(_response("503 Service Unavailable", "forgehand: too many connections"))
            client.close()
        else:
            thread.start()

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if not self._closed:
                self._sockets.add(sock)
            return not self._closed

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            client.settimeout(HEAD_TIMEOUT)
            checked = self._check(client)
            if checked is None:
                return
            request, infos, early = checked
            # Connect to the addresses just checked, so a second lookup cannot swap them.
            upstream = self._connect(infos)
            if upstream is None:
                line = f"forgehand: could not connect to {request.host}:{request.port}"
                client.sendall(_response("502 Bad Gateway", line))
                return
            if request.method == "CONNECT":
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            # The client may have sent more than the head already (a TLS hello, a body).
            upstream.sendall(request.head + early)
            client.settimeout(None)
            back = threading.Thread(
                target=_pipe, args=(upstream, client), kwargs={"last": True}, daemon=True
            )
            back.start()
            _pipe(client, upstream, last=False)
            back.join()
        except OSError:
            pass  # the client went away
        finally:
            with self._lock:
                self._handlers.discard(threading.current_thread())
                self._sockets.difference_update((client, upstream))
            client.close()
            if upstream is not None:
                upstream.close()

    def _check(self, client: socket.socket) -> tuple[Request, Sequence[AddrInfo], bytes] | None:
        """The request, where its host resolved and what followed its head; None once the
        client has been answered."""
        buffer = b""
        while (end := buffer.find(b"\r\n\r\n")) < 0 and len(buffer) <= MAX_HEAD:
            chunk = client.recv(CHUNK)
            if not chunk:
                return None
            buffer += chunk
        if end < 0 or end > MAX_HEAD:
            client.sendall(_response("400 Bad Request", "forgehand: request header too large"))
            return None
        if self.gateway is not None and is_gateway_request(buffer[:end], self.gateway_authority):
            self.gateway.serve(client, buffer)
            return None
        try:
            request = parse_request(buffer[:end])
        except BadRequest as exc:
            client.sendall(_response("400 Bad Request", f"forgehand: bad proxy request: {exc}"))
            return None
        host, port = request.host, request.port
        # The name is checked before any lookup: resolving a refused name would leak it to DNS.
        reason = self.policy.decide(host, port, ())
        if reason is not None:
            self._refuse(client, "403 Forbidden", refusal_line(host, port, reason))
            return None
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            line = f"forgehand: could not resolve {host} (asked for {host}:{port})"
            self._refuse(client, "502 Bad Gateway", line)
            return None
        reason = self.policy.decide(host, port, [str(info[4][0]) for info in infos])
        if reason is not None:
            self._refuse(client, "403 Forbidden", refusal_line(host, port, reason))
            return None
        return request, infos, buffer[end + 4 :]

    def _refuse(self, client: socket.socket, status: str, line: str) -> None:
        client.sendall(_response(status, line))
        # A lookup that outlived close() must not report into a finished job.
        if not self._closed:
            self.on_refused(line)

    def _connect(self, infos: Sequence[AddrInfo]) -> socket.socket | None:
        for family, kind, proto, _, address in infos:
            sock = socket.socket(family, kind, proto)
            if not self._track(sock):
                sock.close()
                return None
            try:
                sock.settimeout(CONNECT_TIMEOUT)
                sock.connect(address)
                sock.settimeout(None)
                return sock
            except OSError:
                with self._lock:
                    self._sockets.discard(sock)
                sock.close()
        return None

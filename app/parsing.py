"""Parsing that the web process and the worker share: host names and allow-list entries,
durations, amounts in USD and model prices. Pure; imports nothing of forgehand's.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# A bare host entry allows HTTPS and plain HTTP, nothing else.
DEFAULT_PORTS = frozenset({443, 80})


def split_host_port(authority: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]` or `[v6]:port`; a bare IPv6 address has no port.

    Raises ValueError for an empty host or a port that is not 1-65535.
    """
    if authority.startswith("["):
        host, bracket, tail = authority[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise ValueError(f"{authority!r} is not host or host:port")
        port_text = tail[1:] if tail else None
    elif authority.count(":") == 1:
        host, _, port_text = authority.partition(":")
    else:
        host, port_text = authority, None
    if not host:
        raise ValueError(f"{authority!r} has no host")
    if port_text is None:
        return host, None
    if not (port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536):
        raise ValueError(f"{authority!r} has no valid port")
    return host, int(port_text)


def ip_of(text: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    # ::ffff:127.0.0.1 reaches 127.0.0.1, and a NAT64 or 6to4 form reaches the IPv4 address
    # inside it: each is judged as that address.
    if isinstance(ip, ipaddress.IPv6Address):
        return embedded_ipv4(ip) or ip
    return ip


NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052's well-known prefix
NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215, local use


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries: IPv4-mapped, IPv4-compatible (::a.b.c.d), 6to4
    (2002::/16) or NAT64 (64:ff9b::/96, and 64:ff9b:1::/48 as RFC 6052 lays out a /48)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    packed = ip.packed
    if ip in NAT64 or (packed[:12] == bytes(12) and int(ip) > 1):
        return ipaddress.IPv4Address(packed[12:])
    if ip in NAT64_LOCAL:
        return ipaddress.IPv4Address(packed[6:8] + packed[9:11])  # octet 8 is reserved
    return None


def normalize(host: str) -> str:
    host = host.lower().rstrip(".")
    ip = ip_of(host)
    return host if ip is None else str(ip)


def allow_entry(text: str) -> tuple[str, frozenset[int]]:
    host, port = split_host_port(text.strip())
    rest = host[2:].rstrip(".") if host.startswith("*.") else host
    if host != "*" and (not rest or "*" in rest):
        raise ValueError(f"allow entry {text!r}: `*` only as `*` or `*.domain`")
    return normalize(host), DEFAULT_PORTS if port is None else frozenset({port})


def hostname(authority: str) -> str:
    """The host name of a `Host` header's `host[:port]`, lower-case; "" when there is none."""
    try:
        return (urlsplit(f"//{authority.strip()}").hostname or "").rstrip(".")
    except ValueError:
        return ""


def is_loopback(name: str) -> bool:
    """`localhost`, a name under `.localhost`, or a loopback address."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def parse_duration(text: str) -> timedelta:
    """`90m`, `6h`, `2d` or a number of seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        if text and text[-1] in units:
            return timedelta(seconds=float(text[:-1]) * units[text[-1]])
        return timedelta(seconds=float(text))
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90m, 6h, 2d)") from None


def parse_prices(text: str) -> dict[str, tuple[float, float]]:
    """`model=IN/OUT,...` (USD per million tokens). Raises ValueError naming a bad entry."""
    out: dict[str, tuple[float, float]] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        model, equals, pair = entry.partition("=")
        given, slash, taken = pair.partition("/")
        try:
            prices = (float(given), float(taken))
        except ValueError:
            prices = (-1.0, -1.0)
        if not equals or not slash or not model.strip() or min(prices) < 0 or "nan" in pair:
            raise ValueError(f"{entry!r} is not model=IN/OUT (USD per million tokens)")
        out[model.strip()] = prices
    return out


def parse_dollars(text: str) -> float:
    """`5`, `0.50` or `$5`: a finite amount in USD, not negative. Raises ValueError."""
    try:
        value = float(text.strip().removeprefix("$"))
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise ValueError(f"must be an amount in USD such as 5 or 0.50, got {text!r}")
    return value

"""app/parsing.py: what the web process and the worker both parse from settings and comments."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.parsing import allow_entry, hostname, is_loopback, parse_dollars, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"), [("90m", 5400), ("6h", 21600), ("2d", 172800), ("30", 30)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


@pytest.mark.parametrize(("text", "amount"), [("5", 5.0), ("0.50", 0.5), ("$2", 2.0), (" 0 ", 0.0)])
def test_dollars(text: str, amount: float) -> None:
    assert parse_dollars(text) == amount


@pytest.mark.parametrize("text", ["-1", "five", "inf", "nan", "", "$"])
def test_an_amount_that_is_not_usd_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="amount in USD"):
        parse_dollars(text)


def test_allow_entries_name_a_host_and_its_ports() -> None:
    assert allow_entry("api.example.com") == ("api.example.com", frozenset({80, 443}))
    assert allow_entry("*.Example.com.:8443") == ("*.example.com", frozenset({8443}))
    assert allow_entry("[::ffff:127.0.0.1]:9000") == ("127.0.0.1", frozenset({9000}))
    for bad in ("", "a*b.com", "*.", "host:0", "host:x", "[::1"):
        with pytest.raises(ValueError):
            allow_entry(bad)


def test_host_names_and_loopback() -> None:
    assert hostname("Example.COM.:8080") == "example.com"
    assert hostname("[::1]:3000") == "::1"
    assert is_loopback("localhost") and is_loopback("app.localhost") and is_loopback("127.0.0.2")
    assert not is_loopback("example.com") and not is_loopback("10.0.0.1")

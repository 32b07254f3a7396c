"""Pure: take the worker's secrets, and anything shaped like a GitHub credential, out of text.

The agent is hostile and may print whatever it found; its output is redacted before it is
posted on GitHub or stored for the dashboard (SPEC §5).

Caught: each known secret of 8 or more characters, verbatim; a PEM private key block, whole or
cut short; any run of base64 holding 16 or more consecutive characters of the App key's body,
however the key was wrapped, joined or cut; GitHub token shapes (`ghp_`, `gho_`, `ghu_`,
`ghs_`, `ghr_`, `github_pat_`), known or not; `x-access-token:<token>`, an
`Authorization: basic|bearer|token <credential>` header, and the base64 of
`x-access-token:<token>` that git sends.

Not caught: a known secret other than the App key split across lines or interleaved with other
characters (`fold`, spaces, one character a line), or re-encoded (base64 of the webhook secret,
hex, URL-encoding, reversed); secrets shorter than 8 characters; fragments of the App key shorter
than 16 characters; secrets the worker does not know that have no recognisable shape.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from app.settings import Settings

REDACTED = "[redacted]"
# Shorter secrets would redact ordinary words.
MIN_SECRET = 8
# The shortest piece of the App key's base64 body that is redacted on its own.
KEY_PIECE = 16

_TOKEN = re.compile(r"gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}")
_HEADER = re.compile(r"(?i)(authorization:\s*(?:basic|bearer|token)\s+)[^\s'\"]+")
_ACCESS = re.compile(r"(?i)(x-access-token:)[^\s@'\"/]+")
# "x-access-token:" is 15 bytes, so its base64 is a fixed 20-character prefix of every
# credential git sends, whatever the token.
_BASIC = re.compile(r"eC1hY2Nlc3MtdG9rZW46[A-Za-z0-9+/]*={0,2}")
# A newline, or the literal `\n` of a key pasted into one environment line.
_BREAK = r"[ \t]*(?:\r?\n|\\n)[ \t]*"
# A block cut short takes its full-length lines only, not the words printed after it.
_PEM = re.compile(
    rf"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:{_BREAK}[A-Za-z0-9+/=]{{16,}})*"
    rf"(?:(?:{_BREAK}[A-Za-z0-9+/=]+)?{_BREAK}-----END [A-Z0-9 ]*PRIVATE KEY-----)?"
)
_BASE64 = re.compile(rf"[A-Za-z0-9+/=]{{{KEY_PIECE},}}")


class Redactor:
    """Replaces secrets in text with `[redacted]`; grows as the worker learns new tokens."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: set[str] = set()
        self._literal: re.Pattern[str] | None = None
        self._key_pieces: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Redact `secret` from now on: a token, a password or a PEM private key."""
        secret = (secret or "").strip()
        if len(secret) < MIN_SECRET or secret in self._secrets:
            return
        self._secrets.add(secret)
        if "PRIVATE KEY-----" in secret:
            body = "".join(
                line.strip()
                for line in secret.replace("\\n", "\n").splitlines()
                if line.strip() and not line.startswith("-----") and ":" not in line
            )
            self._key_pieces.update(
                body[i : i + KEY_PIECE] for i in range(len(body) - KEY_PIECE + 1)
            )
        # Longest first, so that a secret holding another is replaced whole.
        ordered = sorted(self._secrets, key=len, reverse=True)
        self._literal = re.compile("|".join(map(re.escape, ordered)))

    def text(self, text: str) -> str:
        text = _PEM.sub(REDACTED, text)
        if self._key_pieces:
            text = _BASE64.sub(self._key_run, text)
        if self._literal is not None:
            text = self._literal.sub(REDACTED, text)
        text = _HEADER.sub(rf"\g<1>{REDACTED}", text)
        text = _BASIC.sub(REDACTED, text)
        text = _ACCESS.sub(rf"\g<1>{REDACTED}", text)
        return _TOKEN.sub(REDACTED, text)

    def lines(self, lines: list[str]) -> list[str]:
        """Each line redacted on its own, as output is stored while the agent runs."""
        return [self.text(line) for line in lines]

    def _key_run(self, match: re.Match[str]) -> str:
        run = match[0]
        pieces = (run[i : i + KEY_PIECE] for i in range(len(run) - KEY_PIECE + 1))
        return REDACTED if any(p in self._key_pieces for p in pieces) else run


def redactor_for(settings: Settings, *tokens: str | None) -> Redactor:
    """The secrets the worker holds, and any installation `tokens` already minted.

    Add tokens minted later with `Redactor.add`."""
    return Redactor(
        [settings.private_key, settings.webhook_secret, settings.dashboard_password, *tokens]
    )

from __future__ import annotations

import base64

from app.settings import Settings
from jobs.boundary.redact import REDACTED, Redactor, redactor_for
from tests import fakes

TOKEN = "ghs_" + "a1B2c3D4" * 5  # the shape of a real installation token
PAT = "github_pat_" + "11ABCDEFG0_abcdefghijklmnopqrstuvwxyz0123"


def key_lines() -> list[str]:
    return fakes.app_key()[0].strip().splitlines()


def test_known_secrets_are_redacted_verbatim() -> None:
    redactor = redactor_for(
        Settings(webhook_secret="hook-secret-value", dashboard_password="dash-pass-1234")
    )
    redactor.add("ghs_testtoken0001secretvalue")  # a token only known once minted
    text = "hook-secret-value / dash-pass-1234 / ghs_testtoken0001secretvalue / fine"
    assert redactor.text(text) == f"{REDACTED} / {REDACTED} / {REDACTED} / fine"


def test_short_or_empty_secrets_redact_nothing() -> None:
    redactor = Redactor(["", None, "a", "1234567", "  "])
    text = "a plain line with 1234567 in it"
    assert redactor.text(text) == text


def test_the_private_key_is_redacted_whole() -> None:
    key = fakes.app_key()[0]
    redactor = redactor_for(Settings(private_key=key))
    assert redactor.text(f"found it:\n{key}done") == f"found it:\n{REDACTED}\ndone"


def test_each_line_of_the_private_key_is_redacted_on_its_own() -> None:
    redactor = redactor_for(Settings(private_key=fakes.app_key()[0]))
    body = key_lines()[1:-1]
    assert redactor.lines(body[3:6]) == [REDACTED] * 3
    # A piece of a line, or the body re-joined at other places, is still the key.
    assert redactor.text(f"x {body[4][10:40]} y") == f"x {REDACTED} y"
    joined = "".join(body)
    assert REDACTED in redactor.text(joined[100:150])
    assert redactor.text(body[2][:12]) == body[2][:12]  # too short to be told from noise


def test_the_private_key_on_one_line_is_redacted() -> None:
    key = fakes.app_key()[0]
    redactor = redactor_for(Settings(private_key=key))
    escaped = key.strip().replace("\n", "\\n")  # as pasted into a .env line
    assert redactor.text(f"PRIVATE_KEY={escaped}") == f"PRIVATE_KEY={REDACTED}"


def test_any_private_key_block_is_redacted_even_unknown_or_cut_short() -> None:
    redactor = Redactor()
    key = fakes.app_key()[0]
    assert redactor.text(key) == REDACTED + "\n"
    head = "\n".join(key_lines()[:4])
    assert redactor.text(f"{head}\nafter") == f"{REDACTED}\nafter"


def test_github_token_shapes_are_redacted_when_unknown() -> None:
    redactor = Redactor()
    for token in (TOKEN, "ghp_" + "x" * 36, "gho_" + "Y" * 40, "ghu_" + "1" * 36, PAT):
        assert redactor.text(f"token={token};") == f"token={REDACTED};"
    assert redactor.text("ghs_tooshort") == "ghs_tooshort"


def test_git_credential_forms_are_redacted() -> None:
    redactor = Redactor()
    url = "https://x-access-token:some-unknown-token@github.com/o/r.git"
    assert redactor.text(url) == f"https://x-access-token:{REDACTED}@github.com/o/r.git"
    basic = base64.b64encode(b"x-access-token:anything-at-all").decode()
    header = f"http.extraHeader=Authorization: basic {basic}"
    assert redactor.text(header) == f"http.extraHeader=Authorization: basic {REDACTED}"
    assert redactor.text(f"echo {basic}") == f"echo {REDACTED}"
    assert redactor.text("AUTHORIZATION: Bearer eyJ.a.b") == f"AUTHORIZATION: Bearer {REDACTED}"


def test_redaction_leaves_ordinary_output_alone() -> None:
    redactor = redactor_for(Settings(private_key=fakes.app_key()[0], webhook_secret="s3cr3t-hook"))
    lines = ["$ pytest -q", "FAILED tests/test_calc.py::test_add - assert -1 == 5", "1 failed"]
    assert redactor.lines(lines) == lines

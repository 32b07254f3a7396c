from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import SettingsError, load, parse

PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n"


def test_defaults_follow_the_spec() -> None:
    s = parse({})
    assert (s.github_api_url, s.agent, s.agent_timeout, s.agent_idle_timeout) == (
        "https://api.github.com",
        "claude",
        1800,
        600,
    )
    assert (s.trigger_label, s.branch_prefix, s.max_attempts) == ("agent", "agent/", 3)
    assert (s.escalation_label, s.command_prefix, s.webhook_path) == (
        "agent:needs-human",
        "/agent",
        "/api/github/webhooks",
    )
    assert (s.host, s.port, s.log_level, s.log_format) == ("127.0.0.1", 3000, "info", "pretty")
    assert s.workspaces_dir == Path("./.forgehand/workspaces")
    assert (s.plan_label, parse({"PLAN_LABEL": "epic"}).plan_label) == ("agent:plan", "epic")


def test_inline_key_accepts_literal_newlines() -> None:
    s = parse({"PRIVATE_KEY": PEM.replace("\n", "\\n")})
    assert s.private_key == PEM


def test_key_from_file(tmp_path: Path) -> None:
    key = tmp_path / "app.pem"
    key.write_text(PEM)
    assert parse({"PRIVATE_KEY_PATH": str(key)}).private_key == PEM


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"APP_ID": "abc"}, "APP_ID must be a whole number, got 'abc'"),
        ({"PORT": "-1"}, "PORT must be from 1 to 65535, got -1"),
        ({"PORT": "0"}, "PORT must be from 1 to 65535, got 0"),
        ({"PORT": "70000"}, "PORT must be from 1 to 65535, got 70000"),
        ({"PUBLIC_URL": "forge.example.com"}, "PUBLIC_URL must be an http(s) URL"),
        ({"MAX_ATTEMPTS": "0"}, "MAX_ATTEMPTS must be at least 1"),
        (
            {"AGENT": "copilot"},
            "AGENT must be one of claude, codex, aider, opencode, gemini, command",
        ),
        ({"AGENT": "command"}, "AGENT_COMMAND is required when AGENT=command"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL must start with redis://"),
        ({"PRIVATE_KEY": "not a key"}, "PRIVATE_KEY is not a PEM private key"),
        ({"PRIVATE_KEY_PATH": "/nonexistent/key.pem"}, "PRIVATE_KEY_PATH cannot be read"),
        ({"WEBHOOK_PATH": "hooks"}, "WEBHOOK_PATH must start with '/'"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be one of pretty, json"),
        ({"GITHUB_API_URL": "api.github.com"}, "GITHUB_API_URL must be an http(s) URL"),
    ],
)
def test_malformed_settings_name_themselves(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=None) as err:
        parse(env)
    assert message in str(err.value)


def test_require_names_the_missing_setting() -> None:
    with pytest.raises(SettingsError, match=r"^WEBHOOK_SECRET is required"):
        parse({}).require("WEBHOOK_SECRET")
    parse({"WEBHOOK_SECRET": "s"}).require("WEBHOOK_SECRET")


def test_environment_wins_over_dotenv(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text('APP_ID=1\nWEBHOOK_SECRET="from file"\nPRIVATE_KEY="' + PEM + '"\n')
    s = load({"APP_ID": "2"}, env_file)
    assert (s.app_id, s.webhook_secret) == (2, "from file")
    assert s.private_key == PEM


def test_web_url_is_where_people_reach_the_web_process() -> None:
    assert parse({}).web_url == "http://127.0.0.1:3000"
    assert parse({"HOST": "0.0.0.0", "PORT": "8080"}).web_url == "http://127.0.0.1:8080"
    assert parse({"HOST": "::1"}).web_url == "http://[::1]:3000"
    assert parse({"PORT": "65535"}).port == 65535
    public = parse({"PUBLIC_URL": "https://forge.example.com/", "PORT": "8080",
                    "DASHBOARD_PASSWORD": "sesame"})  # fmt: skip
    assert public.web_url == "https://forge.example.com"


@pytest.mark.parametrize(
    "allow", ["*", "10.89.0.1", "10.89.0.0/24", "127.0.0.1,::1,*", "::ffff:10.0.0.1", "0.0.0.0/0"]
)
def test_trusting_a_proxy_off_this_machine_requires_a_dashboard_password(allow: str) -> None:
    # A client it lets through may claim, in X-Forwarded-For, to be this machine.
    with pytest.raises(SettingsError) as refused:
        parse({"FORWARDED_ALLOW_IPS": allow})
    assert str(refused.value).startswith(
        "DASHBOARD_PASSWORD is required when FORWARDED_ALLOW_IPS trusts a proxy off this machine"
    )
    assert allow.split(",")[-1] in str(refused.value)
    taken = parse({"FORWARDED_ALLOW_IPS": allow, "DASHBOARD_PASSWORD": "sesame"})
    assert taken.forwarded_allow_ips == allow


@pytest.mark.parametrize("allow", ["127.0.0.1,::1", "127.0.0.2", "127.0.0.0/8", "::1/128"])
def test_proxies_on_this_machine_need_no_password(allow: str) -> None:
    assert parse({"FORWARDED_ALLOW_IPS": allow}).forwarded_allow_ips == allow


def test_setup_writes_dot_env_unless_told_where_or_told_to_show_it() -> None:
    assert parse({}).setup_env_file == Path(".env")
    assert parse({"SETUP_ENV_FILE": "/host/.env"}).setup_env_file == Path("/host/.env")
    assert parse({"SETUP_ENV_FILE": "-"}).setup_env_file is None


def test_a_public_url_that_is_not_loopback_requires_a_dashboard_password() -> None:
    # Behind a reverse proxy on this machine every request comes from loopback.
    with pytest.raises(SettingsError, match="DASHBOARD_PASSWORD is required"):
        parse({"PUBLIC_URL": "https://forge.example.com"})
    assert parse({"PUBLIC_URL": "http://localhost:3000"}).dashboard_password is None
    assert parse({"PUBLIC_URL": "http://[::1]:3000"}).public_url == "http://[::1]:3000"

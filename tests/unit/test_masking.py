"""Masking by value: URL passwords, secret-looking keys and variables, secrets files, `mask`; every form."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

from dockyard.errors import ConfigError
from dockyard.settings import Settings
from dockyard.stack.masking import MASK, Redactor, Registry, find_secrets, interpolated, url_passwords, xml_text

MakeSettings = Callable[..., Settings]


@pytest.mark.parametrize(
    ("text", "passwords"),
    [
        ("redis://:hunter2@redis:6379/0", ["hunter2"]),
        ("postgresql://app:s3cr%40t@db:5432/app", ["s3cr%40t"]),
        ("DATABASE_URL=amqp://guest:guest-pw@mq/ vhost", ["guest-pw"]),
        ("http://example.com:8080/path", []),  # a port is no password
        ("http://user@host/", []),
    ],
)
def test_url_passwords(text: str, passwords: list[str]) -> None:
    assert url_passwords(text) == passwords


def test_a_secret_is_masked_plain_json_escaped_and_url_encoded() -> None:
    secret = 'pa"ss/w@rd'  # noqa: S105 - a test value
    redact = Redactor([secret], Registry())

    for form in (secret, json.dumps(secret)[1:-1], quote(secret, safe="")):
        assert redact(f"seen: {form}.") == f"seen: {MASK}."


@pytest.mark.parametrize("text", ["a&b<c>d\"e'f", "&amp;", "<<>>", "plain", ""])
def test_xml_text_escapes_as_html_escape_does_without_quotes(text: str) -> None:
    assert xml_text(text) == html.escape(text, quote=False)


def test_a_secret_is_masked_in_xml_text_and_attributes() -> None:
    secret = 'p<w>&"d'  # noqa: S105 - a test value
    redact = Redactor([secret], Registry())

    assert redact('<failure>p&lt;w&gt;&amp;"d</failure>') == f"<failure>{MASK}</failure>"
    assert redact('<failure message="p&lt;w&gt;&amp;&quot;d"/>') == f'<failure message="{MASK}"/>'


def test_a_value_seen_once_is_masked_by_every_later_redactor() -> None:
    registry = Registry()
    Redactor(["first-secret"], registry)
    later = Redactor([], registry)

    assert later("it was first-secret") == f"it was {MASK}"


def test_find_secrets_goes_by_value_not_only_by_key(make_settings: MakeSettings, tmp_path: Path) -> None:
    token = tmp_path / "token.txt"
    token.write_text("from-a-secrets-file\n")
    settings = make_settings(mask=["listed-in-mask", "abc"])
    config = {
        "services": {
            "api": {
                "environment": {
                    "UPSTREAM": "redis://:url-password@redis:6379/0",  # a plain key
                    "API_TOKEN": "by-its-key",
                    "DEBUG": "1",
                },
                "command": ["--dsn", "postgres://u:in-a-command@db/x"],
            }
        },
        "secrets": {"token": {"file": str(token)}},
    }

    found = find_secrets(config, settings)

    assert {"url-password", "by-its-key", "in-a-command", "from-a-secrets-file", "listed-in-mask", "abc"} <= found
    assert "1" not in found


def test_interpolated_secret_variables_are_secrets(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings()
    settings.compose_files[0].write_text(
        "services:\n  app:\n    image: x\n    environment:\n      GREETING: ${APP_SECRET}\n      NAME: ${APP_NAME}\n"
    )
    (settings.root / ".env").write_text("APP_SECRET='from-dotenv'\nAPP_NAME=plain\n")

    assert interpolated(settings, env={}) == {"APP_SECRET": "from-dotenv"}
    monkeypatch.setenv("APP_SECRET", "from-env")
    assert interpolated(settings) == {"APP_SECRET": "from-env"}


def test_a_bad_mask_never_shows_its_values(make_settings: MakeSettings) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(mask="hunter2-not-a-list")
    assert "hunter2" not in str(caught.value)
    assert "mask" in str(caught.value)

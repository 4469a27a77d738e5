"""The README's config reference is generated from the settings object; it must not drift."""

from __future__ import annotations

from pathlib import Path

from dockyard.settings import reference_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_config_reference_matches_the_settings() -> None:
    text = README.read_text()
    start = text.index("<!-- config-reference:start -->") + len("<!-- config-reference:start -->")
    end = text.index("<!-- config-reference:end -->")
    assert text[start:end].strip() == reference_markdown().strip(), (
        "README's config reference is stale: regenerate it with "
        "`python -c 'from dockyard.settings import reference_markdown as r; print(r())'`"
    )

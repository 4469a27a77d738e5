"""The README's Performance table is what the kept bench results say, line for line."""

from __future__ import annotations

import json
from typing import Any

from bench import readme


def test_the_readme_table_is_generated_from_the_kept_results() -> None:
    assert readme.main(["--check"]) == 0, "run `python -m bench.readme` after a bench run"


def test_the_table_names_the_commit_and_says_what_was_missed() -> None:
    results: dict[str, Any] = json.loads(readme.RESULTS.read_text())
    text = readme.table(results)
    assert f"at commit {results['meta']['versions']['git']}" in text
    missed = [r for r in results["rows"] if r.get("met") == "missed"]
    assert text.count("| **no** |") == len(missed)


def test_a_failed_self_check_is_named_under_the_table() -> None:
    results: dict[str, Any] = json.loads(readme.RESULTS.read_text())
    results["checks"] = [{"name": "matrix.exactly_once", "ok": False}, {"name": "images.all_cached", "ok": True}]
    assert readme.table(results).endswith("Self-checks: 1 passed, failed: matrix.exactly_once.")


def test_rewriting_keeps_everything_outside_the_markers() -> None:
    text = f"before\n{readme.START}\nold\n{readme.END}\nafter\n"
    assert readme.rewrite(text, "new") == f"before\n{readme.START}\nnew\n{readme.END}\nafter\n"

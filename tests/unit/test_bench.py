"""The benchmark's pure parts: CPU accounting, comparisons and targets, reading dockyard's JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench import BenchError
from bench.cli import MEASUREMENTS
from bench.cpu import busy_seconds
from bench.daily import Stamp, first_call_parts, project_copy, stamps
from bench.first_run import own_images
from bench.host import interval_override
from bench.images import tag_counts, tag_events
from bench.parallel import cpu_bound
from bench.procs import Proc
from bench.readout import ParallelSummary, RunReport, UpInfo, holder_pid, keepers_since, live_projects
from bench.report import markdown
from bench.rows import SPECS
from bench.samples import Bench, Check, Stats
from bench.targets import Spec, Target, compare, exit_status, row, verdict

STAT = "cpu  100 20 30 1000 50 5 5 7 0 0\ncpu0 50 10 15 500 25 2 3 3 0 0\nintr 12345\n"


def test_busy_seconds_counts_work_not_idle_iowait_or_steal() -> None:
    # user + nice + system + irq + softirq = 100 + 20 + 30 + 5 + 5 ticks.
    assert busy_seconds(STAT, 100) == pytest.approx(1.6)


def test_busy_seconds_refuses_a_line_that_is_not_the_all_cpu_line() -> None:
    with pytest.raises(ValueError, match="all-CPU"):
        busy_seconds("cpu0 1 2 3 4 5 6 7\n", 100)


def test_cpu_bound_is_one_berth_wall_over_n_berth_cpu_spread_on_the_cores() -> None:
    assert cpu_bound(20.0, 30.0, 2) == pytest.approx(20.0 / 15.0)


def stats(*values: float) -> Stats:
    made = Stats.of(values)
    assert made is not None
    return made


@pytest.mark.parametrize(
    ("how", "expected"),
    [("A/B", 0.5), ("B/A", 2.0), ("A-B", -2.0)],
)
def test_compare_uses_the_medians(how: Any, expected: float) -> None:
    assert compare(how, stats(1, 2, 30), stats(4, 4, 5)) == pytest.approx(expected)


def test_compare_without_a_side_is_none() -> None:
    assert compare("A/B", stats(1), None) is None


def test_target_text_names_the_comparison_and_the_unit() -> None:
    assert Target("<=", 0.6).text("A/B", "s") == "A/B <= 0.6"
    assert Target("<=", 150).text("A-B", "ms") == "A-B <= 150 ms"
    assert Target("<=", 10, of="a").text(None, "ms") == "A <= 10 ms"


def spec(**kw: Any) -> Spec:
    base: dict[str, Any] = {"phase": "ready", "metric": "m", "unit": "s", "a": "x.a", "a_label": "A"}
    return Spec(**{**base, **kw})


def test_verdicts_of_targets_context_checks_and_missing_samples() -> None:
    ratio_row = spec(b="x.b", compare="A/B", target=Target("<=", 0.6))
    assert verdict(ratio_row, stats(1), stats(2), 0.5, []) == "met"
    assert verdict(ratio_row, stats(1), stats(1.5), 0.67, []) == "missed"
    assert verdict(ratio_row, stats(1), None, None, []) == "error"
    assert verdict(spec(target=Target("<=", 10, of="a")), stats(12), None, None, []) == "missed"
    assert verdict(spec(note="(context)"), stats(1), None, None, []) == "-"
    checked = spec(check="images.built_once")
    assert verdict(checked, stats(1), None, None, [Check("images.built_once", True)]) == "ok"
    assert verdict(checked, stats(1), None, None, [Check("images.built_once", False)]) == "failed"
    assert verdict(checked, stats(1), None, None, []) == "error"


def test_row_carries_wall_cpu_ratio_and_verdict() -> None:
    samples = {"x.a": [1.0, 3.0], "x.a.cpu": [2.0], "x.b": [4.0], "x.b.cpu": [4.0]}
    made = row(spec(b="x.b", b_label="B", compare="A/B", target=Target("<=", 0.6)), samples, [], 4)
    assert made["ratio"] == pytest.approx(0.5)
    assert made["a_cpu"]["median"] == 2.0
    assert made["b_cpu"]["median"] == 4.0
    assert made["met"] == "met"
    assert made["target"] == "A/B <= 0.6"


def test_exit_status_fails_on_errors_and_checks_and_on_missed_targets_unless_told_not_to() -> None:
    met, missed = {"met": "met"}, {"met": "missed"}
    assert exit_status([met], [Check("c", True)], [], targets=True) == 0
    assert exit_status([met], [Check("ready_ok", False)], [], targets=False) == 1
    assert exit_status([met], [], [{"measurement": "ready", "error": "x"}], targets=False) == 1
    assert exit_status([{"met": "error"}], [], [], targets=False) == 1
    assert exit_status([missed], [], [], targets=True) == 3
    assert exit_status([missed], [], [], targets=False) == 0


def test_every_row_of_the_table_names_a_known_measurement() -> None:
    assert {s.phase for s in SPECS} <= set(MEASUREMENTS)
    assert all(s.compare is None or s.b for s in SPECS)


UP_JSON = {
    "index": 3,
    "project": "demo-20300",
    "port_block": [20300, 20399],
    "ports": {"backend": {"8000": 20301}},
    "addresses": {"backend": {"8000": "127.0.0.1:20301"}},
}


def test_up_info_reads_up_json_and_builds_urls() -> None:
    info = UpInfo.parse(json.loads(json.dumps(UP_JSON)))
    assert (info.index, info.project, info.port_block) == (3, "demo-20300", (20300, 20399))
    assert info.url("backend", 8000, "/health") == "http://127.0.0.1:20301/health"
    with pytest.raises(BenchError, match="no port 8000 of 'auth'"):
        info.url("auth", 8000)


def test_up_info_names_a_missing_field() -> None:
    with pytest.raises(BenchError, match="'addresses'"):
        UpInfo.parse({k: v for k, v in UP_JSON.items() if k != "addresses"})


def test_live_projects_and_their_holders_of_status_json() -> None:
    doc = [
        {"state": "live", "project": "demo-20300", "holder": {"pid": 41}},
        {"state": "free", "project": "demo-20400", "holder": None},
    ]
    assert live_projects(doc) == {"demo-20300"}
    assert holder_pid(doc, "demo-20300") == 41
    assert holder_pid(doc, "demo-20400") is None
    with pytest.raises(BenchError, match="not a list"):
        live_projects({"berths": []})


def test_keepers_since_are_this_checkouts_new_keepers_only() -> None:
    keeper = "/venv/src/dockyard/sessions/keeper.py /repo build"

    def berth(project: str, cwd: str, started: float, command: str = keeper) -> dict[str, Any]:
        return {
            "state": "live",
            "project": project,
            "holder": {"pid": 7, "cwd": cwd, "started": started, "command": command},
        }

    doc = [
        berth("ours", "/repo", 100.0),
        berth("before", "/repo", 50.0),
        berth("elsewhere", "/other", 100.0),
        berth("a-run", "/repo", 100.0, "/venv/bin/python -m dockyard run -- true"),
        {"state": "free", "project": "free", "holder": None},
    ]
    assert keepers_since(doc, "/repo", 90.0) == {"ours": 7}


def test_run_report() -> None:
    doc = {"project": "demo-1", "exit_code": 0, "timings": {"acquire": 0.01, "up": 2.5, "run": 0.0, "down": 0.9}}
    report = RunReport.parse(doc)
    assert report.exit_code == 0
    assert report.timings["up"] == 2.5


def parallel_doc(**kw: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "result": "passed",
        "exit_code": 0,
        "wall_seconds": 20.5,
        "totals": {"shards": 3, "berths": 2, "tests": 30, "passed": 30, "failed": 0, "skipped": 0},
        "shards": [
            {"shard": "1/3", "began_seconds": 0.0, "wall_seconds": 10.0},
            {"shard": "2/3", "began_seconds": 3.0, "wall_seconds": 12.0},
            {"shard": "3/3", "began_seconds": None, "wall_seconds": None},  # an empty shard never starts
        ],
        "isolation_problems": [],
    }
    return {**doc, **kw}


def test_parallel_summary_reads_shard_walls_of_shards_that_ran() -> None:
    summary = ParallelSummary.parse(parallel_doc())
    assert summary.shard_walls == [10.0, 12.0]
    assert summary.shard_ends == [10.0, 15.0]
    assert summary.failures() == []


def test_parallel_summary_says_why_a_run_does_not_count() -> None:
    failed = ParallelSummary.parse(
        parallel_doc(result="failed", exit_code=1, totals={"tests": 30, "failed": 2}, isolation_problems=["shared"])
    )
    assert failed.failures() == ["result failed, exit 1, 2 of 30 test(s) failed", "not isolated: shared"]


def test_interval_override_sets_every_enabled_check_to_one_second() -> None:
    config = {
        "services": {
            "db": {"healthcheck": {"test": ["CMD", "true"], "interval": "5s"}},
            "off": {"healthcheck": {"disable": True}},
            "plain": {"image": "x"},
        }
    }
    assert yaml.safe_load(interval_override(config)) == {"services": {"db": {"healthcheck": {"interval": "1s"}}}}


def tag(name: str, at: float = 0.0) -> str:
    return json.dumps(
        {"Type": "image", "Action": "tag", "Actor": {"Attributes": {"name": name}}, "timeNano": int(at * 1e9)}
    )


def test_tag_counts_count_builds_by_image_name() -> None:
    lines = [tag("a:1"), tag("a:1"), tag("b:1"), json.dumps({"Type": "image", "Action": "delete"}), ""]
    assert tag_counts(lines) == {"a:1": 2, "b:1": 1}


def test_tag_events_carry_their_time() -> None:
    assert tag_events([tag("a:1", 1700000000.5)]) == [("a:1", 1700000000.5)]


def test_own_images_are_only_dockyards() -> None:
    def image(repo: str, tag: str) -> str:
        return json.dumps({"Repository": repo, "Tag": tag})

    lines = [
        image("dockyard-demo/auth", "dev"),
        image("dockyard/debian", "bookworm-minbase"),
        image("postgres", "16"),
        image("dockyard-bench/once", "bench"),
        image("<none>", "<none>"),
    ]
    assert own_images(lines) == ["dockyard-demo/auth:dev", "dockyard/debian:bookworm-minbase"]


def test_proc_json_names_the_command_when_stdout_is_not_json() -> None:
    proc = Proc(["dockyard", "up", "--json"], 0, 1.0, 0.5, "berth 3 is up\n", "")
    with pytest.raises(BenchError, match="`dockyard up --json` printed no JSON"):
        proc.json()
    assert Proc(["x"], 0, 1.0, 0.5, '{"index": 3}', "").json() == {"index": 3}


def test_the_report_shows_cpu_beside_wall_and_lists_failed_checks() -> None:
    bench = Bench(rounds=1, quick=True, shards=4)
    bench.samples = {"up.own.dockyard": [2.0], "up.own.dockyard.cpu": [3.0], "up.own.compose": [10.0]}
    bench.check("ready_ok.dockyard.own", False, "backend, auth /health in demo-20000")
    spec = next(s for s in SPECS if s.a == "up.own.dockyard" and s.b == "up.own.compose")
    meta = {
        "finished": "now",
        "rounds": 1,
        "cpus": 2,
        "loadavg_start": [0.1],
        "loadavg_end": [0.2],
        "loadavg_max_1m": 0.2,
        "versions": {"git": "abc1234"},
        "targets": True,
    }
    text = markdown([row(spec, bench.samples, bench.checks, 4)], meta, bench)
    assert "| 0.20 (A/B) | 3.00 / - | A/B <= 0.6 | met |" in text
    assert "git abc1234" in text
    assert "- **ready_ok.dockyard.own**: backend, auth /health in demo-20000" in text


def test_stamps_read_whole_lines_only() -> None:
    text = "1700000000.25 bench-watch-20000 127.0.0.1:20001\nnot a stamp\n1700000001.5 bench-watch-20000 127.0.0.1:20"
    assert stamps(text) == [Stamp(1700000000.25, "bench-watch-20000", "127.0.0.1:20001")]  # the last is cut short


def test_first_call_parts_are_seconds_from_the_start_and_name_what_is_missing() -> None:
    moments = ("imported", "plugins", "conftests", "sessionstart", "collected", "first_setup", "first_call")
    doc: dict[str, Any] = {m: 100.0 + i for i, m in enumerate(moments)} | {"project": "demo-20000"}
    assert first_call_parts(doc, 99.5)["first_call"] == pytest.approx(6.5)
    del doc["first_call"]
    with pytest.raises(BenchError, match="first_call"):
        first_call_parts(doc, 99.5)


def test_the_watch_copy_has_its_own_prefix_and_images(tmp_path: Path) -> None:
    root = project_copy(tmp_path)
    assert 'project_prefix = "bench-watch"' in (root / "pyproject.toml").read_text()
    compose = "".join(p.read_text() for p in (root / "compose").glob("*.yml"))
    assert "dockyard-demo/" not in compose
    assert "dockyard-bench-watch/backend:dev" in compose
    assert (root / "demo" / "backend" / "app.py").is_file()
    assert (root / ".dockerignore").is_file()

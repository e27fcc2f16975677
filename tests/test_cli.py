"""The ``engagement`` command as a user runs it: a real process, real files, documented exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import CSV_HEADER, write_files

# Events of yesterday (UTC), so that the default freshness check passes.
DAY = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
GOOD = {
    "customers/c.csv": f"{CSV_HEADER}\nC1,Ann,ann@x.com,EMEA,2024-01-01\nC2,Bob,bob@x.com,NA,2024-02-01\n",
    f"clickstream/dt={DAY}/p.jsonl": (
        '{"event_id":"e1","user_id":"C1","event_type":"page_view","page_url":"/","duration_ms":5,'
        f'"timestamp":"{DAY}T10:00:00Z"}}\n'
        '{"event_id":"e2","user_id":"C2","event_type":"purchase","page_url":"/checkout",'
        f'"timestamp":"{DAY}T11:00:00Z"}}\n'
    ),
}


def cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGEMENT_")}
    full_env.update(env or {})
    full_env["COLUMNS"] = "200"
    return subprocess.run([sys.executable, "-m", "engagement", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=120)


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error:")
    for w in words:
        assert w in err, err


def test_help_explains_commands_and_exit_codes(tmp_path: Path) -> None:
    proc = cli(tmp_path, "--help")
    assert proc.returncode == 0
    for word in ("generate", "run", "status", "Exit codes", "FAILED"):
        assert word in proc.stdout
    run_help = cli(tmp_path, "run", "--help").stdout
    for word in ("--source", "--warehouse", "--engine", "--json", "ENGAGEMENT_SOURCE"):
        assert word in run_help


def test_run_json_reports_steps_tables_rejected_checks(tmp_path: Path) -> None:
    write_files(tmp_path / "src", GOOD)
    proc = cli(tmp_path, "run", "--source", "src", "--warehouse", "wh/w.duckdb", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "SUCCEEDED" and doc["engine"] == "duckdb"
    assert doc["tables"]["dim_customer"] == 2 and doc["tables"]["fact_click_events"] == 2
    assert doc["rejected"] == {"raw_customer_demographics": {}, "raw_clickstream_events": {}}
    steps = {(s["step"], s["table_name"]): s for s in doc["steps"]}
    assert steps[("ingest", "raw_clickstream_events")]["rows_read"] == 2
    assert steps[("discover", None)]["files"] == 2 and steps[("ingest", "raw_customer_demographics")]["files"] == 1
    assert steps[("merge", "dim_customer")]["rows_inserted"] == 2
    assert all(s["seconds"] is not None for s in doc["steps"])
    assert {c["check_name"] for c in doc["checks"]} >= {"raw_customer_id_not_null", "raw_customer_id_unique"}
    assert all(set(c) >= {"check_name", "table_name", "column_name", "metric_value", "status"} for c in doc["checks"])
    # the log file names the run on every line
    lines = (tmp_path / "logs" / "engagement.log").read_text().splitlines()
    assert lines and all(f"run={doc['run_id']}" in line for line in lines)


def test_run_prints_a_summary_that_adds_up(tmp_path: Path) -> None:
    files = dict(GOOD)
    files["customers/c.csv"] += "C3,Cy,cy@x.com,NA\n"  # 4 fields -> rejected
    write_files(tmp_path / "src", files)
    proc = cli(tmp_path, "run", "--source", "src", "--warehouse", "w.duckdb")
    assert proc.returncode == 1, proc.stderr  # 1 of 3 customer records rejected: over the 10% fail level
    assert "customers_rejected" in proc.stdout and "FAILED" in proc.stdout
    assert "read = rejected + accepted" in proc.stdout
    # source | files | read | rejected | malformed_row | missing_key | invalid_value | accepted
    cells = next(line for line in proc.stdout.splitlines() if "customers" in line).replace("│", " ").split()
    assert cells == ["customers", "1", "3", "1", "1", "0", "0", "2"]
    assert str((tmp_path / "w.duckdb").resolve()) in proc.stdout


def test_failed_check_exits_1(tmp_path: Path) -> None:
    files = dict(GOOD)
    files["customers/c.csv"] += ",NoKey,n@x.com,NA,2024-01-01\n"  # 1 of 3 raw rows: over the 5% fail level
    write_files(tmp_path / "src", files)
    proc = cli(tmp_path, "run", "--source", "src", "--warehouse", "w.duckdb", "--json")
    assert proc.returncode == 1
    checks = {c["check_name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["raw_customer_id_not_null"]["status"] == "FAILED"
    assert checks["raw_customer_id_not_null"]["metric_value"] == 1


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["run", "--source", "nowhere"], {}, ["nowhere", "does not exist", "--source"]),
        (["run", "--engine", "oracle"], {}, ["ENGAGEMENT_ENGINE", "duckdb"]),
        (["run"], {"ENGAGEMENT_DUCKDB_MEMORY_LIMIT": "lots"}, ["ENGAGEMENT_DUCKDB_MEMORY_LIMIT", "1GB"]),
        (["run"], {"ENGAGEMENT_SCHEMA": "x; drop table y"}, ["ENGAGEMENT_SCHEMA", "not a valid identifier"]),
        (["run"], {"ENGAGEMENT_LOG_LEVEL": "loud"}, ["ENGAGEMENT_LOG_LEVEL"]),
        (["generate", "--out", "o", "--defect-rate", "2"], {}, ["defect_rate"]),
        (["status", "--warehouse", "missing.duckdb"], {}, ["missing.duckdb", "engagement run"]),
        (["status", "--engine", "snowpark-local"], {}, ["keeps nothing between commands"]),
    ],
)
def test_usage_and_config_errors_exit_2_with_one_line(tmp_path: Path, args, env, words) -> None:
    write_files(tmp_path / "data" / "sample", GOOD)
    proc = cli(tmp_path, *args, env=env)
    assert proc.returncode == 2, proc.stderr
    assert_one_line_error(proc, *words)


def test_unknown_flag_is_a_usage_error(tmp_path: Path) -> None:
    proc = cli(tmp_path, "run", "--no-such-flag")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_empty_source_folder_is_an_error_step_exit_3(tmp_path: Path) -> None:
    (tmp_path / "empty" / "customers").mkdir(parents=True)
    proc = cli(tmp_path, "run", "--source", "empty", "--warehouse", "w.duckdb", "--json")
    assert proc.returncode == 3
    doc = json.loads(proc.stdout)
    assert doc["status"] == "ERROR"
    assert "no input files" in doc["error"] and "customers/*.csv" in doc["error"]
    status = cli(tmp_path, "status", "--warehouse", "w.duckdb", "--json")
    runs = json.loads(status.stdout)
    assert runs[0]["status"] == "ERROR" and "no input files" in runs[0]["error_message"]


def test_locked_warehouse_is_a_one_line_error_exit_3(tmp_path: Path) -> None:
    write_files(tmp_path / "src", GOOD)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(60)",
         str(tmp_path / "w.duckdb")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        proc = cli(tmp_path, "run", "--source", "src", "--warehouse", "w.duckdb",
                   env={"ENGAGEMENT_DUCKDB_LOCK_WAIT": "1"})
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 3
    assert_one_line_error(proc, "in use by process", "(waited 1 s)", "--warehouse")


def test_a_run_waits_for_a_brief_reader_such_as_the_dashboard(tmp_path: Path) -> None:
    write_files(tmp_path / "src", GOOD)
    assert cli(tmp_path, "run", "--source", "src", "--warehouse", "w.duckdb").returncode == 0
    # the dashboard opens the file read-only for about a second per page, which locks out writers
    reader = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); print('reading', flush=True); "
         "time.sleep(4); c.close()",
         str(tmp_path / "w.duckdb")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "reading"
        started = time.monotonic()
        proc = cli(tmp_path, "run", "--source", "src", "--warehouse", "w.duckdb", "--full-refresh")
        waited = time.monotonic() - started
    finally:
        reader.kill()
        reader.wait()
    assert proc.returncode == 0, proc.stderr
    assert waited > 1  # it did meet the lock, and waited it out


def test_status_lists_runs_newest_first(tmp_path: Path) -> None:
    write_files(tmp_path / "src", GOOD)
    first = json.loads(cli(tmp_path, "run", "-s", "src", "-w", "w.duckdb", "--json").stdout)["run_id"]
    second = json.loads(cli(tmp_path, "run", "-s", "src", "-w", "w.duckdb", "--json").stdout)["run_id"]
    runs = json.loads(cli(tmp_path, "status", "-w", "w.duckdb", "--json").stdout)
    assert [r["run_id"] for r in runs] == [second, first]
    assert runs[1]["status"] == "SUCCEEDED" and runs[1]["rows_read"] == 4 and runs[1]["checks"] == "PASSED"
    assert runs[0]["status"] == "SUCCEEDED" and runs[0]["rows_read"] == 0  # nothing new: no file read
    table = cli(tmp_path, "status", "-w", "w.duckdb")
    assert table.returncode == 0 and second in table.stdout


def test_python_dash_m_and_version(tmp_path: Path) -> None:
    proc = cli(tmp_path, "--version")
    assert proc.returncode == 0 and proc.stdout.startswith("engagement ")


def test_a_source_without_clickstream_files_warns_and_fails_its_row_count(tmp_path: Path) -> None:
    write_files(tmp_path / "src", {"customers/c.csv": GOOD["customers/c.csv"]})
    proc = cli(tmp_path, "run", "--source", "src", "--warehouse", "w.duckdb", "--json")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["status"] == "SUCCEEDED"
    assert any("no clickstream files" in w and "raw_clickstream_events is emptied" in w for w in doc["warnings"])
    checks = {c["check_name"]: c["status"] for c in doc["checks"]}
    assert checks["raw_clickstream_events_row_count"] == "FAILED"
    shown = cli(tmp_path, "run", "--source", "src", "--warehouse", "w.duckdb")
    assert "warning: no clickstream files" in shown.stdout


def test_bad_numbers_and_files_for_options_are_one_line_usage_errors(tmp_path: Path) -> None:
    proc = cli(tmp_path, "status", "--limit", "-5", "--warehouse", "w.duckdb")
    assert proc.returncode == 2
    assert_one_line_error(proc, "--limit -5", "1 or more")
    (tmp_path / "taken").write_text("x")
    proc = cli(tmp_path, "generate", "--out", "taken", "--customers", "10", "--events", "10")
    assert proc.returncode == 2
    assert_one_line_error(proc, "is a file, not a folder")
    assert (tmp_path / "taken").read_text() == "x"
    assert not (tmp_path / "w.duckdb").exists()


def test_a_command_refused_before_it_starts_creates_nothing(tmp_path: Path) -> None:
    proc = cli(tmp_path, "run", "--source", "missing")
    assert proc.returncode == 2
    assert_one_line_error(proc, "missing does not exist")
    proc = cli(tmp_path, "checks", "--warehouse", "typo.duckdb")
    assert proc.returncode == 2
    assert_one_line_error(proc, "typo.duckdb does not exist", "--warehouse")
    proc = cli(tmp_path, "status", "--warehouse", "typo.duckdb")
    assert proc.returncode == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no warehouse/, no logs/


def test_a_warehouse_or_source_of_the_wrong_kind_is_a_config_error_with_a_fix(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "notes.txt").write_text("not a database, not a folder of sources")
    cases = {("--warehouse", "src"): "is a folder, not a DuckDB file",
             ("--warehouse", "notes.txt"): "is not a DuckDB database",
             ("--warehouse", "notes.txt/w.duckdb"): "is a file, not a folder",
             ("--source", "notes.txt"): "is a file, not a folder",
             ("--source", ""): "the source is empty"}
    for (flag, value), words in cases.items():
        args = ("run", "--source", "src", flag, value) if flag == "--warehouse" else ("run", flag, value)
        proc = cli(tmp_path, *args, "--warehouse", "w.duckdb") if flag == "--source" else cli(tmp_path, *args)
        assert proc.returncode == 2, (flag, value, proc.stderr)
        assert_one_line_error(proc, words, flag)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "src"]


def test_a_broken_link_or_pipe_among_the_sources_is_named_and_the_run_goes_on(tmp_path: Path) -> None:
    write_files(tmp_path / "src", GOOD)
    (tmp_path / "src" / "customers" / "broken.csv").symlink_to(tmp_path / "nowhere.csv")
    os.mkfifo(tmp_path / "src" / "customers" / "pipe.csv")
    proc = cli(tmp_path, "run", "--source", "src", "--warehouse", "w.duckdb")
    assert proc.returncode == 0, proc.stderr
    log = (tmp_path / "logs" / "engagement.log").read_text()
    for name in ("broken.csv", "pipe.csv"):
        line, = [x for x in log.splitlines() if name in x]
        assert "skipped source" in line and "not a regular file" in line
        assert name in proc.stdout  # and in the run's summary, among its warnings


def test_a_log_folder_or_memory_limit_that_cannot_work_is_a_config_error(tmp_path: Path) -> None:
    write_files(tmp_path / "src", GOOD)
    (tmp_path / "afile").write_text("x")
    cases = {"ENGAGEMENT_LOG_DIR": ("afile", "ENGAGEMENT_LOG_DIR"),
             "ENGAGEMENT_DUCKDB_MEMORY_LIMIT": ("1KB", "64MB or more")}
    for var, (value, words) in cases.items():
        proc = cli(tmp_path, "run", "--source", "src", "--warehouse", "w.duckdb", env={var: value})
        assert proc.returncode == 2, proc.stderr
        assert_one_line_error(proc, words)
        assert "unexpected" not in proc.stderr
    assert not (tmp_path / "w.duckdb").exists()


def test_a_checks_or_env_file_that_is_not_utf8_or_names_a_list_is_a_config_error(tmp_path: Path) -> None:
    write_files(tmp_path / "src", GOOD)
    (tmp_path / "latin1.yml").write_bytes("checks:\n  - {name: caf\xe9, type: not_null, table: dim_customer}\n"
                                          .encode("latin-1"))
    (tmp_path / "listed.yml").write_text("checks:\n  - {name: c, type: not_null, table: [dim_customer], "
                                         "column: customer_id}\n")
    for name, words in {"latin1.yml": "not UTF-8", "listed.yml": "table must be one name"}.items():
        proc = cli(tmp_path, "run", "--source", "src", "--warehouse", "w.duckdb", "--checks", name)
        assert proc.returncode == 2, proc.stderr
        assert_one_line_error(proc, words)
    (tmp_path / ".env").write_bytes("ENGAGEMENT_SCHEMA=caf\xe9\n".encode("latin-1"))
    proc = cli(tmp_path, "run", "--source", "src", "--warehouse", "w.duckdb")
    assert proc.returncode == 2, proc.stderr
    assert_one_line_error(proc, ".env", "UTF-8")
    assert not (tmp_path / "w.duckdb").exists()


def test_the_notebook_chain_with_a_missing_source_creates_nothing(tmp_path: Path) -> None:
    proc = cli(tmp_path, "notebooks", "run", "--source", "nowhere")
    assert proc.returncode == 2, proc.stderr
    assert_one_line_error(proc, "source folder nowhere does not exist")
    assert list(tmp_path.iterdir()) == []

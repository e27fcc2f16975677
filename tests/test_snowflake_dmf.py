"""The Snowflake DMF script (custom DMFs where the system ones differ, re-runnable, with the grants it
needs), and every script in sql/ parsing as Snowflake SQL."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest
import sqlglot
from sqlglot import exp
from sqlglot.dialects.snowflake import Snowflake
from sqlglot.tokens import TokenType

from engagement.check_file import load_checks
from engagement.engines.snowflake_dmf import dmf_script
from engagement.model import CheckType

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = dmf_script(load_checks(), "ENGAGEMENT", "MARKETING")
ASSOCIATION = re.compile(r"ALTER TABLE (\S+) (ADD|DROP) DATA METRIC FUNCTION (\S+)\s+ON ", re.S)


def statements(text: str) -> list[str]:
    """The statements of a script, split where Snowflake would (``;`` outside strings and $$ bodies)."""
    ends = [t.start for t in Snowflake().tokenize(text) if t.token_type is TokenType.SEMICOLON]
    starts = [0, *(e + 1 for e in ends)]
    chunks = [text[s:e] for s, e in zip(starts, ends, strict=False)]
    code = [re.sub(r"^\s*--.*$", "", c, flags=re.M).strip() for c in chunks]
    return [c for c in code if c]


def association(statement: str) -> tuple[str, str, str, str] | None:
    """(table, ADD or DROP, function, ON arguments) of an ALTER TABLE … DATA METRIC FUNCTION, else None."""
    m = ASSOCIATION.match(statement)
    if not m:
        return None
    rest, depth = statement[m.end():], 0
    for i, ch in enumerate(rest):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0:
            return m.group(1), m.group(2), m.group(3), rest[: i + 1]
    raise AssertionError(f"unbalanced ON (…) in {statement!r}")


def custom_dmf(script: str, check_name: str) -> str:
    """The CREATE statement of a check's custom DMF."""
    name = f'"DMF_{check_name.upper()}"'
    found = [s for s in statements(script) if s.startswith("CREATE OR REPLACE DATA METRIC FUNCTION") and name in s]
    assert len(found) == 1, check_name
    return found[0]


def body(create: str) -> str:
    return re.search(r"AS \$\$(.*)\$\$$", create, re.S).group(1).strip()


def checks_file(tmp_path: Path, entry: str) -> Path:
    path = tmp_path / "checks.yml"
    path.write_text("checks:\n" + entry)
    return path


# --- freshness -------------------------------------------------------------------------------

def test_freshness_on_an_ntz_column_is_a_custom_dmf_not_the_system_one() -> None:
    added = {a[2] for s in statements(SCRIPT) if (a := association(s)) and a[1] == "ADD" and "EVENT_TIMESTAMP" in a[3]}
    assert added == {'"ENGAGEMENT"."MARKETING"."DMF_FACT_EVENT_FRESHNESS"'}
    assert not any("SNOWFLAKE.CORE.FRESHNESS" in s for s in statements(SCRIPT))
    create = custom_dmf(SCRIPT, "fact_event_freshness")
    assert "TABLE(arg_c TIMESTAMP_NTZ)" in create
    assert "SNOWFLAKE.CORE.DATA_METRIC_SCHEDULED_TIME()" in body(create)


def test_freshness_on_a_date_column_keeps_the_system_dmf(tmp_path: Path) -> None:
    checks = load_checks(checks_file(tmp_path, (
        "  - {name: signup_fresh, type: freshness, table: dim_customer, column: signup_date, fail: 2d,"
        " dimension: timeliness}\n")))
    script = dmf_script(checks, "ENGAGEMENT", "MARKETING")
    adds = [a for s in statements(script) if (a := association(s)) and a[1] == "ADD"]
    assert adds == [('"ENGAGEMENT"."MARKETING"."DIM_CUSTOMER"', "ADD", "SNOWFLAKE.CORE.FRESHNESS", "(SIGNUP_DATE)")]
    assert "CREATE OR REPLACE DATA METRIC FUNCTION" not in script
    assert "EXPECTATION \"SIGNUP_FRESH\" (VALUE <= 172800)" in script


def run_in_duckdb(select: str, column_type: str, values: list[object], timezone: str = "UTC") -> object:
    """A custom DMF's SELECT, transpiled to DuckDB, over ``arg_t(arg_c)`` holding ``values``."""
    con = duckdb.connect()
    con.execute(f"SET TimeZone = '{timezone}'")
    con.execute(f"CREATE TABLE arg_t (arg_c {column_type})")
    con.executemany("INSERT INTO arg_t VALUES (?)", [(v,) for v in values])
    (sql,) = sqlglot.transpile(select, read="snowflake", write="duckdb")
    return con.execute(sql).fetchone()[0]


@pytest.mark.parametrize("session_zone", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_freshness_dmf_measures_utc_values_against_the_clock_in_utc(session_zone: str) -> None:
    # The scheduled time is a TIMESTAMP_LTZ; here 12:00 at +02:00, which is 10:00 UTC.
    clock = "CAST('2024-01-01 12:00:00+02:00' AS TIMESTAMP_LTZ)"
    select = body(custom_dmf(SCRIPT, "fact_event_freshness")).replace(
        "SNOWFLAKE.CORE.DATA_METRIC_SCHEDULED_TIME()", clock)
    newest_utc = ["2024-01-01 08:00:00", "2024-01-01 09:00:00"]
    assert run_in_duckdb(select, "TIMESTAMP", newest_utc, session_zone) == 3600


# --- duplicate_count -------------------------------------------------------------------------

def test_duplicate_count_is_a_custom_dmf_counting_as_the_pipeline() -> None:
    assert not any("SNOWFLAKE.CORE.DUPLICATE_COUNT" in s for s in statements(SCRIPT))
    duplicate_checks = [c for c in load_checks() if c.type is CheckType.DUPLICATE_COUNT]
    assert duplicate_checks
    values: list[object] = ["a", "a", " a ", "", "  ", None, None, "b"]
    for check in duplicate_checks:
        select = body(custom_dmf(SCRIPT, check.name))
        # a, a, a (trimmed) and b: two extra copies; NULLs and blanks never count (the system DMF
        # counts NULLs and would see " a " as another value).
        assert run_in_duckdb(select, "VARCHAR", values) == 2
        assert run_in_duckdb(select, "VARCHAR", ["x", None, None, ""]) == 0


# --- re-runs ---------------------------------------------------------------------------------

class Account:
    """What Snowflake documents about associations, to replay the script against: an ADD of an
    association that exists fails, a DROP of one that does not fails, a custom DMF must exist
    before it is associated, and (stricter than documented) an associated DMF is not replaced."""

    HANDLED = re.compile(r"^EXECUTE IMMEDIATE \$\$\s*BEGIN\s+(.*?);\s*EXCEPTION\s+WHEN OTHER THEN NULL;\s*END;\s*\$\$$",
                         re.S)

    def __init__(self) -> None:
        self.associations: list[tuple[str, str, str]] = []
        self.functions: set[str] = set()

    def run(self, script: str) -> None:
        for statement in statements(script):
            handled = self.HANDLED.match(statement)
            if handled:
                try:
                    self.execute(handled.group(1))
                except ValueError:
                    pass
            else:
                self.execute(statement)

    def execute(self, statement: str) -> None:
        if statement.startswith("CREATE OR REPLACE DATA METRIC FUNCTION"):
            name = statement.split()[6].split("(")[0]
            if any(f == name for _, f, _ in self.associations):
                raise ValueError(f"{name} is associated")
            self.functions.add(name)
            return
        found = association(statement)
        if found is None:
            return
        table, action, function, on = found
        key = (table, function, on)
        if action == "ADD":
            if key in self.associations:
                raise ValueError(f"already associated: {key}")
            if not function.startswith("SNOWFLAKE.CORE.") and function not in self.functions:
                raise ValueError(f"no such DMF: {function}")
            self.associations.append(key)
        else:
            if key not in self.associations:
                raise ValueError(f"not associated: {key}")
            self.associations.remove(key)


def test_the_script_runs_twice_and_leaves_one_association_per_check() -> None:
    account = Account()
    account.run(SCRIPT)
    first = sorted(account.associations)
    account.run(SCRIPT)
    mapped = [c for c in load_checks() if c.type not in (CheckType.REJECTED_ROWS, CheckType.VOLUME_CHANGE)]
    assert sorted(account.associations) == first
    assert len(account.associations) == len(set(account.associations)) == len(mapped)


def test_without_the_drops_a_second_run_fails() -> None:
    # The replay above can fail: the script as it was before (ADD only) does not survive a re-run.
    script = "\n".join(s + ";" for s in statements(SCRIPT) if not s.startswith("EXECUTE IMMEDIATE"))
    account = Account()
    account.run(script)
    with pytest.raises(ValueError, match="is associated|already associated"):
        account.run(script)


def test_every_add_is_preceded_by_the_drop_of_the_same_association() -> None:
    code = statements(SCRIPT)
    adds = 0
    for i, statement in enumerate(code):
        found = association(statement)
        if not found or found[1] != "ADD":
            continue
        adds += 1
        table, _, function, on = found
        before = code[i - 1] if not code[i - 1].startswith("CREATE OR REPLACE") else code[i - 2]
        drop = Account.HANDLED.match(before)
        assert drop, f"no tolerant DROP before {statement!r}"
        assert association(drop.group(1)) == (table, "DROP", function, on)
    assert adds == 13


# --- grants ----------------------------------------------------------------------------------

def test_setup_grants_what_the_dmf_script_needs() -> None:
    setup = [re.sub(r"\s+", " ", s) for s in statements((ROOT / "sql" / "01_setup.sql").read_text())]
    dmf_schema = "GRANT CREATE DATA METRIC FUNCTION ON SCHEMA ENGAGEMENT.MARKETING TO ROLE ENGAGEMENT_ROLE"
    account = ["GRANT DATABASE ROLE SNOWFLAKE.DATA_METRIC_USER TO ROLE ENGAGEMENT_ROLE",
               "GRANT EXECUTE DATA METRIC FUNCTION ON ACCOUNT TO ROLE ENGAGEMENT_ROLE"]
    for grant in (dmf_schema, *account):
        assert grant in setup, grant
    roles = [(i, s.split()[-1]) for i, s in enumerate(setup) if s.startswith("USE ROLE ")]

    def role_at(statement: str) -> str:
        index = setup.index(statement)
        return [r for i, r in roles if i < index][-1]

    assert role_at(dmf_schema) == "SYSADMIN"  # the schema's owner
    assert all(role_at(g) == "ACCOUNTADMIN" for g in account)


# --- every script parses ---------------------------------------------------------------------

# Documented Snowflake statement forms that sqlglot (30.x) has no grammar for: it keeps them as an
# opaque Command. Each is allowed by its shape only; the SQL they embed is parsed on its own below.
UNMODELLED = {
    r"CREATE ROLE IF NOT EXISTS \w+\s+COMMENT = '[^']*'": "CREATE ROLE",
    r"GRANT ROLE \w+ TO (ROLE|USER) \w+": "GRANT ROLE",
    r"GRANT DATABASE ROLE SNOWFLAKE\.\w+ TO ROLE \w+": "GRANT DATABASE ROLE",
    r"ALTER TABLE \S+ (ADD|DROP) DATA METRIC FUNCTION \S+\s+ON \(.*\)": "a DMF association",
    (r"CREATE OR REPLACE DATA METRIC FUNCTION \S+\(arg_t TABLE\(arg_c [\w(),]+\)\)\s+RETURNS NUMBER"
     r"\s+COMMENT = '[^']*'\s+AS \$\$.*\$\$"): "CREATE DATA METRIC FUNCTION",
    r"EXECUTE IMMEDIATE \$\$.*\$\$": "EXECUTE IMMEDIATE of a Snowflake Scripting block",
}


def assert_parses(statement: str) -> None:
    """One statement parses as Snowflake SQL, or is an allowed unmodelled form whose embedded SQL parses."""
    tree = sqlglot.parse_one(statement, read="snowflake")
    if not any(isinstance(node, exp.Command) for node in tree.walk()):
        return
    assert any(re.fullmatch(form, statement, re.S) for form in UNMODELLED), f"sqlglot cannot parse {statement!r}"
    if statement.startswith("CREATE OR REPLACE DATA METRIC FUNCTION"):
        query = sqlglot.parse_one(body(statement), read="snowflake")
        assert isinstance(query, exp.Select) and not any(isinstance(n, exp.Command) for n in query.walk()), statement
    if statement.startswith("EXECUTE IMMEDIATE"):
        block = Account.HANDLED.match(statement)
        assert block, f"unexpected block {statement!r}"
        assert_parses(block.group(1))


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "sql").glob("*.sql")))
def test_every_statement_of_every_sql_script_parses(name: str) -> None:
    text = (ROOT / "sql" / name).read_text().replace("<YOUR_USER>", "ANALYST")
    parsed = [e for e in sqlglot.parse(text, read="snowflake") if e is not None and not isinstance(e, exp.Semicolon)]
    code = statements(text)
    assert len(parsed) == len(code) > 0
    for statement in code:
        assert_parses(statement)


def test_the_parse_check_rejects_what_sqlglot_cannot_read() -> None:
    with pytest.raises(AssertionError, match="cannot parse"):
        assert_parses("ALTER TABLE T ADD DATA METRIC FUNCTION F")  # no ON (…)
    with pytest.raises(sqlglot.errors.ParseError):
        assert_parses("SELECT COUNT( FROM arg_t")

"""``engagement doctor`` on Snowflake: the connection, the session's context, the objects of
``sql/01``–``03``, the privileges a run needs, the external stage.

It only reads: SELECT CURRENT_*(), one query on INFORMATION_SCHEMA.COLUMNS, DESC STAGE (a stage
*name*: ``@`` is for locations), LIST, SHOW GRANTS TO ROLE. How inherited roles are handled is
in :mod:`engagement.engines.snowflake_grants`. The session can be given (tests pass one over
:class:`engagement.engines.snowflake_recorder.RecordingConnection`); then the connection and
its settings are not inspected, only the account behind the session.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from engagement.config import Settings
from engagement.doctor import CheckResult, failed, guarded, origin, passed, skipped, unexpected
from engagement.engines.snowflake_connection import connection_checks
from engagement.engines.snowflake_ddl import columns_query, qualified
from engagement.engines.snowflake_grants import (
    TABLE_PRIVILEGES,
    RoleGrants,
    missing,
    object_name,
    read_grants,
    run_needs,
    shown,
)
from engagement.engines.snowflake_stage import stage_url
from engagement.exceptions import ConfigError
from engagement.model import TABLES

STAGE = "ENGAGEMENT_STAGE"  # the internal stage of sql/02_stages.sql (engagement.engines.snowpark.STAGE)
RunSql = Callable[[str], Sequence[Any]]


def run_checks(settings: Settings, flags: Mapping[str, Any], *, dmf: bool = False,
               session: Any = None) -> Iterator[CheckResult]:
    """Every Snowflake item, in order (see the module docstring)."""
    yield passed("engine", f"snowflake (from {origin('engine', flags, '--engine')})")
    own = session is None
    if own:
        described = list(connection_checks(settings, flags))
        yield from described
        if any(r.name == "connection" and not r.ok for r in described):
            yield skipped("connect", "there is no usable connection")
            return
        session, result = connect(settings)
        yield result
        if session is None:
            yield skipped("account", "the connection failed")
            return
    else:
        yield passed("connection", "an open Snowpark session was given; its connection settings are not inspected")
    try:
        yield from account_checks(lambda sql: session.sql(sql).collect(), settings, dmf=dmf)
    except Exception as exc:  # the account stopped answering mid-way
        yield unexpected("account", exc)
    finally:
        if own:
            session.close()


def connect(settings: Settings) -> tuple[Any, CheckResult]:
    """Open a session exactly as a run does; a failure is the run's own one-line ConfigError."""
    from engagement.engines.snowflake_session import create_session

    logging.getLogger("snowflake").addHandler(logging.NullHandler())  # no connector warnings on stderr
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return create_session(settings, local=False), passed("connect", "a session opened")
    except ConfigError as exc:
        detail, _, fix = str(exc).partition("; ")
        return None, failed("connect", detail, fix or "check the connection's settings above")
    except Exception as exc:
        return None, unexpected("connect", exc)


def account_checks(run: RunSql, settings: Settings, *, dmf: bool) -> Iterator[CheckResult]:
    """What the account behind an open session says, one item after the other."""
    context = {key: current(run, key) for key in ("ACCOUNT", "USER", "ROLE", "WAREHOUSE", "DATABASE", "SCHEMA")}
    yield passed("account", f"{context['ACCOUNT'] or '?'} as user {context['USER'] or '?'}")
    db, sch = settings.snowflake_database.upper(), settings.snowflake_schema.upper()
    role = context["ROLE"]
    yield context_check("role", role, settings.snowflake_role, "ENGAGEMENT_SNOWFLAKE_ROLE", context["USER"])
    yield context_check("warehouse", context["WAREHOUSE"], settings.snowflake_warehouse,
                        "ENGAGEMENT_SNOWFLAKE_WAREHOUSE", context["USER"])
    yield context_check("database", context["DATABASE"], db, "ENGAGEMENT_SNOWFLAKE_DATABASE", context["USER"], role)
    yield context_check("schema", context["SCHEMA"], f"{db}.{sch}", "ENGAGEMENT_SNOWFLAKE_SCHEMA", context["USER"],
                        role, current_value=f"{context['DATABASE']}.{context['SCHEMA']}" if context["SCHEMA"] else None)
    expected_role = object_name(settings.snowflake_role) if settings.snowflake_role else None
    owner = expected_role or role  # the role the objects' scripts should run as
    tables_found: set[str] = set()
    if context["DATABASE"]:
        results, tables_found = table_checks(run, db, sch, owner)
        yield from results
    else:
        yield skipped("tables", f"database {db} is not usable")
    yield guarded(f"stage {STAGE}", lambda: stage_check(run, db, sch, owner))
    if not role:
        yield skipped("privileges", "there is no current role")
    elif expected_role and role != expected_role:
        yield skipped("privileges", f"the session's role is {shown(role)}, not {shown(expected_role)}: "
                      "fix the role first")
    else:
        yield from grant_checks(run, settings, role, context["WAREHOUSE"], tables_found, dmf=dmf)
    if settings.snowflake_external_stage:
        yield from external_stage_checks(run, settings, db, sch)


def current(run: RunSql, what: str) -> str | None:
    """``SELECT CURRENT_<what>()``: the session's context, as Snowflake names it (None when unset
    or unusable). Not upper-cased: a role created as "my_role" is named exactly so in SHOW GRANTS."""
    rows = run(f"SELECT CURRENT_{what}()")
    value = rows[0][0] if rows else None
    return str(value).strip('"') if value else None


def context_check(name: str, value: str | None, expected: str | None, setting: str, user: str | None,
                  role: str | None = None, current_value: str | None = None) -> CheckResult:
    """The session's current ``name`` against what the settings expect."""
    value_shown = current_value or value
    want = object_name(expected) if expected else None
    if value is None:
        if name == "role":
            return failed(name, "the session has no current role", f"set {setting}, or role in the connection")
        if name == "warehouse":
            why = f" ({want} is missing or not usable)" if want else ""
            return failed(name, f"the session has no current warehouse{why}",
                          f"set {setting} (sql/01_setup.sql creates ENGAGEMENT_WH), or warehouse in the connection, "
                          "and GRANT USAGE on it to the role")
        return failed(name, f"{want} does not exist or role {role or '?'} cannot use it",
                      f"run sql/01_setup.sql once, or set {setting}")
    if want and value_shown != want:
        fix = (f"GRANT ROLE {shown(want)} TO USER {shown(user or '<user>')}, or fix {setting} / the connection's role"
               if name == "role" else f"fix {setting}, or the connection's {name}")
        return failed(name, f"{value_shown}, but {setting} expects {want}", fix)
    said = f"as {setting} expects" if expected and name in ("role", "warehouse") else \
        "as the settings expect" if expected else f"the connection's; {setting} not set"
    return passed(name, f"{value_shown} ({said})")


def table_checks(run: RunSql, db: str, sch: str, role: str | None) -> tuple[list[CheckResult], set[str]]:
    """One line per model table, from a single query on INFORMATION_SCHEMA.COLUMNS."""
    try:
        rows = run(columns_query(db, sch))
    except Exception as exc:
        return [unexpected("tables", exc)], set()
    columns: dict[str, set[str]] = {}
    for row in rows:
        columns.setdefault(str(row[0]).upper(), set()).add(str(row[1]).upper())
    as_role = f" as {shown(role)}" if role else ""
    results = []
    for table in TABLES:
        name, found = table.name.upper(), columns.get(table.name.upper())
        if found is None:
            results.append(failed(f"table {name}", f"missing from {db}.{sch}",
                                  f"run sql/03_tables.sql{as_role} (`engagement sql` prints it), or let "
                                  "`engagement run` create it (needs CREATE TABLE on the schema)"))
            continue
        lacking = [c.name.upper() for c in table.columns if c.name.upper() not in found]
        if lacking:
            results.append(failed(f"table {name}", f"lacks column(s) {', '.join(lacking)}",
                                  "`engagement run` adds them (ALTER TABLE … ADD COLUMN, as the table's owner)"))
        else:
            results.append(passed(f"table {name}", f"all {len(table.columns)} columns of the model"))
    return results, {t for t in columns if t in {m.name.upper() for m in TABLES}}


def describe_stage(run: RunSql, db: str, sch: str, stage: str) -> str:
    """DESC STAGE on the stage's *name* (never ``@name``); its URL, '' for an internal stage."""
    return stage_url(run(f"DESC STAGE {qualified(db, sch, stage)}"))


def stage_check(run: RunSql, db: str, sch: str, role: str | None) -> CheckResult:
    name, full = f"stage {STAGE}", f"{db}.{sch}.{STAGE}"
    try:
        url = describe_stage(run, db, sch, STAGE)
    except Exception:
        return failed(name, f"{full} does not exist or role {role or '?'} cannot see it",
                      f"run sql/02_stages.sql{f' as {shown(role)}' if role else ''}")
    if url:
        return failed(name, f"{full} is an external stage ({url}); the engine PUTs each run's records to it",
                      "recreate it as the internal stage of sql/02_stages.sql")
    return passed(name, f"internal stage {full} exists")


def grant_checks(run: RunSql, settings: Settings, role: str, warehouse: str | None, tables: set[str],
                 *, dmf: bool) -> Iterator[CheckResult]:
    """One line per privilege a run needs, from the grants of the role and of those it inherits."""
    try:
        grants = read_grants(run, role)
    except Exception as exc:
        yield failed("roles", f"SHOW GRANTS TO ROLE {shown(role)} failed: {str(exc).splitlines()[0][:200]}",
                     "run the doctor with a connection whose role may see its own grants")
        return
    yield roles_line(grants)
    db, sch = settings.snowflake_database.upper(), settings.snowflake_schema.upper()
    external = object_name(settings.snowflake_external_stage) if settings.snowflake_external_stage else None
    for need in run_needs(warehouse=warehouse or (object_name(settings.snowflake_warehouse)
                                                  if settings.snowflake_warehouse else None),
                          database=db, schema=sch, stage=STAGE, resize=bool(settings.snowflake_load_size),
                          external_stage=external, dmf=dmf):
        lacking, giving = missing(need, grants)
        if lacking:
            yield failed(f"grant {need.label}", f"{', '.join(lacking)} not held by {shown(role)} or a role it "
                         f"inherits ({need.why})", need.grant_sql(role, lacking))
        else:
            how = sorted({g.privilege + (f" via role {shown(g.via)}" if g.via != role else "")
                          for g in giving if g.privilege not in need.privileges or g.via != role})
            yield passed(f"grant {need.label}", f"held by {shown(role)}" + (f" ({', '.join(how)})" if how else ""))
    yield table_privileges(grants, role, db, sch, tables)


def roles_line(grants: RoleGrants) -> CheckResult:
    """Which roles' grants were read: the inheritance the privilege lines rely on."""
    inherited = [r for r in grants.roles if r != grants.role]
    detail = (f"{shown(grants.role)} and the roles it inherits ({', '.join(map(shown, inherited)) or 'none'}) "
              "read with SHOW GRANTS TO ROLE")
    if grants.unread:
        detail += f"; could not read {', '.join(map(shown, grants.unread))}"
    if grants.truncated:
        detail += f"; stopped after {len(grants.roles)} roles"
    return passed("roles", detail)


def table_privileges(grants: RoleGrants, role: str, db: str, sch: str, tables: set[str]) -> CheckResult:
    """A run reads, inserts, updates, deletes and truncates its tables: OWNERSHIP, or all five."""
    name = "grant table privileges"
    short = {}
    for table in sorted(tables):
        lacking = [p for p in TABLE_PRIVILEGES if grants.holds(p, "TABLE", f"{db}.{sch}.{table}") is None]
        if lacking:
            short[table] = lacking
    if short:
        listed = "; ".join(f"{t}: {', '.join(p)}" for t, p in short.items())
        return failed(name, f"{shown(role)} lacks {listed} (tables made by another role)",
                      f"GRANT {', '.join(TABLE_PRIVILEGES)} ON ALL TABLES IN SCHEMA {shown(f'{db}.{sch}')} "
                      f"TO ROLE {shown(role)}")
    return passed(name, f"{shown(role)} owns or may write all {len(tables)} model tables present")


def external_stage_checks(run: RunSql, settings: Settings, db: str, sch: str) -> Iterator[CheckResult]:
    """ENGAGEMENT_SNOWFLAKE_EXTERNAL_STAGE: it exists, is external, covers an s3:// source, and LISTs."""
    stage = object_name(settings.snowflake_external_stage or "")
    name, full = f"external stage {stage}", f"{db}.{sch}.{stage}"
    unset = "or unset ENGAGEMENT_SNOWFLAKE_EXTERNAL_STAGE"
    try:
        url = describe_stage(run, db, sch, stage)
    except Exception:
        yield failed(name, f"{full} does not exist or the role cannot see it",
                     f"create it as in sql/02_stages.sql (storage integration, then CREATE STAGE), {unset}")
        yield skipped(f"LIST @{stage}", "the external stage is not usable")
        return
    if not url:
        yield failed(name, f"{full} is an internal stage, not one over the S3 landing zone",
                     f"name the external stage of sql/02_stages.sql, {unset}")
        return
    path = ""
    if settings.source.startswith("s3://"):
        wanted = settings.source.rstrip("/") + "/"
        if not wanted.startswith(url):
            yield failed(name, f"{full} points at {url}, which does not hold --source {settings.source}",
                         "use a stage whose URL is a prefix of --source")
            return
        path = wanted[len(url):].strip("/")
    yield passed(name, f"{full} points at {url}")
    where = f"@{qualified(db, sch, stage)}" + (f"/{path}/" if path else "")
    try:
        listed = run(f"LIST {where}")
    except Exception as exc:
        said = " ".join(str(exc).split())[:200]
        yield failed(f"LIST @{stage}", f"LIST {where} failed ({said})",
                     "check the storage integration's IAM role and STORAGE_ALLOWED_LOCATIONS (sql/02_stages.sql)")
        return
    yield passed(f"LIST @{stage}", f"LIST {where} answered: {len(listed)} file(s)")


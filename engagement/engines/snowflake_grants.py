"""The privileges a run needs on Snowflake, and whether the current role holds them.

Read from ``SHOW GRANTS TO ROLE <role>``, whose rows have the columns ``created_on,
privilege, granted_on, name, granted_to, grantee_name, grant_option, granted_by``
(https://docs.snowflake.com/sql-reference/sql/show-grants; column list as of the 2025_01
bundle, https://docs.snowflake.com/release-notes/bcr-bundles/2025_01/bcr-1803). Only
``privilege``, ``granted_on`` and ``name`` are read.

SHOW GRANTS lists the grants made *explicitly* to the role, not what it inherits. Privileges
also reach a role through the role hierarchy: a role granted to it shows up as a row
``USAGE | ROLE | <child role>`` and passes on all of its privileges
(https://docs.snowflake.com/user-guide/security-access-control, "Role hierarchy and privilege
inheritance"; https://docs.snowflake.com/sql-reference/sql/grant-role). So the check follows
every ``ROLE`` row with another SHOW GRANTS TO ROLE, breadth first, and adds PUBLIC, which
every role inherits (its grants include the SNOWFLAKE database roles, such as
DATA_METRIC_USER, granted to PUBLIC: bcr-1925 and bcr-2155). It stops after
:data:`MAX_ROLES` roles and says so. Not followed: database roles other than the
``SNOWFLAKE.DATA_METRIC_USER`` grant itself (a privilege held only through a database role
reads as missing), secondary roles (a run's CREATE statements are authorized by the primary
role), and the global MANAGE GRANTS / MANAGE WAREHOUSES privileges.

OWNERSHIP of an object includes every privilege on it (in a regular schema the owning role has
all privileges on the object, same page), so an OWNERSHIP row satisfies any need on that object. Privilege
names are those of https://docs.snowflake.com/user-guide/security-access-control-privileges:
USAGE / OPERATE / MODIFY on a warehouse, USAGE on a database and a schema, CREATE TABLE on a
schema, READ and WRITE on an internal stage, USAGE on an external stage (bcr-1222 restates the
split), SELECT / INSERT / UPDATE / DELETE / TRUNCATE on a table, and for data metric functions
EXECUTE DATA METRIC FUNCTION on the account and CREATE DATA METRIC FUNCTION on a schema
(https://docs.snowflake.com/user-guide/data-quality-access-control), plus the database role
SNOWFLAKE.DATA_METRIC_USER for the system DMFs
(https://docs.snowflake.com/user-guide/data-quality-system-dmfs).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engagement.identifiers import IDENTIFIER, quote

MAX_ROLES = 30  # roles whose grants are read, the current one and PUBLIC included
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")  # what a run does to its tables


def object_name(text: str) -> str:
    """A (possibly quoted, possibly qualified) name as SHOW GRANTS and the doctor compare it:
    unquoted parts upper case, quoted parts exactly as written."""
    parts = re.findall(r'"(?:[^"]|"")*"|[^.]+', str(text or "").strip())
    return ".".join(p[1:-1].replace('""', '"') if p.startswith('"') else p.upper() for p in parts)


def shown(name: str) -> str:
    """A name as a user types it in a GRANT: plain when that resolves to it, else quoted per part."""
    return ".".join(p if IDENTIFIER.match(p) and p == p.upper() else quote(p) for p in name.split("."))


@dataclass(frozen=True)
class Grant:
    """One row of SHOW GRANTS TO ROLE ``via``."""

    privilege: str
    on: str  # granted_on: ACCOUNT, WAREHOUSE, DATABASE, SCHEMA, STAGE, TABLE, ROLE, DATABASE_ROLE, ...
    name: str
    via: str


@dataclass
class RoleGrants:
    """Every grant of ``role`` and of the roles it inherits (see the module docstring)."""

    role: str
    grants: list[Grant] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)  # whose grants were read, in order
    unread: list[str] = field(default_factory=list)  # inherited roles whose SHOW GRANTS failed
    truncated: bool = False

    def holds(self, privilege: str, on: str, name: str) -> Grant | None:
        """The grant giving ``privilege`` on the object, OWNERSHIP included; None when none does."""
        for g in self.grants:
            if g.on == on and (on == "ACCOUNT" or g.name == name) and g.privilege in (privilege, "OWNERSHIP"):
                return g
        return None


def _field(row: Any, name: str) -> Any:
    values = row.as_dict() if hasattr(row, "as_dict") else dict(row)
    return {str(k).lower(): v for k, v in values.items()}.get(name)


def read_grants(run_sql: Callable[[str], Sequence[Any]], role: str) -> RoleGrants:
    """SHOW GRANTS TO ROLE on ``role``, then on every role it inherits, and PUBLIC."""
    found = RoleGrants(role)
    queue, seen = deque([role, "PUBLIC"]), {role, "PUBLIC"}
    while queue:
        current = queue.popleft()
        if len(found.roles) >= MAX_ROLES:
            found.truncated = True
            break
        try:
            rows = run_sql(f"SHOW GRANTS TO ROLE {quote(current)}")
        except Exception:  # an inherited role this role may not inspect: say so, keep going
            if current == role:
                raise
            found.unread.append(current)
            continue
        found.roles.append(current)
        for row in rows:
            on, name = str(_field(row, "granted_on") or "").upper(), str(_field(row, "name") or "")
            # a role is one name, shown as created; other objects are qualified (DB.SCHEMA.OBJECT)
            grant = Grant(str(_field(row, "privilege") or "").upper(), on,
                          name.strip('"') if on == "ROLE" else object_name(name), current)
            found.grants.append(grant)
            # USAGE on a ROLE: that role is granted to this one (OWNERSHIP of a role passes nothing on)
            if grant.on == "ROLE" and grant.privilege == "USAGE" and grant.name not in seen:
                seen.add(grant.name)
                queue.append(grant.name)
    return found


@dataclass(frozen=True)
class Need:
    """Privileges a run needs on one object, and why; ``on`` is SHOW GRANTS's ``granted_on``."""

    privileges: tuple[str, ...]
    on: str
    name: str
    why: str

    @property
    def label(self) -> str:
        target = "the account" if self.on == "ACCOUNT" else f"{self.on.replace('_', ' ')} {shown(self.name)}"
        return f"{', '.join(self.privileges)} on {target}"

    def grant_sql(self, role: str, privileges: Iterable[str]) -> str:
        if self.on == "DATABASE_ROLE":
            return f"GRANT DATABASE ROLE {shown(self.name)} TO ROLE {shown(role)}"
        target = "ACCOUNT" if self.on == "ACCOUNT" else f"{self.on} {shown(self.name)}"
        return f"GRANT {', '.join(privileges)} ON {target} TO ROLE {shown(role)}"


def run_needs(*, warehouse: str | None, database: str, schema: str, stage: str, resize: bool,
              external_stage: str | None, dmf: bool) -> list[Need]:
    """What ``engagement run`` (and, with ``dmf``, sql/04) needs, object by object."""
    sch = f"{database}.{schema}"
    needs = []
    if warehouse:
        needs.append(Need(("USAGE",), "WAREHOUSE", warehouse, "every query runs on it"))
        if resize:
            needs.append(Need(("OPERATE", "MODIFY"), "WAREHOUSE", warehouse,
                              "ENGAGEMENT_SNOWFLAKE_LOAD_SIZE resizes it for ingest and merge"))
    needs += [
        Need(("USAGE",), "DATABASE", database, "to reach the schema"),
        Need(("USAGE",), "SCHEMA", sch, "to reach the tables and the stage"),
        Need(("CREATE TABLE",), "SCHEMA", sch, "a run creates missing tables, and Snowpark its temporary tables"),
        Need(("CREATE VIEW",), "SCHEMA", sch, "a run creates the current_rejected_records view when it is missing"),
        Need(("READ", "WRITE"), "STAGE", f"{sch}.{stage}", "each run PUTs its records there and COPYs them"),
    ]
    if external_stage:
        needs.append(Need(("USAGE",), "STAGE", f"{sch}.{external_stage}",
                          "ENGAGEMENT_SNOWFLAKE_EXTERNAL_STAGE: Snowflake LISTs and COPYs the source through it"))
    if dmf:
        needs += [
            Need(("EXECUTE DATA METRIC FUNCTION",), "ACCOUNT", "", "to attach and schedule data metric functions"),
            Need(("USAGE",), "DATABASE_ROLE", "SNOWFLAKE.DATA_METRIC_USER", "to use the system DMFs"),
            Need(("CREATE DATA METRIC FUNCTION",), "SCHEMA", sch, "sql/04 creates custom DMFs there"),
        ]
    return needs


def missing(need: Need, grants: RoleGrants) -> tuple[list[str], list[Grant]]:
    """The privileges of ``need`` nobody in the hierarchy holds, and the grants that give the others."""
    lacking, giving = [], []
    for privilege in need.privileges:
        grant = grants.holds(privilege, need.on, need.name)
        if grant is None:
            lacking.append(privilege)
        else:
            giving.append(grant)
    return lacking, giving

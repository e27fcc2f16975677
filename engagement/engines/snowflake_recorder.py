"""An offline Snowflake for the real Snowpark client: it records every statement and answers
from a catalog built from the data model.

Snowpark compiles DataFrames to SQL only on a non-local session, and a non-local session
needs a connection. :class:`RecordingConnection` stands in for the connector's
``SnowflakeConnection``: the real Snowpark client (``ServerConnection``, the analyzer, the
plan compiler) runs unchanged above it, so the statements it records are the statements a
run issues on an account. Nothing leaves the process.

What it answers, and how:

* *describe* (Snowpark asks for a query's columns before it builds on it): the output
  columns of the query, resolved by sqlglot's Snowflake dialect against the model's tables.
* metadata a run or ``engagement doctor`` reads (``CURRENT_ROLE()`` and friends,
  ``INFORMATION_SCHEMA.COLUMNS``, ``SHOW GRANTS``, ``SHOW WAREHOUSES``, ``DESC STAGE``,
  ``LIST``): from :class:`Catalog`, which tests change to play a missing object, a missing
  privilege or a wrong role.
* ``COPY INTO`` from the internal stage: one row per Parquet file the run PUT, with its
  row count (every staged row loads); ``DELETE`` / ``UPDATE`` / ``MERGE``: zero rows changed;
  an aggregate without ``GROUP BY``: one row of zeros; any other query: no rows.

What it cannot prove: that Snowflake accepts a statement, or what it computes. Row counts in
a plan are therefore unknown; the statements themselves are exact.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from typing import Any

from snowflake.connector.cursor import ResultMetadata

from engagement.engines.snowflake_answers import Answers, LogTables
from engagement.engines.snowflake_catalog import STRING, Answer, Catalog, ProgrammingError, Statement

__all__ = ["Answer", "Answers", "Catalog", "LogTables", "RecordingConnection", "RecordingCursor", "Statement",
           "offline_session"]


class RecordingCursor:
    """The part of ``snowflake.connector.cursor.SnowflakeCursor`` Snowpark uses."""

    _ids = itertools.count(1)

    def __init__(self, connection: RecordingConnection) -> None:
        self.connection = self._connection = connection
        self._description: list[ResultMetadata] = []
        self._rows: list[tuple[Any, ...]] = []
        self.sfqid: str | None = None
        self.query: str | None = None
        self.request_id = self._request_id = "offline"
        self._query_result_format = "json"
        self.rowcount: int | None = None

    def _error(self, exc: Exception, sql: str) -> Exception:
        from snowflake.connector.errors import ProgrammingError as ConnectorProgrammingError

        return ConnectorProgrammingError(msg=str(exc), errno=2003, sqlstate="02000", sfqid=self.sfqid, query=sql)

    def execute(self, command: str, params: Any = None, **kwargs: Any) -> RecordingCursor:
        self.sfqid, self.query = f"offline-{next(self._ids)}", command
        try:
            self._description, rows = self.connection.run(command)
        except ProgrammingError as exc:
            raise self._error(exc, command) from None
        self._rows = list(rows)
        self.rowcount = len(self._rows)
        return self

    def execute_async(self, command: str, **kwargs: Any) -> dict[str, Any]:
        self.execute(command)
        return {"queryId": self.sfqid}

    def executemany(self, command: str, seqparams: Sequence[Any], **kwargs: Any) -> RecordingCursor:
        return self.execute(command)

    def _describe_internal(self, command: str, *args: Any, **kwargs: Any) -> list[ResultMetadata]:
        try:
            return self.connection.describe(command)
        except ProgrammingError as exc:
            raise self._error(exc, command) from None

    describe = _describe_internal

    @property
    def description(self) -> list[ResultMetadata]:
        return self._description

    _description_internal = description

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._rows = self._rows, []
        return rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows.pop(0) if self._rows else None

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())

    def get_results_from_sfqid(self, sfqid: str) -> None:
        pass

    def close(self) -> None:
        pass


class RecordingConnection:
    """A stand-in for ``SnowflakeConnection`` that records every statement (see the module docstring)."""

    def __init__(self, catalog: Catalog | None = None, answers: Answers | None = None) -> None:
        self.catalog = catalog or Catalog.from_model()
        self.answers = answers or Answers(self.catalog)
        self.statements: list[Statement] = []
        self.query_tag: str | None = None
        self._session_parameters: dict[str, Any] = {}
        self._telemetry = None
        self.session_id = 1
        self.host = "offline.invalid"
        self.expired = False
        self._closed = False

    # the attributes ServerConnection reads for CURRENT_* (None: it asks with a query)
    @property
    def account(self) -> str:
        return self.catalog.account

    database = schema = warehouse = role = user = None

    def cursor(self) -> RecordingCursor:
        return RecordingCursor(self)

    def run(self, sql: str) -> Answer:
        # An ALTER SESSION SET QUERY_TAG is recorded under the tag it sets.
        tag = re.match(r"\s*ALTER\s+SESSION\s+SET\s+QUERY_TAG\s*=\s*" + STRING, sql, re.I)
        if tag:
            self.query_tag = tag.group(1).replace("''", "'").replace("\\'", "'").replace("\\\\", "\\")
        elif re.match(r"\s*ALTER\s+SESSION\s+UNSET\s+QUERY_TAG", sql, re.I):
            self.query_tag = None
        self.statements.append(Statement(sql, self.query_tag))
        return self.answers.answer(sql)

    def describe(self, sql: str) -> list[ResultMetadata]:
        self.statements.append(Statement(sql, self.query_tag, describe=True))
        return self.answers.columns(sql)

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True


def offline_session(connection: RecordingConnection | None = None) -> Any:
    """A real (non-local) Snowpark session over a :class:`RecordingConnection`."""
    from snowflake.snowpark import Session
    from snowflake.snowpark._internal.server_connection import ServerConnection

    connection = connection or RecordingConnection()
    server = ServerConnection({"application": "engagement"}, connection)  # type: ignore[arg-type]
    return Session(server)

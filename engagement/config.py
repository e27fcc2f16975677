"""Settings: flags > environment (``ENGAGEMENT_*``) > ``.env`` > defaults.

A bad value gets one line naming the setting and the fix (a ConfigError),
never a pydantic traceback.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from engagement.exceptions import ConfigError
from engagement.identifiers import validate

ENGINES = ("duckdb", "snowflake", "snowpark-local")
EngineName = Literal["duckdb", "snowflake", "snowpark-local"]
MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)
MEMORY_UNITS = {"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
MIN_MEMORY = 64e6  # below this DuckDB cannot run a step's plans (at 1MB even a small CREATE fails)
# ALTER WAREHOUSE ... WAREHOUSE_SIZE takes these (docs.snowflake.com/en/sql-reference/sql/alter-warehouse);
# SHOW WAREHOUSES reports them as X-Small, Small, ..., 2X-Large, 3X-Large, 4X-Large ... 6X-Large.
WAREHOUSE_SIZES = ("XSMALL", "SMALL", "MEDIUM", "LARGE", "XLARGE", "XXLARGE", "XXXLARGE", "X4LARGE", "X5LARGE", "X6LARGE")
_SIZE_ALIASES = {"X2LARGE": "XXLARGE", "X3LARGE": "XXXLARGE", "2XLARGE": "XXLARGE", "3XLARGE": "XXXLARGE", "4XLARGE": "X4LARGE", "5XLARGE": "X5LARGE",
                 "6XLARGE": "X6LARGE"}


def canonical_size(text: str) -> str | None:
    """A warehouse size as ALTER WAREHOUSE takes it (``2X-Large`` is ``XXLARGE``), or None if it is none."""
    size = text.strip().strip("'").upper().replace("-", "").replace("_", "")
    size = _SIZE_ALIASES.get(size, size)
    return size if size in WAREHOUSE_SIZES else None


class Settings(BaseSettings):
    """Everything the tool can be configured with. Each field maps to ``ENGAGEMENT_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="ENGAGEMENT_", env_file=".env", extra="ignore", populate_by_name=True
    )

    source: str = Field(
        "data/sample", description="Source root holding customers/ and clickstream/: a folder, or s3://bucket/prefix."
    )
    warehouse: Path = Field(Path("warehouse/engagement.duckdb"), description="The embedded DuckDB warehouse file.")
    engine: EngineName = Field(
        "duckdb",
        description="Warehouse engine: duckdb (embedded file), snowflake (Snowpark on your account) or "
        "snowpark-local (Snowpark local testing: in memory, small inputs only).",
    )
    schema_name: str = Field("main", alias="ENGAGEMENT_SCHEMA", description="Schema holding the tables.")
    log_dir: Path = Field(Path("logs"), description="Folder for the local log file (one line per event, with the run id).")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log file level.")
    checks_file: Path | None = Field(None, description="YAML file of data-quality checks; default: the package's checks.yml.")
    full_refresh: bool = Field(
        False, description="Reload every source file, even those merged before and unchanged since (same size and "
        "mtime/ETag); by default only new and changed files are read."
    )
    duckdb_memory_limit: str | None = Field(
        "1GB", description="Memory DuckDB may use before it spills to disk (e.g. 1GB, 4GB); empty: DuckDB's default "
        "(80% of RAM). 1GB keeps a 10M-event run under 2 GB."
    )
    duckdb_lock_wait: float = Field(
        10.0, ge=0, le=3600, description="Seconds a run waits for the DuckDB file while another process holds it "
        "(the dashboard reads it for about a second at a time), before it gives up with exit code 3."
    )
    dashboard_ttl: float = Field(
        30.0, ge=0, description="Seconds the dashboard reuses an answer before asking the warehouse again."
    )

    # Snowflake (engines snowflake and snowpark-local)
    snowflake_connection: str | None = Field(
        None, description="Connection name in connections.toml; default: the file's default connection."
    )
    snowflake_database: str = Field("ENGAGEMENT", description="Database holding the tables (see sql/).")
    snowflake_schema: str = Field("MARKETING", description="Schema holding the tables (see sql/).")
    snowflake_warehouse: str | None = Field(None, description="Virtual warehouse; default: the connection's.")
    snowflake_role: str | None = Field(None, description="Role; default: the connection's.")
    snowflake_load_size: str | None = Field(
        None, description="Resize the warehouse to this size for ingest and merge, back after (e.g. MEDIUM)."
    )
    snowflake_external_stage: str | None = Field(
        None, description="External stage (in the database and schema above) whose URL covers an s3:// --source: "
        "Snowflake then lists and COPYs the files itself. Without it, this process reads them and PUTs them."
    )

    # Alerts: one message per run whose worst status reaches alert_min_severity (see engagement.alerts)
    alert_min_severity: Literal["warn", "fail"] = Field(
        "fail", description="Alert when the worst check is at least this: warn (WARN or FAILED) or fail (FAILED). "
        "A step that errored always alerts."
    )
    alert_attempts: int = Field(3, ge=1, le=10, description="Delivery attempts per channel (with backoff) before giving up.")
    slack_webhook_url: SecretStr | None = Field(None, description="Slack incoming webhook URL (a secret: never logged).")
    smtp_host: str | None = Field(None, description="SMTP server for e-mail alerts; e-mail is off without it.")
    smtp_port: int = Field(587, description="SMTP port: 587 (STARTTLS when offered), 465 (TLS from the start) or 25.")
    smtp_user: str | None = Field(None, description="SMTP login, if the server needs one (only ever sent over TLS).")
    smtp_password: SecretStr | None = Field(None, description="SMTP password (a secret: never logged).")
    smtp_from: str | None = Field(None, description="Sender address; default: smtp_user, else engagement@<host>.")
    smtp_to: str | None = Field(None, description="Recipients, comma-separated.")
    dashboard_url: str | None = Field(None, description="The dashboard's URL, linked from alerts.")

    @field_validator("snowflake_database", "snowflake_schema", "snowflake_warehouse", "snowflake_role",
                     "snowflake_external_stage")
    @classmethod
    def _snowflake_identifier(cls, value: str | None, info) -> str | None:
        return None if value is None else validate(value, f"ENGAGEMENT_{info.field_name.upper()}")

    @field_validator("snowflake_load_size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        if value is None:
            return None
        size = canonical_size(str(value))
        if size is None:
            raise ConfigError(
                f"ENGAGEMENT_SNOWFLAKE_LOAD_SIZE={value!r} is not a warehouse size: use one of {', '.join(WAREHOUSE_SIZES)}"
            )
        return size

    @field_validator("schema_name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        return validate(value, "ENGAGEMENT_SCHEMA")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("duckdb_memory_limit", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        if value is None or str(value).strip() == "":
            return None
        text = str(value).strip()
        size = MEMORY.match(text)
        if not size:
            raise ConfigError(f"ENGAGEMENT_DUCKDB_MEMORY_LIMIT={value!r} is not a size: use a number and a unit, "
                              "such as 1GB or 512MB (empty: DuckDB's default)")
        if float(size[1]) * MEMORY_UNITS[size[2].lower()] < MIN_MEMORY:
            raise ConfigError(f"ENGAGEMENT_DUCKDB_MEMORY_LIMIT={value!r} is too small for DuckDB to run a step: "
                              "set 64MB or more, such as 1GB (empty: DuckDB's default)")
        return text

    @field_validator("alert_min_severity", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


SECRETS = ("slack_webhook_url", "smtp_password")  # never echoed back, not even in an error
# the settings the CLI takes as a flag (cli.py's options); every other setting only as ENGAGEMENT_<NAME>
FLAGS = {"source": "--source", "warehouse": "--warehouse", "engine": "--engine", "checks_file": "--checks",
         "full_refresh": "--full-refresh", "snowflake_connection": "--connection"}
FIXES = {
    "engine": f"choose one of: {', '.join(ENGINES)} (--engine or ENGAGEMENT_ENGINE)",
    "log_level": "choose DEBUG, INFO, WARNING or ERROR (ENGAGEMENT_LOG_LEVEL)",
    "alert_min_severity": "choose warn or fail (ENGAGEMENT_ALERT_MIN_SEVERITY)",
    "dashboard_ttl": "set ENGAGEMENT_DASHBOARD_TTL to a number of seconds, 0 or more",
}


def load_settings(**overrides: Any) -> Settings:
    """Settings from flags (``overrides``; None means "not given"), the environment, ``.env`` and defaults."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ConfigError:
        raise
    except UnicodeDecodeError:
        raise ConfigError(".env in this folder is not UTF-8 text; save it as UTF-8 (or remove it)") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else "setting"
        if isinstance(err.get("ctx", {}).get("error"), ConfigError):
            raise err["ctx"]["error"] from None
        env = "ENGAGEMENT_SCHEMA" if name in ("schema_name", "ENGAGEMENT_SCHEMA") else f"ENGAGEMENT_{name.upper()}"
        fix = FIXES.get(name, f"fix {FLAGS[name]} or {env}" if name in FLAGS else f"fix {env}")
        shown = "(secret)" if name in SECRETS else repr(err.get("input"))
        raise ConfigError(f"{env}={shown} is not valid: {err['msg']}; {fix}") from None

"""The model's column types as Snowpark types (shared by the engine, its back ends and its aggregates)."""

from __future__ import annotations

from snowflake.snowpark.types import (
    DataType,
    DateType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampTimeZone,
    TimestampType,
)

from engagement.model import ColumnType, Table

NTZ = TimestampType(TimestampTimeZone.NTZ)
TYPES: dict[ColumnType, DataType] = {
    ColumnType.VARCHAR: StringType(),
    ColumnType.BIGINT: LongType(),
    ColumnType.DOUBLE: DoubleType(),
    ColumnType.DATE: DateType(),
    ColumnType.TIMESTAMP: NTZ,
}


def struct_type(table: Table) -> StructType:
    """The Snowpark schema of a model table (unquoted names, model types and NOT NULL flags)."""
    return StructType([StructField(c.name, TYPES[c.type], c.nullable) for c in table.columns])

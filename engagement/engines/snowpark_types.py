"""The model's column types as Snowpark types (shared by the engine, its back ends and its aggregates)."""

from __future__ import annotations

import copy

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


def snowpark_type(kind: ColumnType) -> DataType:
    """A new Snowpark type for ``kind``. New each time: local testing sets attributes on the type
    objects it is given (a StringType gains a length, and then renders as STRING(16777216) in the
    SQL of every later session in the process), so the shared ones in TYPES must not reach it."""
    return copy.deepcopy(TYPES[kind])


def struct_type(table: Table) -> StructType:
    """The Snowpark schema of a model table (unquoted names, model types and NOT NULL flags)."""
    return StructType([StructField(c.name, snowpark_type(c.type), c.nullable) for c in table.columns])

"""engagement: stage, validate, MERGE and check marketing engagement data on DuckDB or Snowflake."""

import logging

__version__ = "0.1.0"

# A library stays quiet unless the application (the CLI, a notebook) configures logging.
logging.getLogger("engagement").addHandler(logging.NullHandler())

-- engagement: one-time Snowflake setup, part 2 of 3: stages and file formats.
-- Run after 01_setup.sql.

USE ROLE ENGAGEMENT_ROLE;
USE WAREHOUSE ENGAGEMENT_WH;
USE SCHEMA ENGAGEMENT.MARKETING;

-- The internal stage the Snowflake engine PUTs each run's records to (as Parquet,
-- split and numbered by the same readers as the embedded engine), then COPYs into
-- the raw tables. Files go under @ENGAGEMENT_STAGE/<run_id>/<raw table>/.
CREATE STAGE IF NOT EXISTS ENGAGEMENT_STAGE
  FILE_FORMAT = (TYPE = PARQUET)
  COMMENT = 'engagement: staged records of each run';

-- Named file formats for the landing files themselves, for ad-hoc queries on the
-- landing stage, e.g. SELECT $1 FROM @LANDING/customers/ (FILE_FORMAT => 'CUSTOMERS_CSV').
CREATE FILE FORMAT IF NOT EXISTS CUSTOMERS_CSV
  TYPE = CSV
  SKIP_HEADER = 1
  FIELD_OPTIONALLY_ENCLOSED_BY = '"'
  SKIP_BLANK_LINES = TRUE
  TRIM_SPACE = TRUE
  ERROR_ON_COLUMN_COUNT_MISMATCH = FALSE
  EMPTY_FIELD_AS_NULL = TRUE
  ENCODING = 'UTF8'
  COMPRESSION = AUTO;
CREATE FILE FORMAT IF NOT EXISTS CLICKSTREAM_JSON
  TYPE = JSON
  STRIP_OUTER_ARRAY = TRUE
  COMPRESSION = AUTO;

-- Optional: the S3 landing zone as an external stage. With
--   ENGAGEMENT_SNOWFLAKE_EXTERNAL_STAGE=LANDING
-- `engagement run --engine snowflake --source s3://<BUCKET>/<PREFIX>` has Snowflake LIST and
-- COPY the files from it (no download through the machine running engagement; see the README
-- for the few edge cases its file formats split differently). Needs ACCOUNTADMIN (or the
-- CREATE INTEGRATION privilege) once, and an IAM role trusted by Snowflake:
-- https://docs.snowflake.com/en/user-guide/data-load-s3-config-storage-integration
-- USE ROLE ACCOUNTADMIN;
-- CREATE STORAGE INTEGRATION IF NOT EXISTS ENGAGEMENT_S3
--   TYPE = EXTERNAL_STAGE STORAGE_PROVIDER = 'S3' ENABLED = TRUE
--   STORAGE_AWS_ROLE_ARN = 'arn:aws:iam::<AWS_ACCOUNT_ID>:role/<ROLE_NAME>'
--   STORAGE_ALLOWED_LOCATIONS = ('s3://<BUCKET>/<PREFIX>/');
-- GRANT USAGE ON INTEGRATION ENGAGEMENT_S3 TO ROLE ENGAGEMENT_ROLE;
-- USE ROLE ENGAGEMENT_ROLE;
-- CREATE STAGE IF NOT EXISTS LANDING
--   URL = 's3://<BUCKET>/<PREFIX>/' STORAGE_INTEGRATION = ENGAGEMENT_S3;

-- engagement: one-time Snowflake setup, part 1 of 3: role, warehouse, database, schema, grants.
-- Run as a user who can use SECURITYADMIN and SYSADMIN (and ACCOUNTADMIN for the last section, only
-- needed for the data metric functions of 04_data_metric_functions.sql). Replace <YOUR_USER>.
-- The names match the defaults of ENGAGEMENT_SNOWFLAKE_DATABASE / _SCHEMA / _WAREHOUSE / _ROLE.

USE ROLE SECURITYADMIN;
CREATE ROLE IF NOT EXISTS ENGAGEMENT_ROLE
  COMMENT = 'Runs the engagement pipeline: loads raw tables, MERGEs dim/fact, writes logs';
GRANT ROLE ENGAGEMENT_ROLE TO ROLE SYSADMIN;
GRANT ROLE ENGAGEMENT_ROLE TO USER <YOUR_USER>;

USE ROLE SYSADMIN;
CREATE WAREHOUSE IF NOT EXISTS ENGAGEMENT_WH
  WAREHOUSE_SIZE = XSMALL
  AUTO_SUSPEND = 60
  AUTO_RESUME = TRUE
  INITIALLY_SUSPENDED = TRUE
  COMMENT = 'engagement pipeline; resized per step when ENGAGEMENT_SNOWFLAKE_LOAD_SIZE is set';
CREATE DATABASE IF NOT EXISTS ENGAGEMENT;
CREATE SCHEMA IF NOT EXISTS ENGAGEMENT.MARKETING;

GRANT USAGE, OPERATE ON WAREHOUSE ENGAGEMENT_WH TO ROLE ENGAGEMENT_ROLE;
-- Only needed for per-step resizing (ENGAGEMENT_SNOWFLAKE_LOAD_SIZE):
GRANT MODIFY ON WAREHOUSE ENGAGEMENT_WH TO ROLE ENGAGEMENT_ROLE;
GRANT USAGE ON DATABASE ENGAGEMENT TO ROLE ENGAGEMENT_ROLE;
GRANT USAGE, CREATE TABLE, CREATE VIEW, CREATE STAGE, CREATE FILE FORMAT ON SCHEMA ENGAGEMENT.MARKETING TO ROLE ENGAGEMENT_ROLE;

-- ---------------------------------------------------------------------------------------------
-- Only for sql/04_data_metric_functions.sql (the checks as Snowflake data metric functions).
-- Skip this section if you do not run 04; the pipeline itself needs none of it.
-- https://docs.snowflake.com/en/user-guide/data-quality-access-control
-- The custom DMFs 04 creates (duplicate_count, value_range, pattern, freshness on TIMESTAMP_NTZ):
GRANT CREATE DATA METRIC FUNCTION ON SCHEMA ENGAGEMENT.MARKETING TO ROLE ENGAGEMENT_ROLE;
-- An account administrator grants the rest: USAGE on the system DMFs (SNOWFLAKE.CORE.*) comes with
-- the SNOWFLAKE.DATA_METRIC_USER database role (newer accounts give it to PUBLIC already; granting it
-- again is harmless), and associating a DMF and running it on its schedule needs EXECUTE DATA METRIC
-- FUNCTION on the account.
-- https://docs.snowflake.com/en/release-notes/bcr-bundles/un-bundled/bcr-2155
-- https://docs.snowflake.com/en/release-notes/bcr-bundles/un-bundled/bcr-2471
USE ROLE ACCOUNTADMIN;
GRANT DATABASE ROLE SNOWFLAKE.DATA_METRIC_USER TO ROLE ENGAGEMENT_ROLE;
GRANT EXECUTE DATA METRIC FUNCTION ON ACCOUNT TO ROLE ENGAGEMENT_ROLE;

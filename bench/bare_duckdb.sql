-- The bare DuckDB baseline: the minimum equivalent of `engagement run` in plain DuckDB SQL.
--
-- What a data engineer would write by hand to load the same source folder into the same two
-- tables: read the customer CSVs and the clickstream NDJSON / JSON-array files (.gz too),
-- keep the valid rows, keep one row per key (newest wins), MERGE into dim_customer and
-- fact_click_events in a DuckDB file, and compute a few aggregates.
--
-- Run it with bench/bare_duckdb.py (it times each "-- step:" section on its own):
--     python bench/bare_duckdb.py --source DIR --warehouse FILE.duckdb
-- or in the DuckDB CLI, after setting the source folder:
--     duckdb FILE.duckdb -c "SET VARIABLE src = 'DIR'" -f bench/bare_duckdb.sql   (one session)
--
-- The rules it mirrors (engagement/model.py), at the level a hand-written script would:
--   customers: exactly 5 fields; customer_id not blank; signup_date blank or a real
--              YYYY-MM-DD date; values trimmed, blank = NULL, e-mail lower-cased;
--              duplicates: the last copy (later file, then later line) wins.
--   events:    a JSON object; event_id present and not blank; timestamp a JSON string that
--              TRY_CAST reads as a timestamp (UTC when no zone); duration_ms absent, null, or
--              a JSON integer >= 0; duplicates: the latest timestamp, then the later file,
--              then the later line wins.
-- On the generated benchmark data it keeps exactly the rows the pipeline keeps and loads
-- the same dim_customer and fact_click_events (tests/test_bench.py checks it).
--
-- What it deliberately does NOT do, and the pipeline does (so the comparison is honest):
--   * no raw tables: the pipeline first stages every record as read (raw text, line number,
--     file, run id) into raw_customer_demographics / raw_clickstream_events;
--   * no rejected_records: a bad row is simply dropped here, without its reason, detail,
--     file, line and raw text (and a malformed JSON line is not told from a missing key);
--   * no lineage or audit columns (source_file, source_row, created_at, updated_at, run_id),
--     no ingestion_logs rows, no per-step transactions, no run id;
--   * no inserted / updated / unchanged / collapsed counts;
--   * not the exact contract: the timestamp is not matched against the ISO 8601 pattern
--     (TRY_CAST also takes, say, a bare date), a CSV header is assumed to be in the usual
--     column order (the pipeline maps columns by name), a line that is not UTF-8 or a file
--     whose header is wrong is not handled, files are taken from fixed globs (the layout the
--     generator writes: *.jsonl[.gz] as NDJSON, *.json as arrays; no *.ndjson);
--   * no data-quality checks and no dq_check_logs: three aggregates stand for them.
-- The line order used for "later line wins" is the scan order (row_number() OVER ()),
-- which DuckDB keeps while preserve_insertion_order is on (the default).

SET TimeZone = 'UTC';
CREATE TABLE IF NOT EXISTS dim_customer (
    customer_id VARCHAR, first_name VARCHAR, email VARCHAR, region VARCHAR, signup_date DATE);
CREATE TABLE IF NOT EXISTS fact_click_events (
    event_id VARCHAR, user_id VARCHAR, event_type VARCHAR, page_url VARCHAR,
    duration_ms BIGINT, event_timestamp TIMESTAMP);

-- step: stage customers
-- One extra column (_extra) and null_padding catch rows with 4 or 6 fields; nullstr = NUL keeps
-- an empty field '' apart from a missing one (NULL); 7 fields or more are errors, skipped.
-- No sniffing (auto_detect = false): the sniffer would take the first file's CRLF for every file
-- and find no 6th column in a file without such a row.
CREATE OR REPLACE TEMP TABLE stage_customer AS
WITH rows AS (
    SELECT *, row_number() OVER () AS line
    FROM read_csv(getvariable('src') || '/customers/*.csv*',
                  auto_detect = false, header = true, delim = ',', quote = '"', escape = '"',
                  columns = {'customer_id': 'VARCHAR', 'first_name': 'VARCHAR', 'email': 'VARCHAR',
                             'region': 'VARCHAR', 'signup_date': 'VARCHAR', '_extra': 'VARCHAR'},
                  null_padding = true, nullstr = '\0', ignore_errors = true, filename = true)
), clean AS (
    SELECT NULLIF(trim(customer_id), '') AS customer_id,
           NULLIF(trim(first_name), '') AS first_name,
           lower(NULLIF(trim(email), '')) AS email,
           NULLIF(trim(region), '') AS region,
           NULLIF(trim(signup_date), '') AS signup_text,
           filename, line
    FROM rows
    WHERE _extra IS NULL AND signup_date IS NOT NULL  -- exactly 5 fields
)
SELECT customer_id, first_name, email, region, CAST(signup_text AS DATE) AS signup_date
FROM clean
WHERE customer_id IS NOT NULL
  AND (signup_text IS NULL
       OR (regexp_full_match(signup_text, '[0-9]{4}-[0-9]{2}-[0-9]{2}')
           AND TRY_CAST(signup_text AS DATE) IS NOT NULL))
QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY filename DESC, line DESC) = 1;

-- step: stage events
-- Fields are read as JSON so that a string "300" or a float is told from an integer.
-- A line that is not a JSON object comes back as a row of NULLs (ignore_errors) and falls out
-- with the missing key. The .jsonl files are read as NDJSON and the .json files as arrays
-- (format = 'auto' guesses from a file's first record, and a truncated first line makes it
-- give up on the whole file).
CREATE OR REPLACE TEMP TABLE stage_event AS
WITH rows AS (
    SELECT *, row_number() OVER () AS line
    FROM read_json(getvariable('src') || '/clickstream/**/*.jsonl*',
                   format = 'newline_delimited', ignore_errors = true, filename = true, hive_partitioning = false,
                   columns = {'event_id': 'JSON', 'user_id': 'JSON', 'event_type': 'JSON',
                              'page_url': 'JSON', 'duration_ms': 'JSON', 'timestamp': 'JSON'})
    UNION ALL
    SELECT *, row_number() OVER () AS line
    FROM read_json(getvariable('src') || '/clickstream/**/*.json',
                   format = 'array', ignore_errors = true, filename = true, hive_partitioning = false,
                   columns = {'event_id': 'JSON', 'user_id': 'JSON', 'event_type': 'JSON',
                              'page_url': 'JSON', 'duration_ms': 'JSON', 'timestamp': 'JSON'})
), clean AS (
    SELECT NULLIF(trim(event_id ->> '$'), '') AS event_id,
           NULLIF(trim(user_id ->> '$'), '') AS user_id,
           NULLIF(trim(event_type ->> '$'), '') AS event_type,
           NULLIF(trim(page_url ->> '$'), '') AS page_url,
           duration_ms, json_type(duration_ms) AS duration_type,
           CASE WHEN json_type("timestamp") = 'VARCHAR'
                THEN CAST(TRY_CAST("timestamp" ->> '$' AS TIMESTAMPTZ) AS TIMESTAMP) END AS event_timestamp,
           filename, line
    FROM rows
)
SELECT event_id, user_id, event_type, page_url,
       TRY_CAST(duration_ms ->> '$' AS BIGINT) AS duration_ms, event_timestamp
FROM clean
WHERE event_id IS NOT NULL
  AND event_timestamp IS NOT NULL
  AND (duration_type IS NULL OR duration_type = 'NULL'
       OR (duration_type IN ('BIGINT', 'UBIGINT') AND coalesce(TRY_CAST(duration_ms ->> '$' AS BIGINT) >= 0, false)))
QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY event_timestamp DESC, filename DESC, line DESC) = 1;

-- step: merge dim_customer
MERGE INTO dim_customer AS t USING stage_customer AS s ON t.customer_id = s.customer_id
WHEN MATCHED AND (s.first_name IS DISTINCT FROM t.first_name OR s.email IS DISTINCT FROM t.email
                  OR s.region IS DISTINCT FROM t.region OR s.signup_date IS DISTINCT FROM t.signup_date)
    THEN UPDATE SET first_name = s.first_name, email = s.email, region = s.region, signup_date = s.signup_date
WHEN NOT MATCHED THEN INSERT (customer_id, first_name, email, region, signup_date)
    VALUES (s.customer_id, s.first_name, s.email, s.region, s.signup_date);

-- step: merge fact_click_events
-- A stored event is replaced only by a newer copy (a late, older copy never overwrites it).
MERGE INTO fact_click_events AS t USING stage_event AS s ON t.event_id = s.event_id
WHEN MATCHED AND s.event_timestamp > t.event_timestamp
    THEN UPDATE SET user_id = s.user_id, event_type = s.event_type, page_url = s.page_url,
                    duration_ms = s.duration_ms, event_timestamp = s.event_timestamp
WHEN NOT MATCHED THEN INSERT (event_id, user_id, event_type, page_url, duration_ms, event_timestamp)
    VALUES (s.event_id, s.user_id, s.event_type, s.page_url, s.duration_ms, s.event_timestamp);

-- step: aggregates
-- Events per day and type, the orphan events (a user_id unknown to dim_customer) and the
-- newest event: stand-ins for the pipeline's data-quality checks.
CREATE OR REPLACE TABLE events_per_day_type AS
SELECT CAST(event_timestamp AS DATE) AS day, event_type, count(*) AS events
FROM fact_click_events GROUP BY ALL;
CREATE OR REPLACE TABLE load_summary AS
SELECT (SELECT count(*) FROM dim_customer) AS customers,
       (SELECT count(*) FROM fact_click_events) AS events,
       (SELECT count(*) FROM fact_click_events f
        WHERE f.user_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM dim_customer d WHERE d.customer_id = f.user_id)) AS orphan_events,
       (SELECT max(event_timestamp) FROM fact_click_events) AS newest_event;
DROP TABLE stage_customer;
DROP TABLE stage_event;

"""The pandas baseline: the same work as bench/bare_duckdb.sql, written the straightforward pandas way.

    python bench/bare_pandas.py --source DIR --warehouse FOLDER [--result FILE.json]

Reads every file whole into DataFrames (pd.read_csv for the customers; json.loads line by
line for the clickstream, since one bad line makes pd.read_json refuse a file), validates
with the same rules as the bare DuckDB script, keeps the newest copy of each key
(sort + drop_duplicates), upserts into dim_customer.parquet and fact_click_events.parquet
in FOLDER (read what is there, concat, keep the newest, write back) and computes the same
aggregates. Nothing is streamed: memory grows with the data, which is the point of having
it in the comparison. It does not do what the pipeline does beyond that either (see the
list at the top of bench/bare_duckdb.sql).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import resource
import sys
import time
from pathlib import Path

import pandas as pd

CUSTOMER_COLUMNS = ["customer_id", "first_name", "email", "region", "signup_date"]
EVENT_FIELDS = ["event_id", "user_id", "event_type", "page_url", "duration_ms", "timestamp"]
DATE_RE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"


def _text(path: Path) -> str:
    data = path.read_bytes()
    return (gzip.decompress(data) if path.name.endswith(".gz") else data).decode("utf-8")


def _blank_to_none(s: pd.Series) -> pd.Series:
    s = s.str.strip()
    return s.where(s != "", None)


def read_customers(source: Path) -> pd.DataFrame:
    frames = []
    for i, path in enumerate(sorted(source.glob("customers/*.csv*"))):
        # pd.read_csv pads a short row with '' (and can't tell it from an empty field), so the
        # rows are split by the csv module and only those of exactly 5 fields are kept.
        rows = list(csv.reader(io.StringIO(_text(path), newline="")))[1:]
        df = pd.DataFrame([r for r in rows if len(r) == len(CUSTOMER_COLUMNS)], columns=CUSTOMER_COLUMNS)
        df["file"], df["line"] = i, range(len(df))
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    for c in CUSTOMER_COLUMNS:
        df[c] = _blank_to_none(df[c])
    df["email"] = df["email"].str.lower()
    date_ok = df["signup_date"].astype("string").str.fullmatch(DATE_RE).fillna(False).astype(bool)
    parsed = pd.to_datetime(df["signup_date"].where(date_ok), format="%Y-%m-%d", errors="coerce")
    df = df[df["customer_id"].notna() & (df["signup_date"].isna() | parsed.notna())].copy()
    df["signup_date"] = parsed.loc[df.index].dt.date
    return df


def _records(path: Path) -> list:
    """The JSON documents of a file: the elements of one top-level array, or one per non-blank line."""
    text = _text(path)
    if text.lstrip().startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            pass
    docs = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            docs.append(json.loads(line))
        except ValueError:
            docs.append(None)
    return docs


def read_events(source: Path) -> pd.DataFrame:
    paths = sorted(p for p in source.glob("clickstream/**/*") if p.is_file()
                   and p.name.endswith((".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")))
    frames = []
    for i, path in enumerate(paths):
        docs = _records(path)
        objects = [d for d in docs if isinstance(d, dict)]
        df = pd.DataFrame(objects, columns=EVENT_FIELDS, dtype=object)
        df["file"], df["line"] = i, range(len(df))
        frames.append(df)
        del docs, objects
    df = pd.concat(frames, ignore_index=True)
    del frames
    return df


def validate_events(df: pd.DataFrame) -> pd.DataFrame:
    def text(col: str) -> pd.Series:  # missing, null or '' -> None
        s = df[col]
        return s.where(s.notna() & (s != ""), None)

    event_id = df["event_id"]
    key_ok = event_id.notna() & (event_id.astype(str).str.strip() != "")
    ts = df["timestamp"]
    ts = ts.where(ts.map(lambda v: isinstance(v, str)), None)
    # Without a zone a timestamp is UTC. Say so: in one to_datetime call, pandas would read a
    # zone-less string with the offset of the string before it.
    has_zone = ts.str.contains(r"(?:Z|[+-][0-9]{2}:[0-9]{2})$", na=False)
    parsed = pd.to_datetime(ts.where(has_zone, ts + "Z"), format="ISO8601", utc=True, errors="coerce")
    dur = df["duration_ms"]
    dur_ok = dur.map(lambda v: v is None or (isinstance(v, float) and v != v)
                     or (type(v) is int and v >= 0))
    keep = key_ok & parsed.notna() & dur_ok
    out = pd.DataFrame({
        "event_id": event_id, "user_id": text("user_id"), "event_type": text("event_type"),
        "page_url": text("page_url"),
        "duration_ms": pd.array(dur.where(dur_ok & dur.notna(), None), dtype="Int64"),
        "event_timestamp": parsed.dt.tz_convert(None),
        "file": df["file"], "line": df["line"],
    })[keep]
    return out


def newest(df: pd.DataFrame, key: str, order: list[str]) -> pd.DataFrame:
    """One row per key: the last one in ``order``."""
    return df.sort_values(order, kind="stable").drop_duplicates(key, keep="last")


def upsert(folder: Path, table: str, new: pd.DataFrame, key: str, newer: str | None) -> pd.DataFrame:
    """MERGE ``new`` into FOLDER/table.parquet: new keys added; a stored row replaced when the new copy
    is newer by ``newer`` (or, without it, always: the latest load wins)."""
    path = folder / f"{table}.parquet"
    if path.exists():
        old = pd.read_parquet(path)
        both = pd.concat([old.assign(_new=0), new.assign(_new=1)], ignore_index=True)
        order = [newer, "_new"] if newer else ["_new"]
        merged = newest(both, key, order).drop(columns="_new")
    else:
        merged = new
    merged.to_parquet(path, index=False)
    return merged


def run(source: Path, folder: Path) -> dict:
    steps = []
    started = t0 = time.perf_counter()

    def step(name: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        steps.append({"step": name, "seconds": now - t0,
                      "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024})
        t0 = now

    folder.mkdir(parents=True, exist_ok=True)
    customers = read_customers(source)
    customers = newest(customers, "customer_id", ["file", "line"])[CUSTOMER_COLUMNS]
    step("read, validate, dedup customers")
    events = read_events(source)
    step("read events (json.loads)")
    events = validate_events(events)
    events = newest(events, "event_id", ["event_timestamp", "file", "line"]).drop(columns=["file", "line"])
    step("validate, dedup events")
    dim = upsert(folder, "dim_customer", customers, "customer_id", None)
    step("upsert dim_customer")
    fact = upsert(folder, "fact_click_events", events, "event_id", "event_timestamp")
    step("upsert fact_click_events")
    per_day_type = fact.groupby([fact["event_timestamp"].dt.date, "event_type"]).size()
    orphans = int((fact["user_id"].notna() & ~fact["user_id"].isin(dim["customer_id"])).sum())
    newest_event = fact["event_timestamp"].max()
    step("aggregates")
    return {
        "contender": "pandas",
        "seconds": time.perf_counter() - started,
        "steps": steps,
        "aggregates": {"orphan_events": orphans, "newest_event": str(newest_event),
                       "events_per_day_type": {f"{d}|{t}": int(n) for (d, t), n in per_day_type.items()}},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True, help="source folder (customers/, clickstream/)")
    parser.add_argument("--warehouse", type=Path, required=True, help="folder of the Parquet tables")
    parser.add_argument("--result", type=Path, help="write the timings and aggregates here as JSON")
    args = parser.parse_args()
    result = run(args.source, args.warehouse)
    for s in result["steps"]:
        print(f"{s['step']:<34} {s['seconds']:8.2f} s", file=sys.stderr)
    print(f"{'total':<34} {result['seconds']:8.2f} s", file=sys.stderr)
    if args.result:
        args.result.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

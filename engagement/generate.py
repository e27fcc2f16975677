"""A realistic synthetic source with controlled defects and an exact manifest.

:func:`generate` writes the two sources of the product's contract under a folder:

* ``customers/customers_001.csv`` (CRLF), ``customers_002.csv`` (LF) and
  ``customers_003.csv.gz`` (LF, gzipped): RFC 4180 CSV with the header
  ``customer_id,first_name,email,region,signup_date``. The first file holds
  most customers; the later ones re-send some customers with one changed
  attribute (duplicates of a key: the last occurrence wins) and add new ones.
* ``clickstream/dt=YYYY-MM-DD/part-0000.jsonl`` per day (NDJSON; some days
  ``.jsonl.gz``), plus, on one day, ``extra-0000.json``: one top-level JSON
  array of a few hundred event objects.

Besides the clean records, a share of records carries a defect the rules of
:mod:`engagement.model` reject (``malformed_row``, ``missing_key``,
``invalid_value``), some keys are re-sent (duplicates collapsed by the MERGE,
including late arrivals in a later day's file) and some events are only
flagged later by data-quality checks (anonymous, orphan user, unknown event
type). Every such count is known by construction and written, exactly, to
``manifest.json``.

Sizes: ``customers`` is the number of distinct customer ids accepted and
``events`` the number of distinct events accepted ("before defects and
duplicates"); rejected records and duplicate copies come on top, so that about
``defect_rate`` of the records of each source is rejected, split evenly among
the three reasons, and about ``defect_rate / 3`` are duplicate copies.

The clickstream is built with numpy (attributes) and Arrow compute kernels
(text), day by day and in chunks, so 10M events take seconds and little memory;
gzip compression and writing run in a background thread.
"""

from __future__ import annotations

import gzip
import json
import shutil
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engagement.model import CSV_HEADER, Reason

GENERATOR = "engagement.generate"
KNOWN_EVENT_TYPES = ("page_view", "add_to_cart", "purchase", "search", "click")
UNKNOWN_EVENT_TYPES = ("hover", "scroll", "share", "video_play")
REGIONS = ("NA", "EMEA", "APAC", "LATAM")
REASONS = tuple(r.value for r in Reason)
MAX_DEFECT_RATE = 0.5

# (first name, ASCII slug for the e-mail); the first block is more frequent.
_COMMON_NAMES = (
    ("James", "james"), ("Mary", "mary"), ("Wei", "wei"), ("Priya", "priya"), ("Ahmed", "ahmed"),
    ("Olivia", "olivia"), ("Liam", "liam"), ("Emma", "emma"), ("Noah", "noah"), ("Sofia", "sofia"),
    ("Lucas", "lucas"), ("Mia", "mia"), ("Hiro", "hiro"), ("Yuki", "yuki"), ("Fatima", "fatima"),
    ("Carlos", "carlos"), ("Ana", "ana"), ("Pedro", "pedro"), ("Grace", "grace"), ("David", "david"),
)
_SPECIAL_NAMES = (
    ("José", "jose"), ("Zoë", "zoe"), ("Søren", "soren"), ("Åsa", "asa"), ("Ærle Ærøskøbing", "aerle"),
    ("Øystein", "oystein"), ("Jürgen Müller", "juergen"), ("李雷", "lilei"), ("韩梅梅", "hanmeimei"),
    ("Łukasz", "lukasz"), ("Renée", "renee"), ("François", "francois"), ("İbrahim", "ibrahim"),
    ("Nguyễn", "nguyen"), ("Александр", "aleksandr"), ("Μαρία", "maria"), ("محمد", "mohammed"),
    ("Seán O'Brien", "sean"), ('Robert "Bob"', "bob"), ("Smith, Jr.", "smith"), ("Anne-Marie", "annemarie"),
    ("Mia 🌸", "mia"),
)
_NAMES = _COMMON_NAMES + _SPECIAL_NAMES
_NAME_P = np.array([3.0] * len(_COMMON_NAMES) + [1.0] * len(_SPECIAL_NAMES))
_NAME_P /= _NAME_P.sum()
_DOMAINS = ("example.com", "mail.example.org", "shop.example.net", "example.co.uk", "post.example.de")
_BAD_DATES = ("2025-13-40", "01/02/2024", "yesterday", "2025-02-30", "2024-04-31", "20250101", "2025-1-5")

_TYPE_P = (0.55, 0.08, 0.03, 0.14, 0.20)  # funnel: page_view >> add_to_cart > purchase
_DUR_MU = np.log([15_000, 2_500, 8_000, 4_000, 800, 1_500, 1_500, 1_500, 1_500])
_PRODUCTS = 2_000
_CATEGORIES = ("shoes", "jackets", "bags", "home", "garden", "toys", "books", "sale")
_PROMOS = ("winter-sale", "free-shipping", "new-arrivals")
_SEARCHES = (
    "red+shoes", "rain+jacket", "gift", "caf%C3%A9+table", "kids+toys", "laptop+bag", "running",
    "m%C3%BCsli", "sale", "wool+scarf", "lamp", "garden+chair", "%E6%9D%8E", "headphones", "mug",
)
# Timestamp formats: 0 ...Z, 1 ....mmmZ, 2 ....mmmuuuZ, 3 ...+HH:MM, 4 space and no zone, 5 T and no zone
_FMT_P = (0.78, 0.08, 0.02, 0.06, 0.04, 0.02)
_ZONES = (("+01:00", 60), ("+02:00", 120), ("+05:30", 330), ("-05:00", -300), ("-08:00", -480),
          ("+09:00", 540), ("+00:00", 0))
_HOUR_W = np.array([2, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8, 9, 9, 8, 8, 8, 9, 10, 10, 9, 7, 5, 3], dtype=float)
_HOUR_W /= _HOUR_W.sum()
_UTMS = ("", ', "utm": {"source": "newsletter", "medium": "email"}',
         ', "utm": {"source": "google", "medium": "cpc", "campaign": "winter"}',
         ', "utm": {"source": "instagram"}')
_DEVICES = ("", ', "device": "mobile"', ', "device": "desktop"', ', "device": "tablet"')

# Event record codes (one per clickstream record).
_VALID, _DUP, _MALFORMED, _MISSING_KEY, _INVALID, _ANON, _ORPHAN, _UNKNOWN = range(8)
_ORIGINAL_CODES = (_VALID, _ANON, _ORPHAN, _UNKNOWN)
_CHUNK = 65_536  # records rendered at a time (Arrow kernels are fastest on cache-sized chunks)
_EXTRA_MAX = 250  # elements of the JSON array file
_DUP_WINDOW = 5_000  # same-day duplicates copy one of the last this-many events
_LATE_SHARE = 0.3  # of duplicate copies re-send an event of an earlier day (late arrivals)
_ORPHAN_POOL = 100
_PREV_MAX = 100_000  # originals of a day kept for the next day's late arrivals
_GZIP_LEVEL = 6
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def generate(
    out: Path,
    *,
    customers: int = 2_000,
    events: int = 100_000,
    days: int = 7,
    seed: int = 42,
    defect_rate: float = 0.02,
    start_date: date = date(2026, 1, 1),
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Write the source layout under `out` and return the manifest (also written to out/manifest.json).

    ``customers`` distinct customer ids and ``events`` distinct events over
    ``days`` days from ``start_date`` are accepted; about ``defect_rate`` of
    each source's records is rejected (malformed row / missing key / invalid
    value, evenly), about ``defect_rate / 3`` are duplicate copies, and about
    ``defect_rate / 3`` of the distinct events each are anonymous, orphans and
    of an unknown type. The same arguments write the same bytes.

    Only ``customers/``, ``clickstream/`` and ``manifest.json`` inside ``out``
    are replaced; nothing else there is touched.

    Raises ValueError (one line, naming the argument and its allowed range)
    for an argument out of range.
    """
    _check_int("customers", customers, 1)
    _check_int("events", events, 0)
    _check_int("days", days, 1)
    _check_int("seed", seed, 0)
    if isinstance(defect_rate, bool) or not isinstance(defect_rate, (int, float, np.floating, np.integer)) \
            or not 0 <= defect_rate <= MAX_DEFECT_RATE:
        raise ValueError(f"defect_rate must be a number between 0 and {MAX_DEFECT_RATE}, got {defect_rate!r}")
    if isinstance(start_date, datetime):
        start_date = start_date.date()
    if not isinstance(start_date, date):
        raise ValueError(f"start_date must be a datetime.date, got {start_date!r}")
    if not date(1971, 1, 1) <= start_date <= date(9000, 1, 1):
        raise ValueError(f"start_date must be between 1971-01-01 and 9000-01-01, got {start_date}")
    customers, events, days, seed, defect_rate = int(customers), int(events), int(days), int(seed), float(defect_rate)
    say = progress or (lambda _msg: None)

    out = Path(out)
    _clean(out)
    rng = np.random.default_rng(seed)

    cust = _write_customers(out, rng, customers, defect_rate, start_date, say)
    click = _write_clickstream(out, rng, events, days, defect_rate, start_date, cust, say)

    manifest = {
        "generator": GENERATOR,
        "seed": seed,
        "params": {"customers": customers, "events": events, "days": days, "defect_rate": defect_rate,
                   "start_date": start_date.isoformat()},
        "files": {"customers": cust.files, "clickstream": click.pop("files")},
        "customers": cust.counts,
        "clickstream": click,
        "known_event_types": list(KNOWN_EVENT_TYPES),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    say(f"wrote {out / 'manifest.json'}")
    return manifest


# --------------------------------------------------------------------------- helpers


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _clean(out: Path) -> None:
    """Remove what an earlier generation wrote into ``out`` (and only that)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("customers", "clickstream"):
        path = out / name
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
    manifest = out / "manifest.json"
    if manifest.is_symlink() or manifest.exists():
        manifest.unlink()


def _per_kind(base: int, rate: float) -> int:
    """Records per rejected reason (and duplicate copies): rejected ≈ ``rate`` of all records.

    With ``base`` clean records and k records per each of the 4 extra kinds,
    k / (base + 4k) = rate / 3. At least one when ``rate`` > 0.
    """
    if rate <= 0 or base <= 0:
        return 0
    return max(1, round(base * rate / (3 - 4 * rate)))


def _per_flag(base: int, rate: float) -> int:
    """Distinct events per data-quality flag (anonymous, orphan, unknown type): ≈ ``rate / 3`` of them."""
    if rate <= 0 or base < 3:
        return 0
    return min(max(1, round(base * rate / 3)), base // 3)


def _interleave(rng: np.random.Generator, base: list, extra: list) -> list:
    """Insert ``extra`` at random places in ``base``, keeping the order within each list."""
    if not extra:
        return list(base)
    n = len(base) + len(extra)
    slots = np.zeros(n, dtype=bool)
    slots[rng.choice(n, size=len(extra), replace=False)] = True
    it_b, it_e = iter(base), iter(extra)
    return [next(it_e) if s else next(it_b) for s in slots]


# --------------------------------------------------------------------------- customers


@dataclass
class _Customers:
    files: list[str]
    counts: dict
    accepted: int  # ids C0000001..C{accepted} are accepted somewhere
    rejected_only: int  # ids after those appear only in rejected rows


def _cid(num: int) -> str:
    return f"C{num:07d}"


def _q(value: str, force: bool = False) -> str:
    """RFC 4180 field: quoted when it holds a comma, quote, CR or LF (or when ``force``)."""
    if force or any(ch in value for ch in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _shout(email: str, u: float) -> str:
    """An upper-case variant of an e-mail (the loader lower-cases it)."""
    if u < 0.5:
        return email.upper()
    local, _, domain = email.partition("@")
    return local[:1].upper() + local[1:] + "@" + domain[:1].upper() + domain[1:]


def _csv_row(values: list[str | None], u: np.ndarray) -> str:
    """One CSV record of 5 values (None → empty), with spaces, quotes and case varied by ``u`` (16 uniforms)."""
    fields = []
    for j, v in enumerate(values):
        if v is None:
            v = " " if u[j] < 0.1 else ""  # whitespace-only is NULL too after trimming
        else:
            if j == 2 and u[15] < 0.12:
                v = _shout(v, u[15] / 0.12)
            if u[j] < 0.03:
                v = "  " + v if u[5 + j] < 0.5 else v + " "
        fields.append(_q(v, force=u[10 + j] < 0.02))
    return ",".join(fields)


def _write_customers(out: Path, rng: np.random.Generator, n: int, rate: float, start: date,
                     say: Callable[[str], None]) -> _Customers:
    k = _per_kind(n, rate)
    n1 = max(1, round(n * 0.85))
    n2 = min(round(n * 0.10), n - n1)  # the rest, about 5 %, are new in the third file

    # Current state of every customer: [first_name, email, region, signup_date]; slug for e-mails.
    name_idx = rng.choice(len(_NAMES), size=n, p=_NAME_P)
    region_idx = rng.integers(0, len(REGIONS), size=n)
    domain_idx = rng.integers(0, len(_DOMAINS), size=n)
    first_day = date(max(start.year - 6, 1970), 1, 1)
    span = max((start - first_day).days, 1)
    signup = rng.integers(0, span, size=n)
    empty = rng.random((n, 3)) < 0.03
    ordinal0 = first_day.toordinal()
    state: list[list[str | None]] = []
    slugs: list[str] = []
    for i in range(n):
        name, slug = _NAMES[name_idx[i]]
        slugs.append(slug)
        state.append([
            None if empty[i, 0] else name,
            f"{slug}{i + 1}@{_DOMAINS[domain_idx[i]]}",
            None if empty[i, 1] else REGIONS[region_idx[i]],
            None if empty[i, 2] else date.fromordinal(ordinal0 + int(signup[i])).isoformat(),
        ])
    changes = [0] * n

    def valid_row(num: int) -> tuple[str, list[str | None]]:
        return ("row", [_cid(num), *state[num - 1]])

    originals = [valid_row(num) for num in range(1, n + 1)]  # first copies, before any update
    # Updates: a later copy of an earlier customer with one attribute changed.
    upd_file = rng.choice(3, size=k, p=(0.2, 0.4, 0.4)) if k else np.zeros(0, dtype=np.int64)
    upd_u = rng.random((k, 3))
    updates: list[list] = [[], [], []]
    for f in range(3):
        pool = n1 if f < 2 else n1 + n2
        for j in np.flatnonzero(upd_file == f):
            num = 1 + int(upd_u[j, 0] * pool)
            st, slug = state[num - 1], slugs[num - 1]
            what = upd_u[j, 1]
            pick = int(upd_u[j, 2] * 1_000_003)
            if what < 0.45:  # region moves
                choices = [r for r in REGIONS if r != st[2]]
                st[2] = choices[pick % len(choices)]
            elif what < 0.9:  # new e-mail address
                changes[num - 1] += 1
                st[1] = f"{slug}.{num}.{changes[num - 1]}@{_DOMAINS[pick % len(_DOMAINS)]}"
            else:  # corrected first name
                choices = [nm for nm, _ in _NAMES if nm != st[0]]
                st[0] = choices[pick % len(choices)]
            updates[f].append(valid_row(num))

    # Rejected rows: k malformed, k missing key, k invalid value; in random files and places.
    rejected_only = 0
    rejects: list[list] = [[], [], []]
    kinds = np.repeat(np.arange(3), k)
    if len(kinds):
        kinds = kinds[rng.permutation(len(kinds))]
    rej_file = rng.choice(3, size=len(kinds), p=(0.6, 0.25, 0.15)) if len(kinds) else kinds
    rej_u = rng.random((len(kinds), 4))
    rej_fill = rng.random((len(kinds), 16))
    seen = [0, 0, 0]
    for j, kind in enumerate(kinds):
        rank = seen[kind]  # variants of a reason take turns, so each occurs once there are a few
        seen[kind] += 1
        donor = state[int(rej_u[j, 0] * n)]
        values: list[str | None] = [None, donor[0], donor[1], donor[2], donor[3] or "2024-05-17"]
        if kind == 1:  # missing key
            line = _csv_row(values, rej_fill[j])
            line = ("", "   ", '""')[rank % 3] + line[line.index(","):]
        else:
            if rej_u[j, 1] < 0.5:
                num = 1 + int(rej_u[j, 2] * n)  # an existing customer's broken copy
            else:
                rejected_only += 1
                num = n + rejected_only  # a customer that never arrives intact
            values[0] = _cid(num)
            if kind == 2:  # invalid signup_date
                values[4] = _BAD_DATES[rank % len(_BAD_DATES)]
                line = _csv_row(values, rej_fill[j])
            else:  # malformed: 4 or 6 fields
                sub = rank % 3
                if sub == 0:
                    line = ",".join(_q(v or "") for v in values[:4])
                elif sub == 1:
                    line = ",".join([values[0], "Smith, Jr.", *(_q(v or "") for v in values[2:])])
                else:
                    line = ",".join(_q(v or "") for v in values) + ("," if rank // 3 % 2 else ",extra")
        rejects[int(rej_file[j])].append(("raw", line))

    ranges = ((1, n1), (n1 + 1, n1 + n2), (n1 + n2 + 1, n))
    names = ("customers_001.csv", "customers_002.csv", "customers_003.csv.gz")
    endings = ("\r\n", "\n", "\n")
    (out / "customers").mkdir(parents=True, exist_ok=True)
    files = []
    records = 0
    for f, (lo, hi) in enumerate(ranges):
        base = originals[lo - 1 : hi]
        rows = base + updates[0] if f == 0 else _interleave(rng, base, updates[f])
        rows = _interleave(rng, rows, rejects[f])
        records += len(rows)
        rows = _interleave(rng, rows, [("blank", "")] * int(1 + rng.integers(0, 3)))
        fill = rng.random((len(rows), 16))
        lines = [",".join(CSV_HEADER)]
        for (what, payload), u in zip(rows, fill):
            lines.append(_csv_row(payload, u) if what == "row" else payload)
        data = (endings[f].join(lines) + endings[f]).encode("utf-8")
        if names[f].endswith(".gz"):
            data = gzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=0)
        (out / "customers" / names[f]).write_bytes(data)
        files.append(f"customers/{names[f]}")
    accepted = n + k
    counts = {
        "records": records,
        "rejected": dict.fromkeys(REASONS, k),
        "accepted": accepted,
        "distinct_keys": n,
        "collapsed": accepted - n,
    }
    say(f"customers: {records:,} records in {len(files)} files")
    return _Customers(files, counts, n, rejected_only)


# --------------------------------------------------------------------------- clickstream


@dataclass
class _Day:
    """Attributes of the records of one day file, in file order."""

    code: np.ndarray  # int8 record code
    num: np.ndarray  # int64 event number (the id's digits)
    instant: np.ndarray  # int64 ms since the epoch, UTC
    etype: np.ndarray  # int8 index into the event type table
    user: np.ndarray  # int32 index into the user table
    url: np.ndarray  # int32 index into the url table
    dur: np.ndarray  # int32 duration_ms
    dur_mode: np.ndarray  # int8: 0 present, 1 absent, 2 null
    fmt: np.ndarray  # int8 timestamp format
    zone: np.ndarray  # int8 index into _ZONES (format 3)
    session: np.ndarray  # int32, 0 = no session_id
    utm: np.ndarray  # int8 index into _UTMS
    device: np.ndarray  # int8 index into _DEVICES

    def take(self, idx: np.ndarray) -> _Day:
        return _Day(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


def _tables(n_cust: int, n_rej: int) -> dict[str, Any]:
    """Lookup tables of JSON fragments the rendering picks from by index."""
    cust = np.arange(1, n_cust + n_rej + 1)
    pool_start = max(9_900_000, n_cust + n_rej + 1)
    nums = pa.array(np.concatenate([cust, np.arange(pool_start, pool_start + _ORPHAN_POOL)]))
    users = pc.binary_join_element_wise(', "user_id": "C', pc.utf8_lpad(pc.cast(nums, pa.string()), 7, "0"), '"', "")
    users = pa.concat_arrays([users, pa.array(["", ', "user_id": null'])])
    urls = ([f"/products/{i}" for i in range(1, _PRODUCTS + 1)] + [f"/category/{c}" for c in _CATEGORIES]
            + ["/", "/cart", "/checkout"] + [f"/promo/{p}" for p in _PROMOS] + [f"/search?q={s}" for s in _SEARCHES])
    return {
        "users": users,
        "user_absent": n_cust + n_rej + _ORPHAN_POOL,
        "user_null": n_cust + n_rej + _ORPHAN_POOL + 1,
        "orphan_pool": n_cust + n_rej,
        "types": pa.array([f', "event_type": "{t}"' for t in KNOWN_EVENT_TYPES + UNKNOWN_EVENT_TYPES]),
        "type_names": KNOWN_EVENT_TYPES + UNKNOWN_EVENT_TYPES,
        "url_names": urls,
        "urls": pa.array([f', "page_url": "{u}"' for u in urls]),
        "dur_prefix": pa.array([', "duration_ms": ', "", ', "duration_ms": null']),
        "hms": pa.array([f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]),
        "frac_a": pa.array([f".{i:03d}" for i in range(1000)] + [""]),
        "frac_b": pa.array([f"{i:03d}" for i in range(1000)] + [""]),
        "zones": pa.array(["Z", ""] + [z for z, _ in _ZONES]),
        "session_prefix": pa.array(["", ', "session_id": "s']),
        "session_suffix": pa.array(["", '"']),
        "utms": pa.array(list(_UTMS)),
        "devices": pa.array(list(_DEVICES)),
    }


_URL_PRODUCT, _URL_CATEGORY = 0, _PRODUCTS
_URL_HOME = _URL_CATEGORY + len(_CATEGORIES)
_URL_CART, _URL_CHECKOUT, _URL_PROMO = _URL_HOME + 1, _URL_HOME + 2, _URL_HOME + 3
_URL_SEARCH = _URL_PROMO + len(_PROMOS)


def _draw_day(rng: np.random.Generator, code: np.ndarray, first_num: int, day_ms: int, n_cust: int,
              cust_perm: np.ndarray) -> _Day:
    """Random attributes for every record of a day (flags and duplicates are applied afterwards)."""
    n = len(code)
    hours = rng.choice(24, size=n, p=_HOUR_W)
    ms = np.sort(hours * 3_600_000 + rng.integers(0, 3_600_000, size=n))
    etype = rng.choice(len(KNOWN_EVENT_TYPES), size=n, p=_TYPE_P).astype(np.int8)
    user = cust_perm[(rng.random(n) ** 2 * n_cust).astype(np.int64)].astype(np.int32)
    r = rng.random(n)
    product = (_URL_PRODUCT + (rng.random(n) ** 2 * _PRODUCTS)).astype(np.int32)
    category = _URL_CATEGORY + rng.integers(0, len(_CATEGORIES), size=n, dtype=np.int32)
    promo = _URL_PROMO + rng.integers(0, len(_PROMOS), size=n, dtype=np.int32)
    search = _URL_SEARCH + rng.integers(0, len(_SEARCHES), size=n, dtype=np.int32)
    url = np.select(
        [etype == 0, etype == 1, etype == 2, etype == 3],
        [np.where(r < 0.7, product, np.where(r < 0.85, category, _URL_HOME)),
         np.full(n, _URL_CART, np.int32), np.full(n, _URL_CHECKOUT, np.int32), search],
        np.where(r < 0.6, product, np.where(r < 0.8, promo, category)),
    ).astype(np.int32)
    dur = np.minimum(rng.lognormal(_DUR_MU[etype], 0.8), 1_800_000).astype(np.int32)
    dur[rng.random(n) < 0.005] = 0
    return _Day(
        code=code,
        num=np.arange(first_num, first_num + n, dtype=np.int64),
        instant=day_ms + ms,
        etype=etype,
        user=user,
        url=url,
        dur=dur,
        dur_mode=rng.choice(3, size=n, p=(0.95, 0.03, 0.02)).astype(np.int8),
        fmt=rng.choice(len(_FMT_P), size=n, p=_FMT_P).astype(np.int8),
        zone=rng.integers(0, len(_ZONES), size=n, dtype=np.int8),
        session=np.where(rng.random(n) < 0.35, rng.integers(1, 10**9, size=n, dtype=np.int32), 0),
        utm=np.where(rng.random(n) < 0.05, rng.integers(1, len(_UTMS), size=n), 0).astype(np.int8),
        device=np.where(rng.random(n) < 0.1, rng.integers(1, len(_DEVICES), size=n), 0).astype(np.int8),
    )


def _apply_flags(rng: np.random.Generator, day: _Day, tabs: dict, n_rej: int) -> None:
    """Anonymous, orphan and unknown-type originals."""
    anon = np.flatnonzero(day.code == _ANON)
    day.user[anon] = np.where(rng.random(len(anon)) < 0.6, tabs["user_absent"], tabs["user_null"])
    orphan = np.flatnonzero(day.code == _ORPHAN)
    from_rejected = rng.random(len(orphan)) < (0.5 if n_rej else 0.0)
    rej_pick = tabs["orphan_pool"] - n_rej + rng.integers(0, max(n_rej, 1), size=len(orphan))
    pool_pick = tabs["orphan_pool"] + rng.integers(0, _ORPHAN_POOL, size=len(orphan))
    day.user[orphan] = np.where(from_rejected, rej_pick, pool_pick)
    unknown = np.flatnonzero(day.code == _UNKNOWN)
    day.etype[unknown] = len(KNOWN_EVENT_TYPES) + rng.integers(0, len(UNKNOWN_EVENT_TYPES), size=len(unknown))


def _apply_duplicates(rng: np.random.Generator, day: _Day, prev: _Day | None) -> int:
    """Make every duplicate record a re-sent copy of an original; returns how many copy an earlier day."""
    dpos = np.flatnonzero(day.code == _DUP)
    nd = len(dpos)
    if not nd:
        return 0
    vpos = np.flatnonzero(np.isin(day.code, _ORIGINAL_CODES))
    have_prev = prev is not None and len(prev.num) > 0
    late = (rng.random(nd) < _LATE_SHARE) & have_prev
    before = np.searchsorted(vpos, dpos)
    if not len(vpos):
        late[:] = True  # nothing to copy in this day: all copies are late arrivals
    back = rng.integers(0, _DUP_WINDOW, size=nd)
    pick = rng.random(nd)
    window = np.minimum(before, _DUP_WINDOW)
    same_idx = np.where(window > 0, before - 1 - back % np.maximum(window, 1),
                        (pick * max(len(vpos), 1)).astype(np.int64))
    delta_kind = rng.choice(3, size=nd, p=(0.4, 0.3, 0.3))
    delta = rng.integers(1_000, 3_600_000, size=nd) * np.where(delta_kind == 1, 1, -1)
    keep_dur = rng.random(nd) < 0.7

    same = np.flatnonzero(~late)
    late_i = np.flatnonzero(late)
    src = day.take(vpos[same_idx[same]]) if len(vpos) else None
    for sel, origin in ((same, src), (late_i, prev.take((pick[late_i] * len(prev.num)).astype(np.int64))
                                       if len(late_i) else None)):
        if not len(sel):
            continue
        pos = dpos[sel]
        equal = delta_kind[sel] == 0
        keep = keep_dur[sel]
        day.num[pos] = origin.num
        day.user[pos] = origin.user
        day.etype[pos] = origin.etype
        day.url[pos] = origin.url
        day.instant[pos] = origin.instant + np.where(equal, 0, delta[sel])
        day.fmt[pos] = np.where(equal, origin.fmt, day.fmt[pos])
        day.zone[pos] = np.where(equal, origin.zone, day.zone[pos])
        day.dur[pos] = np.where(keep, origin.dur, day.dur[pos])
        day.dur_mode[pos] = np.where(keep, origin.dur_mode, day.dur_mode[pos])
    return len(late_i)


def _render(day: _Day, tabs: dict, width: int) -> pa.Array:
    """The JSON text (with its trailing LF) of every record of a chunk, as if it were valid."""
    n = len(day.num)
    eid = pc.utf8_lpad(pc.cast(pa.array(day.num), pa.string()), width, "0")
    offset = np.where(day.fmt == 3, np.array([m for _, m in _ZONES])[day.zone], 0)
    local = day.instant + offset * 60_000
    secs = local // 1000
    msec = (local % 1000).astype(np.int32)
    dayn = secs // 86_400
    sod = (secs - dayn * 86_400).astype(np.int32)
    lo = int(dayn.min()) if n else 0
    dates = [(_EPOCH + timedelta(days=d)).strftime("%Y-%m-%d") for d in range(lo, int(dayn.max()) + 1 if n else lo)]
    date_tab = pa.array([d + sep for d in dates for sep in ("T", " ")])
    date_idx = (dayn - lo) * 2 + (day.fmt == 4)
    frac_a = np.where((day.fmt == 1) | (day.fmt == 2), msec, 1000)
    frac_b = np.where(day.fmt == 2, (day.num * 7919 + 13) % 1000, 1000)
    zone_idx = np.select([day.fmt <= 2, day.fmt == 3], [0, 2 + day.zone.astype(np.int64)], 1)
    dur_txt = pc.if_else(pa.array(day.dur_mode == 0), pc.cast(pa.array(day.dur), pa.string()), pa.scalar(""))
    has_session = day.session > 0
    session_txt = pc.if_else(pa.array(has_session), pc.cast(pa.array(day.session), pa.string()), pa.scalar(""))
    sflag = pa.array(has_session.astype(np.int8))
    return pc.binary_join_element_wise(
        '{"event_id": "e', eid, '"',
        tabs["users"].take(pa.array(day.user)),
        tabs["types"].take(pa.array(day.etype)),
        tabs["urls"].take(pa.array(day.url)),
        tabs["dur_prefix"].take(pa.array(day.dur_mode)), dur_txt,
        ', "timestamp": "', date_tab.take(pa.array(date_idx)), tabs["hms"].take(pa.array(sod)),
        tabs["frac_a"].take(pa.array(frac_a)), tabs["frac_b"].take(pa.array(frac_b)),
        tabs["zones"].take(pa.array(zone_idx)), '"',
        tabs["session_prefix"].take(sflag), session_txt, tabs["session_suffix"].take(sflag),
        tabs["utms"].take(pa.array(day.utm)), tabs["devices"].take(pa.array(day.device)),
        "}\n", "",
    )


def _ts_z(ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%SZ")


_INVALID_KINDS = ("ts_hour25", "dur_negative", "ts_absent", "dur_float", "ts_slashes", "dur_string", "ts_null",
                  "dur_bool", "ts_epoch", "ts_text", "ts_day32", "ts_empty")
_MALFORMED_KINDS = ("truncated", "array", "number", "truncated", "string", "truncated")


def _defect_line(code: int, rank: int, var: int, u: float, rec: dict, ms: int, first_in_file: bool) -> str:
    """The text of one rejected clickstream record; each has exactly one defect.

    ``rank`` (the record's number among those of its reason) picks the variant
    in turns; ``var`` and ``u`` are random numbers for its details.
    """
    if code == _MISSING_KEY:
        sub = rank % 3
        if sub == 0:
            del rec["event_id"]
        else:
            rec["event_id"] = None if sub == 1 else ""
        return json.dumps(rec, ensure_ascii=False)
    if code == _INVALID:
        when = _EPOCH + timedelta(milliseconds=ms)
        kind = _INVALID_KINDS[rank % len(_INVALID_KINDS)]
        if kind == "ts_absent":
            del rec["timestamp"]
        elif kind == "ts_null":
            rec["timestamp"] = None
        elif kind == "ts_empty":
            rec["timestamp"] = ""
        elif kind == "ts_hour25":
            rec["timestamp"] = when.strftime("%Y-%m-%dT25:%M:%SZ")
        elif kind == "ts_day32":
            rec["timestamp"] = when.strftime("%Y-%m-32T%H:%M:%SZ")
        elif kind == "ts_slashes":
            rec["timestamp"] = when.strftime("%m/%d/%Y %H:%M")
        elif kind == "ts_epoch":
            rec["timestamp"] = int(when.timestamp())
        elif kind == "ts_text":
            rec["timestamp"] = "not a date"
        elif kind == "dur_negative":
            rec["duration_ms"] = -(1 + var % 5_000)
        elif kind == "dur_float":
            rec["duration_ms"] = var % 50_000 + 0.5
        elif kind == "dur_string":
            rec["duration_ms"] = str(var % 50_000)
        else:
            rec["duration_ms"] = bool(var % 2)
        return json.dumps(rec, ensure_ascii=False)
    kind = _MALFORMED_KINDS[rank % len(_MALFORMED_KINDS)]
    if kind == "truncated" or (kind == "array" and first_in_file):  # a lone array line would read as an array file
        text = json.dumps(rec, ensure_ascii=False)
        return text[: 1 + int(u * (len(text) - 2))]
    if kind == "array":
        return ("[1, 2]", '["page_view", "e1"]')[var % 2]
    if kind == "number":
        return ("42", "3.14", "-1")[var % 3]
    return ('"text"', '"page_view"')[var % 2]


def _replace_defects(lines: pa.Array, day: _Day, start: int, tabs: dict, width: int, bad: np.ndarray,
                     rank: np.ndarray, var: np.ndarray, u: np.ndarray) -> pa.Array:
    """Put the text of the chunk's rejected records (at ``bad``; rendered one by one, they are few) in place."""
    if not len(bad):
        return lines
    texts = []
    for j, i in enumerate(bad):
        rec: dict[str, Any] = {
            "event_id": f"e{int(day.num[i]):0{width}d}",
            "user_id": _cid(int(day.user[i]) + 1),
            "event_type": tabs["type_names"][day.etype[i]],
            "page_url": tabs["url_names"][day.url[i]],
        }
        if day.dur_mode[i] != 1:
            rec["duration_ms"] = int(day.dur[i]) if day.dur_mode[i] == 0 else None
        ms = int(day.instant[i])
        rec["timestamp"] = _ts_z(ms)
        texts.append(_defect_line(int(day.code[i]), int(rank[j]), int(var[j]), float(u[j]), rec, ms, start + i == 0) + "\n")
    mask = np.zeros(len(day.num), dtype=bool)
    mask[bad] = True
    return pc.replace_with_mask(lines, pa.array(mask), pa.array(texts, pa.string()))


def _text_bytes(arr: pa.Array) -> pa.Buffer | None:
    """The concatenated UTF-8 of a string array, without copying."""
    if len(arr) == 0:
        return None
    dtype = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    size = np.dtype(dtype).itemsize
    offsets = np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr) + 1, offset=arr.offset * size)
    return arr.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


class _Sink:
    """A file written (and gzipped) by a background thread, a few chunks behind the producer."""

    def __init__(self, pool: ThreadPoolExecutor, path: Path, gz: bool) -> None:
        self._pool, self._fh = pool, open(path, "wb")
        self._z = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, 31) if gz else None  # gzip, mtime 0
        self._pending: list[Future] = []

    def _put(self, data: Any) -> None:
        self._fh.write(self._z.compress(data) if self._z else data)

    def write(self, data: Any) -> None:
        if data is None:
            return
        self._pending.append(self._pool.submit(self._put, data))
        while len(self._pending) > 3:
            self._pending.pop(0).result()

    def close(self) -> None:
        for f in self._pending:
            f.result()
        if self._z:
            self._fh.write(self._z.flush())
        self._fh.close()


def _write_clickstream(out: Path, rng: np.random.Generator, events: int, days: int, rate: float,
                       start: date, cust: _Customers, say: Callable[[str], None]) -> dict:
    k = _per_kind(events, rate)
    f = _per_flag(events, rate)
    total = events + 4 * k
    width = max(9, len(str(total)))
    n_cust, n_rej = cust.accepted, cust.rejected_only

    code = np.zeros(total, dtype=np.int8)
    if total and (k or f):
        labels = np.repeat(np.array([_DUP, _MALFORMED, _MISSING_KEY, _INVALID, _ANON, _ORPHAN, _UNKNOWN], np.int8),
                           [k, k, k, k, f, f, f])
        code[rng.choice(total, size=len(labels), replace=False)] = labels
        if code[0] not in _ORIGINAL_CODES:  # the first record is an original, so every copy has one to copy
            first = int(np.flatnonzero(np.isin(code, _ORIGINAL_CODES))[0])
            code[0], code[first] = code[first], code[0]
    weights = rng.uniform(0.85, 1.15, size=days)
    per_day = rng.multinomial(total, weights / weights.sum())
    bounds = np.concatenate([[0], np.cumsum(per_day)])
    cust_perm = rng.permutation(n_cust).astype(np.int32)
    tabs = _tables(n_cust, n_rej)
    extra_day = days // 2
    gz_days = {d for d in range(days) if d % 3 == 1} or {0}

    (out / "clickstream").mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    prev: _Day | None = None
    late_total = 0
    seen = dict.fromkeys((_MALFORMED, _MISSING_KEY, _INVALID), 0)
    day0_ms = (start - date(1970, 1, 1)).days * 86_400_000
    with ThreadPoolExecutor(max_workers=1) as pool:
        for d in range(days):
            a, b = int(bounds[d]), int(bounds[d + 1])
            day = _draw_day(rng, code[a:b], a + 1, day0_ms + d * 86_400_000, n_cust, cust_perm)
            _apply_flags(rng, day, tabs, n_rej)
            late_total += _apply_duplicates(rng, day, prev)
            bad = np.flatnonzero(np.isin(day.code, (_MALFORMED, _MISSING_KEY, _INVALID)))
            bad_code = day.code[bad]
            rank = np.zeros(len(bad), dtype=np.int64)
            for c in (_MALFORMED, _MISSING_KEY, _INVALID):
                idx = np.flatnonzero(bad_code == c)
                rank[idx] = seen[c] + np.arange(len(idx))
                seen[c] += len(idx)
            var = rng.integers(0, 1 << 30, size=len(bad))
            u = rng.random(len(bad))
            originals = np.flatnonzero(np.isin(day.code, _ORIGINAL_CODES))
            extra = np.zeros(len(day.num), dtype=bool)
            if d == extra_day:
                n_extra = min(_EXTRA_MAX, len(originals) // 5)
                if n_extra:
                    extra[rng.choice(originals, size=n_extra, replace=False)] = True

            folder = out / "clickstream" / f"dt={(start + timedelta(days=d)).isoformat()}"
            folder.mkdir()
            name = "part-0000.jsonl.gz" if d in gz_days else "part-0000.jsonl"
            sink = _Sink(pool, folder / name, d in gz_days)
            elements: list[str] = []
            try:
                for s in range(0, len(day.num), _CHUNK):
                    e = min(s + _CHUNK, len(day.num))
                    part = day.take(slice(s, e))
                    lines = _render(part, tabs, width)
                    i0, i1 = np.searchsorted(bad, (s, e))
                    lines = _replace_defects(lines, part, s, tabs, width, bad[i0:i1] - s, rank[i0:i1],
                                             var[i0:i1], u[i0:i1])
                    ex = extra[s:e]
                    if ex.any():
                        elements += [t.rstrip("\n") for t in lines.filter(pa.array(ex)).to_pylist()]
                        lines = lines.filter(pa.array(~ex))
                    sink.write(_text_bytes(lines))
                    if d == 0 and s == 0:
                        sink.write(b"\n")  # a blank line (loaders skip it; not a record)
            finally:
                sink.close()
            files.append(f"clickstream/{folder.name}/{name}")
            if elements:
                (folder / "extra-0000.json").write_text("[\n  " + ",\n  ".join(elements) + "\n]\n", encoding="utf-8")
                files.append(f"clickstream/{folder.name}/extra-0000.json")
            if len(originals):  # late arrivals of the next day copy one of (a sample of) these
                prev = day.take(originals[:: -(-len(originals) // _PREV_MAX)])
            say(f"clickstream: {folder.name} {b - a:,} records")

    accepted = total - 3 * k
    return {
        "files": sorted(files),
        "records": total,
        "rejected": dict.fromkeys(REASONS, k),
        "accepted": accepted,
        "distinct_keys": events,
        "collapsed": accepted - events,
        "anonymous": f,
        "orphans": f,
        "unknown_event_type": f,
        "late_arrivals": late_total,
    }

"""Helpers shared by the PostgreSQL baseline's loader, server and comparer.

Parsing follows goatview's rules (contract §2.1, docs/decisions.md) closely enough for a
benchmark baseline; bench/pg/README.md lists where it is looser.
"""

from __future__ import annotations

import datetime as _dt
import re
import zoneinfo
from decimal import ROUND_HALF_UP, Decimal

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
TS_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|([+-])(\d{2}):(\d{2}))\Z"
)

_EPOCH_ORD = _dt.date(1970, 1, 1).toordinal()
_UTC = _dt.timezone.utc
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_UTC)
MAX_COUNT = 2**63 - 1

# IANA names, case-sensitive, as the system's tzdata knows them (PostgreSQL on Debian
# reads the same tzdata).
TIMEZONES = frozenset(zoneinfo.available_timezones())


def parse_uuid(s) -> str | None:
    """A hyphenated UUID in any letter case, lowercased; None if invalid."""
    if type(s) is not str or not UUID_RE.match(s):
        return None
    return s.lower()


def uuid_int(s: str) -> int:
    """The 16 bytes of a valid UUID as an unsigned integer (the tie-break order)."""
    return int(s.replace("-", ""), 16)


def parse_ts(s) -> int | None:
    """RFC 3339 with an offset -> nanoseconds since the epoch; None if invalid."""
    if type(s) is not str:
        return None
    m = TS_RE.match(s)
    if m is None:
        return None
    y, mo, d, h, mi, sec, frac, sign, oh, om = m.groups()
    try:
        days = _dt.date(int(y), int(mo), int(d)).toordinal() - _EPOCH_ORD
    except ValueError:
        return None
    h, mi, sec = int(h), int(mi), int(sec)
    if h > 23 or mi > 59 or sec > 60:
        return None
    off = 0
    if sign is not None:
        oh, om = int(oh), int(om)
        if oh > 23 or om > 59:
            return None
        off = (oh * 3600 + om * 60) * (1 if sign == "+" else -1)
    ns = 0
    if frac:
        ns = int((frac + "000000000")[:9])
    return ((days * 86400 + h * 3600 + mi * 60 + sec - off) * 1_000_000_000) + ns


def parse_date(s) -> _dt.date | None:
    """Strict YYYY-MM-DD, a real calendar date."""
    if type(s) is not str or not DATE_RE.match(s):
        return None
    try:
        return _dt.date.fromisoformat(s)
    except ValueError:
        return None


def fmt_ns(ns: int) -> str:
    """UTC with `Z`, a fraction only when not 0 (3, 6 or 9 digits, like chrono's AutoSi)."""
    secs, frac = divmod(ns, 1_000_000_000)
    t = _EPOCH + _dt.timedelta(seconds=secs)
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    if frac == 0:
        return base + "Z"
    if frac % 1_000_000 == 0:
        return f"{base}.{frac // 1_000_000:03d}Z"
    if frac % 1000 == 0:
        return f"{base}.{frac // 1000:06d}Z"
    return f"{base}.{frac:09d}Z"


def ns_to_datetime(ns: int) -> _dt.datetime:
    """The instant floored to the microsecond (PostgreSQL's precision)."""
    return _EPOCH + _dt.timedelta(microseconds=ns // 1000)


def datetime_to_ns(t: _dt.datetime, extra_ns: int = 0) -> int:
    d = t - _EPOCH
    return (d.days * 86400 + d.seconds) * 1_000_000_000 + d.microseconds * 1000 + extra_ns


def round_half_away(x: float, places: int = 0) -> float:
    """Round the exact value of a float half away from zero, like Rust's f64::round."""
    q = Decimal(1).scaleb(-places)
    return float(Decimal(x).quantize(q, rounding=ROUND_HALF_UP))


def round2(x: float) -> float:
    """goatview's round2: (x * 100).round() / 100 in f64."""
    return round_half_away(x * 100.0) / 100.0


_day_start_cache: dict = {}


def day_start(tz: str, d: _dt.date) -> _dt.datetime:
    """First instant of local day `d` in `tz` (UTC datetime): local midnight, or the first
    local minute that exists after it (DST gap); the earlier instant when ambiguous."""
    key = (tz, d)
    hit = _day_start_cache.get(key)
    if hit is not None:
        return hit
    z = zoneinfo.ZoneInfo(tz)
    local = _dt.datetime(d.year, d.month, d.day)
    for _ in range(48 * 60):
        cand = local.replace(tzinfo=z, fold=0)
        u = cand.astimezone(_UTC)
        if u.astimezone(z).replace(tzinfo=None) == local:
            if len(_day_start_cache) > 100_000:
                _day_start_cache.clear()
            _day_start_cache[key] = u
            return u
        local += _dt.timedelta(minutes=1)
    raise ValueError(f"no start of day for {d} in {tz}")


def local_date(tz: str, t: _dt.datetime) -> _dt.date:
    return t.astimezone(zoneinfo.ZoneInfo(tz)).date()

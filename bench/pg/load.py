#!/usr/bin/env python3
"""Load goatview JSON Lines event logs into PostgreSQL current-state tables.

Streams each log once, validates every line (contract §2.1/§2.2; invalid lines are
skipped and counted as dead letters), resolves every last-writer-wins register of
contract §2.3 by (occurred_at instant, event_id bytes) in Python dicts, then COPYs the
final state into fresh tables in schema `gv_load`, indexes and analyzes them, and swaps
the schema in as `gv` (what bench/pg/server.py reads). Only present registers are
stored; visibility (a video's creator tracked, a goal's creator tracked, ...) is left
to the queries, as a conventional application database would.

Usage: load.py --dsn DSN FILE...
"""

from __future__ import annotations

import argparse
import sys
import time

import psycopg

try:
    import orjson

    _loads = orjson.loads
except ImportError:  # pragma: no cover - the venv has it
    orjson = None
    _loads = None
import json

from gvcommon import (
    MAX_COUNT,
    TIMEZONES,
    fmt_ns,
    ns_to_datetime,
    parse_date,
    parse_ts,
    parse_uuid,
    uuid_int,
)

SCHEMA_SQL = """
CREATE TABLE {s}.projects (
    project_id    uuid PRIMARY KEY,
    org_id        uuid NOT NULL,
    name          text NOT NULL,
    timezone      text NOT NULL,
    last_event_at text            -- meta.last_event_at, already formatted
);
CREATE TABLE {s}.api_keys (
    key_id      uuid PRIMARY KEY,
    org_id      uuid NOT NULL,
    key_sha256  text NOT NULL,
    expires_at  timestamptz
);
CREATE TABLE {s}.creators (
    project_id     uuid NOT NULL,
    creator_id     uuid NOT NULL,
    tiktok_handle  text NOT NULL,
    display_name   text,
    avatar_url     text,
    follower_count bigint NOT NULL
);
CREATE TABLE {s}.creator_stats_history (
    project_id     uuid NOT NULL,
    creator_id     uuid NOT NULL,
    occurred_at    timestamptz NOT NULL,   -- floored to the microsecond
    occurred_ns    smallint NOT NULL,      -- the nanoseconds below it (0..999)
    follower_count bigint NOT NULL
);
CREATE TABLE {s}.videos (
    project_id    uuid NOT NULL,
    video_id      uuid NOT NULL,
    creator_id    uuid NOT NULL,
    posted_at     timestamptz NOT NULL,    -- floored to the microsecond
    posted_ns     smallint NOT NULL,       -- the nanoseconds below it (0..999)
    title         text,
    thumbnail_url text,
    url           text,
    view_count    bigint NOT NULL,
    like_count    bigint NOT NULL,
    comment_count bigint NOT NULL,
    share_count   bigint NOT NULL,
    save_count    bigint NOT NULL
);
CREATE TABLE {s}.goals (
    project_id uuid NOT NULL,
    goal_id    uuid NOT NULL,
    creator_id uuid NOT NULL,
    metric     text NOT NULL,              -- 'posts' | 'views'
    target     bigint NOT NULL,
    starts_on  date NOT NULL,
    ends_on    date NOT NULL
);
CREATE TABLE {s}.campaigns (
    project_id  uuid NOT NULL,
    campaign_id uuid NOT NULL,
    name        text NOT NULL
);
CREATE TABLE {s}.campaign_items (
    project_id  uuid NOT NULL,
    campaign_id uuid NOT NULL,
    item_type   text NOT NULL,             -- 'creator' | 'video' | 'campaign'
    item_id     uuid NOT NULL
);
"""

INDEX_SQL = """
ALTER TABLE {s}.creators ADD PRIMARY KEY (project_id, creator_id);
ALTER TABLE {s}.videos ADD PRIMARY KEY (project_id, video_id);
CREATE INDEX videos_posted ON {s}.videos (project_id, posted_at);
CREATE INDEX videos_creator ON {s}.videos (project_id, creator_id, view_count);
ALTER TABLE {s}.creator_stats_history ADD PRIMARY KEY (project_id, creator_id, occurred_at, occurred_ns);
ALTER TABLE {s}.goals ADD PRIMARY KEY (project_id, goal_id);
CREATE INDEX goals_creator ON {s}.goals (project_id, creator_id);
ALTER TABLE {s}.campaigns ADD PRIMARY KEY (project_id, campaign_id);
ALTER TABLE {s}.campaign_items ADD PRIMARY KEY (project_id, campaign_id, item_type, item_id);
CREATE INDEX campaign_items_item ON {s}.campaign_items (project_id, item_type, item_id);
CREATE INDEX api_keys_sha ON {s}.api_keys (key_sha256);
"""

KNOWN_TYPES = {
    "video.scraped",
    "video.removed",
    "creator.snapshot",
    "creator.removed",
    "creator.goal_set",
    "creator.goal_removed",
    "campaign.upserted",
    "campaign.deleted",
    "campaign.item_added",
    "campaign.item_removed",
    "project.upserted",
    "project.deleted",
    "api_key.issued",
    "api_key.revoked",
}


class Invalid(Exception):
    pass


def _count(o, k):
    v = o.get(k)
    if type(v) is not int or v < 0 or v > MAX_COUNT:
        raise Invalid(k)
    return v


def _parsed(parse, o, k):
    """o[k] through a gvcommon parser, which answers None for anything invalid."""
    v = parse(o.get(k))
    if v is None:
        raise Invalid(k)
    return v


def _uuid(o, k):
    return _parsed(parse_uuid, o, k)


def _ts(o, k):
    return _parsed(parse_ts, o, k)


def _nullable(o, k):
    v = o.get(k)
    if v is None or type(v) is str:
        return v
    raise Invalid(k)


def _nonempty(o, k):
    v = o.get(k)
    if type(v) is not str or v == "":
        raise Invalid(k)
    return v


def _date(o, k):
    return _parsed(parse_date, o, k)


class Project:
    """All registers of one project: key -> (occurred ns, event id int, value | None)."""

    __slots__ = ("project", "videos", "creators", "history", "goals", "campaigns", "members", "last_ns")

    def __init__(self):
        self.project = None
        self.videos = {}
        self.creators = {}
        self.history = {}  # (creator_id, ns) -> (event id int, follower_count)
        self.goals = {}
        self.campaigns = {}
        self.members = {}
        self.last_ns = None


def _put(d, k, ns, eid, val):
    cur = d.get(k)
    if cur is None or ns > cur[0] or (ns == cur[0] and eid > cur[1]):
        d[k] = (ns, eid, val)


class State:
    def __init__(self):
        self.projects: dict[str, Project] = {}
        self.keys: dict = {}
        self.lines = 0
        self.blank = 0
        self.dead = 0
        self.applied = 0
        self.dead_reasons: dict[str, int] = {}

    def dead_letter(self, reason):
        self.dead += 1
        self.dead_reasons[reason] = self.dead_reasons.get(reason, 0) + 1

    def apply_line(self, raw: bytes):
        self.lines += 1
        if not raw.strip():
            self.blank += 1
            return
        try:
            o = _loads(raw) if _loads else json.loads(raw)
        except Exception:
            try:  # orjson refuses integers beyond 64 bits; serde_json reads them as floats
                o = json.loads(raw.decode("utf-8"))
            except Exception:
                self.dead_letter("not_json")
                return
        if type(o) is not dict:
            self.dead_letter("not_object")
            return
        ty = o.get("type")
        if type(ty) is not str or ty not in KNOWN_TYPES:
            self.dead_letter("unknown_type")
            return
        try:
            self.apply(ty, o)
        except Invalid as e:
            self.dead_letter(f"{ty}:{e}")
            return
        self.applied += 1

    def apply(self, ty, o):
        eid = uuid_int(_uuid(o, "event_id"))
        ns = _ts(o, "occurred_at")
        if ty == "api_key.issued":
            key_id = _uuid(o, "key_id")
            h = o.get("key_sha256")
            if type(h) is not str or len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
                raise Invalid("key_sha256")
            org = _uuid(o, "org_id")
            exp = o.get("expires_at")
            if exp is not None:
                exp = _ts(o, "expires_at")
            _put(self.keys, key_id, ns, eid, (org, h, exp))
            return
        if ty == "api_key.revoked":
            _put(self.keys, _uuid(o, "key_id"), ns, eid, None)
            return
        pid = _uuid(o, "project_id")
        # Validate everything before touching state: a dead letter changes nothing.
        if ty == "video.scraped":
            k = _uuid(o, "video_id")
            val = (
                _uuid(o, "creator_id"),
                _ts(o, "posted_at"),
                _nullable(o, "title"),
                _nullable(o, "thumbnail_url"),
                _nullable(o, "url"),
                _count(o, "view_count"),
                _count(o, "like_count"),
                _count(o, "comment_count"),
                _count(o, "share_count"),
                _count(o, "save_count"),
            )
            p = self._project(pid, ns)
            _put(p.videos, k, ns, eid, val)
        elif ty == "video.removed":
            k = _uuid(o, "video_id")
            _put(self._project(pid, ns).videos, k, ns, eid, None)
        elif ty == "creator.snapshot":
            k = _uuid(o, "creator_id")
            val = (
                _nonempty(o, "tiktok_handle"),
                _nullable(o, "display_name"),
                _nullable(o, "avatar_url"),
                _count(o, "follower_count"),
            )
            p = self._project(pid, ns)
            _put(p.creators, k, ns, eid, val)
            hk = (k, ns)
            cur = p.history.get(hk)
            if cur is None or eid > cur[0]:
                p.history[hk] = (eid, val[3])
        elif ty == "creator.removed":
            k = _uuid(o, "creator_id")
            _put(self._project(pid, ns).creators, k, ns, eid, None)
        elif ty == "creator.goal_set":
            metric = o.get("metric")
            if metric not in ("posts", "views"):
                raise Invalid("metric")
            k = _uuid(o, "goal_id")
            creator = _uuid(o, "creator_id")
            target = _count(o, "target")
            if target < 1:
                raise Invalid("target")
            starts, ends = _date(o, "starts_on"), _date(o, "ends_on")
            if ends < starts:
                raise Invalid("ends_on")
            _put(self._project(pid, ns).goals, k, ns, eid, (creator, metric, target, starts, ends))
        elif ty == "creator.goal_removed":
            k = _uuid(o, "goal_id")
            _put(self._project(pid, ns).goals, k, ns, eid, None)
        elif ty == "campaign.upserted":
            k = _uuid(o, "campaign_id")
            name = _nonempty(o, "name")
            _put(self._project(pid, ns).campaigns, k, ns, eid, name)
        elif ty == "campaign.deleted":
            k = _uuid(o, "campaign_id")
            _put(self._project(pid, ns).campaigns, k, ns, eid, None)
        elif ty in ("campaign.item_added", "campaign.item_removed"):
            it = o.get("item_type")
            if it not in ("creator", "video", "campaign"):
                raise Invalid("item_type")
            k = (_uuid(o, "campaign_id"), it, _uuid(o, "item_id"))
            _put(self._project(pid, ns).members, k, ns, eid, True if ty == "campaign.item_added" else None)
        elif ty == "project.upserted":
            tz = o.get("timezone")
            if type(tz) is not str or tz not in TIMEZONES:
                raise Invalid("timezone")
            org = _uuid(o, "org_id")
            name = o.get("name")
            if type(name) is not str:
                raise Invalid("name")
            p = self._project(pid, ns)
            cur = p.project
            if cur is None or ns > cur[0] or (ns == cur[0] and eid > cur[1]):
                p.project = (ns, eid, (org, name, tz))
        elif ty == "project.deleted":
            p = self._project(pid, ns)
            cur = p.project
            if cur is None or ns > cur[0] or (ns == cur[0] and eid > cur[1]):
                p.project = (ns, eid, None)

    def _project(self, pid, ns) -> Project:
        p = self.projects.get(pid)
        if p is None:
            p = self.projects[pid] = Project()
        if p.last_ns is None or ns > p.last_ns:
            p.last_ns = ns
        return p


def read_file(state: State, path: str, progress: bool):
    t0 = time.monotonic()
    nbytes = 0
    next_report = t0 + 10
    with open(path, "rb", buffering=1 << 20) as f:
        for raw in f:
            nbytes += len(raw)
            state.apply_line(raw)
            if progress and (state.lines & 0xFFFF) == 0:
                now = time.monotonic()
                if now >= next_report:
                    next_report = now + 10
                    mb = nbytes / 1e6
                    print(
                        f"  {path}: {state.lines:,} lines, {mb:,.0f} MB, {mb / (now - t0):.0f} MB/s",
                        file=sys.stderr,
                    )


def write_tables(state: State, conn: psycopg.Connection, schema: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    s = schema

    def copy(table, cols, rows):
        n = 0
        with conn.cursor().copy(f"COPY {s}.{table} ({', '.join(cols)}) FROM STDIN WITH (FREEZE)") as cp:
            for r in rows:
                cp.write_row(r)
                n += 1
        counts[table] = counts.get(table, 0) + n

    def projects():
        for pid, p in state.projects.items():
            if p.project is not None and p.project[2] is not None:
                org, name, tz = p.project[2]
                yield (pid, org, name, tz, fmt_ns(p.last_ns) if p.last_ns is not None else None)

    def keys():
        for kid, (_, _, v) in state.keys.items():
            if v is not None:
                org, h, exp = v
                yield (kid, org, h, None if exp is None else ns_to_datetime(exp))

    def creators():
        for pid, p in state.projects.items():
            for cid, (_, _, v) in p.creators.items():
                if v is not None:
                    yield (pid, cid, v[0], v[1], v[2], v[3])

    def history():
        for pid, p in state.projects.items():
            for (cid, ns), (_, n) in p.history.items():
                yield (pid, cid, ns_to_datetime(ns), ns % 1000, n)

    def videos():
        for pid, p in state.projects.items():
            for vid, (_, _, v) in p.videos.items():
                if v is not None:
                    c, posted, title, thumb, url, vc, lc, cc, shc, svc = v
                    yield (pid, vid, c, ns_to_datetime(posted), posted % 1000, title, thumb, url, vc, lc, cc, shc, svc)

    def goals():
        for pid, p in state.projects.items():
            for gid, (_, _, v) in p.goals.items():
                if v is not None:
                    yield (pid, gid) + v

    def campaigns():
        for pid, p in state.projects.items():
            for cid, (_, _, v) in p.campaigns.items():
                if v is not None:
                    yield (pid, cid, v)

    def members():
        for pid, p in state.projects.items():
            for (cid, it, item), (_, _, v) in p.members.items():
                if v is not None:
                    yield (pid, cid, it, item)

    copy("projects", ["project_id", "org_id", "name", "timezone", "last_event_at"], projects())
    copy("api_keys", ["key_id", "org_id", "key_sha256", "expires_at"], keys())
    copy("creators", ["project_id", "creator_id", "tiktok_handle", "display_name", "avatar_url", "follower_count"], creators())
    copy("creator_stats_history", ["project_id", "creator_id", "occurred_at", "occurred_ns", "follower_count"], history())
    copy(
        "videos",
        [
            "project_id", "video_id", "creator_id", "posted_at", "posted_ns", "title", "thumbnail_url", "url",
            "view_count", "like_count", "comment_count", "share_count", "save_count",
        ],
        videos(),
    )
    copy("goals", ["project_id", "goal_id", "creator_id", "metric", "target", "starts_on", "ends_on"], goals())
    copy("campaigns", ["project_id", "campaign_id", "name"], campaigns())
    copy("campaign_items", ["project_id", "campaign_id", "item_type", "item_id"], members())
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()

    t0 = time.monotonic()
    state = State()
    for path in args.files:
        read_file(state, path, not args.quiet)
    t_read = time.monotonic() - t0
    print(
        f"read {state.lines:,} lines: {state.applied:,} events applied, {state.dead:,} dead letters, "
        f"{state.blank:,} blank, {len(state.projects)} projects in {t_read:.1f}s",
        file=sys.stderr,
    )

    t1 = time.monotonic()
    with psycopg.connect(args.dsn, autocommit=False) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET synchronous_commit = off")
        conn.execute("DROP SCHEMA IF EXISTS gv_load CASCADE")
        conn.execute("CREATE SCHEMA gv_load")
        # Tables created in this transaction: with wal_level=minimal the COPY skips WAL.
        conn.execute(SCHEMA_SQL.format(s="gv_load"))
        counts = write_tables(state, conn, "gv_load")
        t_copy = time.monotonic() - t1
        conn.execute("SET search_path = gv_load")
        conn.execute(INDEX_SQL.format(s="gv_load"))
        conn.commit()
        t_index = time.monotonic() - t1 - t_copy
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) gv_load.projects, gv_load.api_keys, gv_load.creators, "
                     "gv_load.creator_stats_history, gv_load.videos, gv_load.goals, gv_load.campaigns, "
                     "gv_load.campaign_items")
        with conn.transaction():
            conn.execute("DROP SCHEMA IF EXISTS gv CASCADE")
            conn.execute("ALTER SCHEMA gv_load RENAME TO gv")
        size = conn.execute(
            "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))), "
            "pg_size_pretty(sum(pg_relation_size(c.oid))) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'gv' AND c.relkind = 'r'"
        ).fetchone()
    t_total = time.monotonic() - t0
    for table, n in counts.items():
        print(f"  {table:<22} {n:>12,} rows")
    print(
        f"loaded in {t_total:.1f}s (read+resolve {t_read:.1f}s, copy {t_copy:.1f}s, "
        f"index {t_index:.1f}s, vacuum/analyze {t_total - t_read - t_copy - t_index:.1f}s); "
        f"schema gv: {size[0]} total, {size[1]} heap"
    )


if __name__ == "__main__":
    main()

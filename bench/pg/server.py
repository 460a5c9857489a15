#!/usr/bin/env python3
"""PostgreSQL baseline of goatview's ten aggregate endpoints.

A thin HTTP server (stdlib ThreadingHTTPServer) answering
`GET /api/v1/analytics/aggregate/<endpoint>?project_id=...` with the contract's JSON
envelope. Every answer is computed by SQL at request time over the current-state tables
that bench/pg/load.py wrote (schema `gv`); Python only validates parameters, computes the
period bounds (first instant of a local day, contract §3 / docs/decisions.md) and turns
exact integer sums into the contract's rounded floats.

No authentication: every visible project is readable (a benchmark baseline, bound to
127.0.0.1). Otherwise the status codes and error codes follow contract §4.1.

Usage: server.py --dsn DSN [--listen 127.0.0.1:18090] [--pool 8]
Environment: GOATVIEW_NOW (RFC 3339) fixes "now" (today, goal status).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import queue
import re
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import psycopg

from gvcommon import (
    TIMEZONES,
    datetime_to_ns,
    day_start,
    fmt_ns,
    local_date,
    parse_date,
    parse_ts,
    parse_uuid,
    round2,
    round_half_away,
)

BASE = "/api/v1/analytics/aggregate/"
U64_MAX = 2**64 - 1
I64_MAX = 2**63 - 1
_UTC = dt.timezone.utc
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)
DECIMAL_RE = re.compile(r"\d+(\.\d+)?\Z")


class ApiError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def bad(param, detail):
    return ApiError(400, "invalid_parameter", f"`{param}` {detail}")


NOT_FOUND = ApiError(404, "not_found", "project not found")


# ---------------------------------------------------------------------------
# Parameters (contract §4.1, docs/decisions.md)
# ---------------------------------------------------------------------------

ENDPOINT_PARAMS = {
    "video-leaderboard": ("project_id", "from", "to", "order", "limit", "offset"),
    "posting-heatmap": ("project_id", "from", "to", "tz"),
    "view-distribution": ("project_id", "from", "to", "bin_count"),
    "outliers": ("project_id", "from", "to", "min_x_multiple", "limit"),
    "creator-leaderboard": ("project_id", "from", "to", "limit", "offset"),
    "posting-consistency": ("project_id", "from", "to", "tz"),
    "creator-scatter": ("project_id", "from", "to"),
    "goal-compliance": ("project_id",),
    "campaign-leaderboard": ("project_id", "from", "to"),
    "member-overlap": ("project_id", "dimension"),
}
REQUIRED_PERIOD = {"posting-heatmap", "view-distribution", "posting-consistency", "campaign-leaderboard"}
VIDEO_ORDERS = ("view_count", "like_count", "comment_count", "share_count", "save_count", "posted_at")


class Params:
    def __init__(self, raw_query: str, known):
        self.values = {}
        for k, v in parse_qsl(raw_query, keep_blank_values=True):
            if k not in known:
                continue
            if v == "":
                raise bad(k, "must not be empty")
            if k in self.values:
                raise bad(k, "is given twice")
            self.values[k] = v

    def get(self, k):
        return self.values.get(k)

    def date(self, k):
        s = self.values.get(k)
        if s is None:
            return None
        d = parse_date(s)
        if d is None:
            raise bad(k, "must be a date YYYY-MM-DD")
        return d

    def int(self, k, lo, hi, default):
        s = self.values.get(k)
        if s is None:
            return default
        if not s.isascii() or not s.isdigit():
            raise bad(k, "must be an integer")
        n = int(s)
        if n < lo or (hi is not None and n > hi):
            raise bad(k, f"must be between {lo} and {hi}" if hi is not None else f"must be at least {lo}")
        return n


def parse_request(endpoint, raw_query):
    """Validate every parameter (400 before 404). Returns (project_id, dict)."""
    p = Params(raw_query, ENDPOINT_PARAMS[endpoint])
    pid_raw = p.get("project_id")
    if pid_raw is None:
        raise bad("project_id", "is required")
    pid = parse_uuid(pid_raw)
    if pid is None:
        raise bad("project_id", "must be a UUID")
    q = {}
    if "from" in ENDPOINT_PARAMS[endpoint]:
        f, t = p.date("from"), p.date("to")
        if endpoint in REQUIRED_PERIOD:
            if f is None:
                raise bad("from", "is required")
            if t is None:
                raise bad("to", "is required")
        if f is not None and t is not None and f > t:
            raise bad("from", "must not be after `to`")
        q["from"], q["to"] = f, t
    if "tz" in ENDPOINT_PARAMS[endpoint]:
        tz = p.get("tz")
        if tz is not None and tz not in TIMEZONES:
            raise bad("tz", "must be an IANA time zone name")
        q["tz"] = tz
    if endpoint == "video-leaderboard":
        order = p.get("order") or "view_count"
        if order not in VIDEO_ORDERS:
            raise bad("order", f"must be one of {', '.join(VIDEO_ORDERS)}")
        q["order"] = order
        q["limit"] = p.int("limit", 1, 200, 100)
        q["offset"] = p.int("offset", 0, None, 0)
    elif endpoint == "creator-leaderboard":
        q["limit"] = p.int("limit", 1, 200, 100)
        q["offset"] = p.int("offset", 0, None, 0)
    elif endpoint == "view-distribution":
        q["bin_count"] = p.int("bin_count", 5, 50, 20)
    elif endpoint == "outliers":
        s = p.get("min_x_multiple")
        if s is None:
            q["min_x"] = 1.5
        else:
            if not s.isascii() or not (DECIMAL_RE.match(s) or re.match(r"\.\d+\Z", s)):
                raise bad("min_x_multiple", "must be a decimal number")
            x = float(s)
            if not (x > 0 and x <= 1000):
                raise bad("min_x_multiple", "must be > 0 and <= 1000")
            q["min_x"] = x
        q["limit"] = p.int("limit", 1, 100, 50)
    elif endpoint == "member-overlap":
        d = p.get("dimension") or "creator"
        if d not in ("creator", "video"):
            raise bad("dimension", "must be creator or video")
        q["dimension"] = d
    return pid, q


# ---------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------


def period_bounds(tz, f, t):
    lo = day_start(tz, f) if f is not None else None
    hi = day_start(tz, t + dt.timedelta(days=1)) if t is not None else None
    return lo, hi


def period_sql(col, lo, hi, args, prefix="p"):
    """SQL predicate `lo <= col < hi` (open sides omitted), appending named args."""
    parts = []
    if lo is not None:
        args[prefix + "_lo"] = lo
        parts.append(f"{col} >= %({prefix}_lo)s")
    if hi is not None:
        args[prefix + "_hi"] = hi
        parts.append(f"{col} < %({prefix}_hi)s")
    return " AND ".join(parts) if parts else "TRUE"


def ts_out(t: dt.datetime, extra_ns: int) -> str:
    return fmt_ns(datetime_to_ns(t, extra_ns))


def engagement(inter, views) -> float:
    if not views:
        return 0.0
    return round2(float(int(inter)) / float(int(views)) * 100.0)


def follower_change(first, last, n):
    """(follower_delta, growth_rate) from the first and last point in the period."""
    if not n:
        return 0, 0.0
    delta = int(last) - int(first)
    if n < 2:
        delta = 0
    growth = 0.0 if int(first) == 0 else round2(float(delta) / float(int(first)) * 100.0)
    return delta, growth


def uint(x):
    x = int(x)
    if x > U64_MAX:
        raise ApiError(500, "internal", "internal error")
    return x


def s(u):
    return None if u is None else str(u)


# The visible videos of the project: a present video whose creator is tracked.
VISIBLE = """videos v JOIN creators c ON c.project_id = v.project_id AND c.creator_id = v.creator_id"""

# Follower points of the period: first and last by instant, and how many.
FOLLOWERS_CTE = """
fp AS (
    SELECT h.creator_id,
           (array_agg(h.follower_count ORDER BY h.occurred_at, h.occurred_ns))[1] AS first_count,
           (array_agg(h.follower_count ORDER BY h.occurred_at DESC, h.occurred_ns DESC))[1] AS last_count,
           count(*) AS points
    FROM creator_stats_history h
    WHERE h.project_id = %(pid)s AND {hist_period}
    GROUP BY h.creator_id
)"""


# ---------------------------------------------------------------------------
# Endpoints: each gets (cursor, project dict, params dict, now) and returns `data`.
# ---------------------------------------------------------------------------


def video_leaderboard(cur, prj, q, now):
    lo, hi = period_bounds(prj["tz"], q["from"], q["to"])
    args = {"pid": prj["id"], "limit": q["limit"], "offset": min(q["offset"], I64_MAX)}
    order = q["order"]
    order_sql = "v.posted_at DESC, v.posted_ns DESC" if order == "posted_at" else f"v.{order} DESC"
    where = f"""v.project_id = %(pid)s AND {period_sql("v.posted_at", lo, hi, args)}"""
    # total_count as its own (uncorrelated, run-once) count rather than count(*) OVER ():
    # the window would force a full sort where LIMIT allows a top-N heap (2x at scale L).
    sql = f"""
        SELECT v.video_id, v.title, v.thumbnail_url, v.url, v.view_count, v.like_count, v.comment_count,
               v.share_count, v.save_count, v.posted_at, v.posted_ns, v.creator_id,
               c.tiktok_handle, c.display_name, c.avatar_url,
               (SELECT count(*) FROM {VISIBLE} WHERE {where}) AS total_count
        FROM {VISIBLE}
        WHERE {where}
        ORDER BY {order_sql}, v.video_id
        LIMIT %(limit)s OFFSET %(offset)s"""
    out = []
    for r in cur.execute(sql, args):
        out.append({
            "video_id": str(r[0]), "title": r[1], "thumbnail_url": r[2], "url": r[3],
            "view_count": r[4], "like_count": r[5], "comment_count": r[6], "share_count": r[7],
            "save_count": r[8], "posted_at": ts_out(r[9], r[10]), "creator_id": str(r[11]),
            "tiktok_handle": r[12], "display_name": r[13], "avatar_url": r[14], "total_count": r[15],
        })
    return out


def posting_heatmap(cur, prj, q, now):
    tz = q["tz"] or prj["tz"]
    lo, hi = period_bounds(tz, q["from"], q["to"])
    args = {"pid": prj["id"], "tz": tz}
    sql = f"""
        SELECT extract(dow FROM v.posted_at AT TIME ZONE %(tz)s)::int AS dow,
               extract(hour FROM v.posted_at AT TIME ZONE %(tz)s)::int AS hour,
               count(*), sum(v.view_count)
        FROM {VISIBLE}
        WHERE v.project_id = %(pid)s AND {period_sql("v.posted_at", lo, hi, args)}
        GROUP BY 1, 2 ORDER BY 1, 2"""
    return [
        {"dow": d, "hour": h, "post_count": n, "avg_views": round2(float(int(total)) / float(n))}
        for d, h, n, total in cur.execute(sql, args)
    ]


def view_distribution(cur, prj, q, now):
    lo, hi = period_bounds(prj["tz"], q["from"], q["to"])
    bc = q["bin_count"]
    args = {"pid": prj["id"], "bc": bc}
    # One scan of the period's videos (materialized), then stats and equal-width bins
    # (bin = least(bc - 1, floor((v - min) / w)), w = (max - min) / bc, in float8 like f64).
    sql = f"""
        WITH s AS MATERIALIZED (
            SELECT v.view_count FROM {VISIBLE}
            WHERE v.project_id = %(pid)s AND {period_sql("v.posted_at", lo, hi, args)}
        ),
        st AS (
            SELECT count(*) AS n, min(view_count) AS mn, max(view_count) AS mx,
                   percentile_disc(ARRAY[0.5, 0.75, 0.9, 0.99]) WITHIN GROUP (ORDER BY view_count) AS pct
            FROM s
        ),
        b AS (
            SELECT CASE WHEN st.mx = st.mn THEN 0
                        ELSE least(%(bc)s - 1,
                                   floor((s.view_count - st.mn)::float8
                                         / ((st.mx - st.mn)::float8 / %(bc)s::float8)))::int
                   END AS bin, count(*) AS n
            FROM s CROSS JOIN st GROUP BY 1
        )
        SELECT st.n, st.mn, st.mx, st.pct,
               (SELECT array_agg(ARRAY[b.bin::bigint, b.n] ORDER BY b.bin) FROM b)
        FROM st"""
    n, mn, mx, pct, bins = cur.execute(sql, args).fetchone()
    if n == 0:
        return {"total": 0, "min": None, "max": None, "p50": None, "p75": None, "p90": None, "p99": None,
                "bins": []}
    counts = [0] * bc
    for b, c in bins or []:
        counts[b] = c
    w = float(mx - mn) / float(bc)
    return {
        "total": n, "min": mn, "max": mx, "p50": pct[0], "p75": pct[1], "p90": pct[2], "p99": pct[3],
        "bins": [
            {"bin_index": i, "bin_lower": mn + int(round_half_away(i * w)),
             "bin_upper": mn + int(round_half_away((i + 1) * w)), "video_count": counts[i]}
            for i in range(bc)
        ],
    }


def outliers(cur, prj, q, now):
    lo, hi = period_bounds(prj["tz"], q["from"], q["to"])
    args = {"pid": prj["id"], "min_x": q["min_x"], "limit": q["limit"]}
    per = period_sql("v.posted_at", lo, hi, args)
    # Medians over all of a creator's visible videos (any date), for the creators that
    # have a video in the period: the middle row(s) by a window's row_number.
    sql = f"""
        WITH cand AS (
            SELECT DISTINCT v.creator_id FROM {VISIBLE} WHERE v.project_id = %(pid)s AND {per}
        ),
        ranked AS (
            SELECT v.creator_id, v.view_count,
                   row_number() OVER (PARTITION BY v.creator_id ORDER BY v.view_count) AS rn,
                   count(*) OVER (PARTITION BY v.creator_id) AS cnt
            FROM {VISIBLE} JOIN cand ON cand.creator_id = v.creator_id
            WHERE v.project_id = %(pid)s
        ),
        med AS (
            SELECT creator_id, (sum(view_count::numeric) / count(*))::float8 AS median
            FROM ranked WHERE rn IN ((cnt + 1) / 2, (cnt + 2) / 2)
            GROUP BY creator_id
        )
        SELECT v.video_id, v.creator_id, v.view_count, m.median, v.view_count::float8 / m.median AS ratio,
               v.posted_at, v.posted_ns, v.title, v.thumbnail_url, v.url,
               c.tiktok_handle, c.display_name, c.avatar_url
        FROM {VISIBLE} JOIN med m ON m.creator_id = v.creator_id
        WHERE v.project_id = %(pid)s AND {per} AND m.median > 0
          AND v.view_count::float8 / m.median >= %(min_x)s
        ORDER BY ratio DESC, v.view_count DESC, v.video_id
        LIMIT %(limit)s"""
    return [
        {
            "video_id": str(r[0]), "creator_id": str(r[1]), "view_count": r[2], "median_views": r[3],
            "x_multiple": round2(r[4]), "posted_at": ts_out(r[5], r[6]), "title": r[7],
            "thumbnail_url": r[8], "url": r[9], "tiktok_handle": r[10], "display_name": r[11],
            "avatar_url": r[12],
        }
        for r in cur.execute(sql, args)
    ]


def creator_leaderboard(cur, prj, q, now):
    tz = prj["tz"]
    lo, hi = period_bounds(tz, q["from"], q["to"])
    args = {"pid": prj["id"], "limit": q["limit"], "offset": min(q["offset"], I64_MAX)}
    vper = period_sql("v.posted_at", lo, hi, args)
    hper = period_sql("h.occurred_at", lo, hi, args)
    earliest = "NULL::timestamptz"
    if q["from"] is None:
        earliest = f"(SELECT min(v.posted_at) FROM {VISIBLE} WHERE v.project_id = %(pid)s)"
    sql = f"""
        WITH vv AS (
            SELECT v.creator_id, count(*) AS posts, sum(v.view_count) AS views,
                   sum(v.like_count::numeric + v.comment_count + v.share_count) AS inter
            FROM {VISIBLE}
            WHERE v.project_id = %(pid)s AND {vper}
            GROUP BY v.creator_id
        ),
        {FOLLOWERS_CTE.format(hist_period=hper)}
        SELECT c.creator_id, c.tiktok_handle, c.display_name, c.avatar_url, c.follower_count,
               coalesce(vv.views, 0) AS total_views, coalesce(vv.posts, 0), coalesce(vv.inter, 0),
               fp.first_count, fp.last_count, fp.points,
               count(*) OVER () AS total_count, {earliest} AS earliest
        FROM creators c
        LEFT JOIN vv ON vv.creator_id = c.creator_id
        LEFT JOIN fp ON fp.creator_id = c.creator_id
        WHERE c.project_id = %(pid)s
        ORDER BY total_views DESC, c.creator_id
        LIMIT %(limit)s OFFSET %(offset)s"""
    rows = cur.execute(sql, args).fetchall()
    # posts_per_week days: an open `from` is the local date of the earliest visible video,
    # an open `to` is today (project zone).
    days = None
    if rows:
        ppw_from = q["from"]
        if ppw_from is None and rows[0][12] is not None:
            ppw_from = local_date(tz, rows[0][12])
        ppw_to = q["to"] if q["to"] is not None else local_date(tz, now)
        if ppw_from is not None:
            days = (ppw_to - ppw_from).days + 1
    out = []
    for r in rows:
        delta, growth = follower_change(r[8], r[9], r[10])
        posts = r[6]
        ppw = round2(float(posts * 7) / float(days)) if days is not None and days >= 1 else 0.0
        out.append({
            "creator_id": str(r[0]), "tiktok_handle": r[1], "display_name": r[2], "avatar_url": r[3],
            "current_followers": r[4], "follower_delta": delta, "total_views": uint(r[5]),
            "posts_in_period": posts, "posts_per_week": ppw, "engagement_rate": engagement(r[7], r[5]),
            "growth_rate": growth, "total_count": r[11],
        })
    return out


def posting_consistency(cur, prj, q, now):
    tz = q["tz"] or prj["tz"]
    lo, hi = period_bounds(tz, q["from"], q["to"])
    args = {"pid": prj["id"], "tz": tz}
    sql = f"""
        SELECT v.creator_id, (v.posted_at AT TIME ZONE %(tz)s)::date AS day, count(*)
        FROM {VISIBLE}
        WHERE v.project_id = %(pid)s AND {period_sql("v.posted_at", lo, hi, args)}
        GROUP BY 1, 2 ORDER BY 1, 2"""
    return [
        {"creator_id": str(c), "day": d.isoformat(), "post_count": n} for c, d, n in cur.execute(sql, args)
    ]


def creator_scatter(cur, prj, q, now):
    lo, hi = period_bounds(prj["tz"], q["from"], q["to"])
    args = {"pid": prj["id"]}
    vper = period_sql("v.posted_at", lo, hi, args)
    hper = period_sql("h.occurred_at", lo, hi, args)
    sql = f"""
        WITH vv AS (
            SELECT v.creator_id, min(c.tiktok_handle) AS handle, count(*) AS posts,
                   sum(v.view_count) AS views,
                   sum(v.like_count::numeric + v.comment_count + v.share_count) AS inter
            FROM {VISIBLE}
            WHERE v.project_id = %(pid)s AND {vper}
            GROUP BY v.creator_id
        ),
        {FOLLOWERS_CTE.format(hist_period=hper)}
        SELECT vv.creator_id, vv.handle, vv.posts, vv.views, vv.inter, fp.first_count, fp.last_count, fp.points
        FROM vv LEFT JOIN fp ON fp.creator_id = vv.creator_id
        ORDER BY vv.creator_id"""
    out = []
    for r in cur.execute(sql, args):
        delta, _ = follower_change(r[5], r[6], r[7])
        out.append({"creator_id": str(r[0]), "tiktok_handle": r[1], "follower_delta": delta,
                    "engagement_rate": engagement(r[4], r[3]), "posts_count": r[2]})
    return out


def goal_compliance(cur, prj, q, now):
    tz = prj["tz"]
    today = local_date(tz, now)
    # Visible goals (creator tracked) of the first 50 creators by id.
    goals = cur.execute(
        """
        WITH gc AS (
            SELECT DISTINCT g.creator_id FROM goals g
            JOIN creators c ON c.project_id = g.project_id AND c.creator_id = g.creator_id
            WHERE g.project_id = %(pid)s ORDER BY g.creator_id LIMIT 50
        )
        SELECT g.goal_id, g.creator_id, g.metric, g.target, g.starts_on, g.ends_on
        FROM goals g JOIN gc ON gc.creator_id = g.creator_id
        WHERE g.project_id = %(pid)s ORDER BY g.goal_id""",
        {"pid": prj["id"]},
    ).fetchall()
    if not goals:
        return {"on_track": 0, "at_risk": 0, "missed": 0, "total_goals": 0, "creators_with_goals": 0}
    # Progress of every goal in one query: its creator's visible videos posted in
    # [start(starts_on), start(ends_on + 1)) of the project zone.
    ids, creators, los, his, views = [], [], [], [], []
    for gid, cid, metric, _target, starts, ends in goals:
        lo, hi = period_bounds(tz, starts, ends)
        ids.append(gid)
        creators.append(cid)
        los.append(lo)
        his.append(hi)
        views.append(metric == "views")
    prog = dict(
        cur.execute(
            f"""
            SELECT g.goal_id,
                   coalesce((SELECT CASE WHEN g.is_views THEN sum(v.view_count) ELSE count(*) END
                             FROM {VISIBLE}
                             WHERE v.project_id = %(pid)s AND v.creator_id = g.creator_id
                               AND v.posted_at >= g.lo AND v.posted_at < g.hi), 0)
            FROM unnest(%(ids)s::uuid[], %(creators)s::uuid[], %(los)s::timestamptz[],
                        %(his)s::timestamptz[], %(views)s::bool[]) AS g(goal_id, creator_id, lo, hi, is_views)""",
            {"pid": prj["id"], "ids": ids, "creators": creators, "los": los, "his": his, "views": views},
        ).fetchall()
    )
    on_track = at_risk = missed = 0
    for gid, _cid, _metric, target, starts, ends in goals:
        progress = int(prog[gid])
        total_days = (ends - starts).days + 1
        elapsed = min(max((today - starts).days + 1, 0), total_days)
        expected = float(target) * float(elapsed) / float(total_days)
        if progress >= target:
            on_track += 1  # completed
        elif today > ends:
            missed += 1
        elif float(progress) >= expected:
            on_track += 1
        else:
            at_risk += 1  # behind_pace or at_risk
    return {"on_track": on_track, "at_risk": at_risk, "missed": missed, "total_goals": len(goals),
            "creators_with_goals": len({g[1] for g in goals})}


def campaign_leaderboard(cur, prj, q, now):
    tz = prj["tz"]
    f, t = q["from"], q["to"]
    n = (t - f).days + 1
    lo, hi = period_bounds(tz, f, t)
    prior_lo = day_start(tz, f - dt.timedelta(days=n))
    args = {"pid": prj["id"], "lo": lo, "hi": hi, "prior_lo": prior_lo}
    # reach: every visible campaign reachable from each visible root through `campaign`
    # members (UNION dedups (root, campaign) pairs, so cycles end). A root's resolved
    # videos are all visible videos of its reached creator members (rc), plus its reached
    # video members whose creator is not one of those (vpart), so each video counts once.
    # Creator members are aggregated per creator first (per_creator, top_creator) rather
    # than expanded to (root, video) pairs: a creator in many campaigns is summed once.
    sql = f"""
        WITH RECURSIVE camp AS (
            SELECT campaign_id, name FROM campaigns WHERE project_id = %(pid)s
        ),
        reach(root, cid) AS (
            SELECT campaign_id, campaign_id FROM camp
            UNION
            SELECT r.root, m.item_id
            FROM reach r
            JOIN campaign_items m ON m.project_id = %(pid)s AND m.campaign_id = r.cid AND m.item_type = 'campaign'
            JOIN camp c2 ON c2.campaign_id = m.item_id
        ),
        vis AS MATERIALIZED (
            SELECT v.video_id, v.creator_id, v.view_count, v.like_count, v.thumbnail_url,
                   v.posted_at >= %(lo)s AS cur
            FROM {VISIBLE}
            WHERE v.project_id = %(pid)s AND v.posted_at >= %(prior_lo)s AND v.posted_at < %(hi)s
        ),
        rc AS MATERIALIZED (
            SELECT DISTINCT r.root, m.item_id AS creator_id
            FROM reach r
            JOIN campaign_items m ON m.project_id = %(pid)s AND m.campaign_id = r.cid AND m.item_type = 'creator'
        ),
        per_creator AS (
            SELECT vis.creator_id,
                   sum(vis.view_count) FILTER (WHERE vis.cur) AS views,
                   sum(vis.like_count) FILTER (WHERE vis.cur) AS likes,
                   count(*) FILTER (WHERE vis.cur) AS n,
                   sum(vis.view_count) FILTER (WHERE NOT vis.cur) AS prior
            FROM vis WHERE vis.creator_id IN (SELECT creator_id FROM rc)
            GROUP BY vis.creator_id
        ),
        top_creator AS (
            SELECT DISTINCT ON (vis.creator_id) vis.creator_id, vis.video_id, vis.view_count, vis.thumbnail_url
            FROM vis WHERE vis.cur AND vis.creator_id IN (SELECT creator_id FROM rc)
            ORDER BY vis.creator_id, vis.view_count DESC, vis.video_id
        ),
        vpart AS (
            SELECT DISTINCT r.root, vis.video_id, vis.creator_id, vis.view_count, vis.like_count,
                   vis.thumbnail_url, vis.cur
            FROM reach r
            JOIN campaign_items m ON m.project_id = %(pid)s AND m.campaign_id = r.cid AND m.item_type = 'video'
            JOIN vis ON vis.video_id = m.item_id
            WHERE NOT EXISTS (SELECT 1 FROM rc WHERE rc.root = r.root AND rc.creator_id = vis.creator_id)
        ),
        parts(root, views, likes, n, prior, cur_creator, top_views, top_id, top_thumb) AS (
            SELECT rc.root, pc.views, pc.likes, pc.n, pc.prior,
                   CASE WHEN pc.n > 0 THEN rc.creator_id END,
                   tc.view_count, tc.video_id, tc.thumbnail_url
            FROM rc
            JOIN per_creator pc ON pc.creator_id = rc.creator_id
            LEFT JOIN top_creator tc ON tc.creator_id = rc.creator_id
            UNION ALL
            SELECT root,
                   CASE WHEN cur THEN view_count END, CASE WHEN cur THEN like_count END,
                   CASE WHEN cur THEN 1 ELSE 0 END, CASE WHEN NOT cur THEN view_count END,
                   CASE WHEN cur THEN creator_id END,
                   CASE WHEN cur THEN view_count END, CASE WHEN cur THEN video_id END, thumbnail_url
            FROM vpart
        ),
        agg AS (
            SELECT root, sum(views) AS views, sum(likes) AS likes, sum(n) AS videos,
                   count(DISTINCT cur_creator) AS creators, sum(prior) AS prior,
                   (array_agg(top_thumb ORDER BY top_views DESC, top_id)
                        FILTER (WHERE top_id IS NOT NULL))[1] AS preview
            FROM parts GROUP BY root
        )
        SELECT camp.campaign_id, camp.name, coalesce(agg.views, 0) AS total_views, coalesce(agg.likes, 0),
               coalesce(agg.videos, 0), coalesce(agg.creators, 0), agg.preview, coalesce(agg.prior, 0)
        FROM camp LEFT JOIN agg ON agg.root = camp.campaign_id
        ORDER BY total_views DESC, camp.campaign_id"""
    out = []
    for cid, name, views, likes, videos, creators, preview, prior in cur.execute(sql, args):
        views, prior = int(views), int(prior)
        delta = views - prior
        pct = None if prior == 0 else int(round_half_away(float(delta) / float(prior) * 100.0))
        out.append({
            "campaign_id": str(cid), "name": name, "total_views": uint(views), "total_likes": uint(likes),
            "video_count": int(videos), "creator_count": creators, "preview_thumbnail_url": preview,
            "prior_views": uint(prior), "views_delta": delta, "views_delta_pct": pct,
        })
    return out


def member_overlap(cur, prj, q, now):
    args = {"pid": prj["id"]}
    if q["dimension"] == "creator":
        entity = """JOIN creators e ON e.project_id = m.project_id AND e.creator_id = m.item_id"""
        label, avatar = "e.tiktok_handle", "e.avatar_url"
    else:
        entity = """JOIN videos e ON e.project_id = m.project_id AND e.video_id = m.item_id
                    JOIN creators ec ON ec.project_id = e.project_id AND ec.creator_id = e.creator_id"""
        label, avatar = "e.title", "e.thumbnail_url"
    sql = f"""
        SELECT m.item_id, {label}, {avatar},
               array_agg(k.campaign_id ORDER BY k.name COLLATE "C", k.campaign_id),
               array_agg(k.name ORDER BY k.name COLLATE "C", k.campaign_id),
               count(*) AS n
        FROM campaign_items m
        JOIN campaigns k ON k.project_id = m.project_id AND k.campaign_id = m.campaign_id
        {entity}
        WHERE m.project_id = %(pid)s AND m.item_type = %(dim)s
        GROUP BY m.item_id, {label}, {avatar}
        ORDER BY n DESC, m.item_id
        LIMIT 50"""
    args["dim"] = q["dimension"]
    return [
        {"entity_id": str(r[0]), "entity_label": r[1], "entity_avatar": r[2],
         "campaign_ids": [str(x) for x in r[3]], "campaign_names": list(r[4]), "campaign_count": r[5]}
        for r in cur.execute(sql, args)
    ]


HANDLERS = {
    "video-leaderboard": video_leaderboard,
    "posting-heatmap": posting_heatmap,
    "view-distribution": view_distribution,
    "outliers": outliers,
    "creator-leaderboard": creator_leaderboard,
    "posting-consistency": posting_consistency,
    "creator-scatter": creator_scatter,
    "goal-compliance": goal_compliance,
    "campaign-leaderboard": campaign_leaderboard,
    "member-overlap": member_overlap,
}


# ---------------------------------------------------------------------------
# Connection pool and HTTP
# ---------------------------------------------------------------------------


class Pool:
    """A fixed set of autocommit connections handed out one request at a time."""

    def __init__(self, dsn, size):
        self.dsn = dsn
        self.free: queue.LifoQueue = queue.LifoQueue()
        self.sem = threading.BoundedSemaphore(size)

    def _connect(self):
        conn = psycopg.connect(self.dsn, autocommit=True)
        conn.execute("SET search_path = gv")
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute("SET default_transaction_read_only = on")
        # psycopg prepares a query after 5 runs; PostgreSQL would then switch to a generic
        # plan blind to the period bounds, which for campaign-leaderboard is 10-100x slower.
        # Keep the parse savings, plan with the real values every time.
        conn.execute("SET plan_cache_mode = force_custom_plan")
        return conn

    def run(self, fn):
        with self.sem:
            try:
                conn = self.free.get_nowait()
            except queue.Empty:
                conn = self._connect()
            ok = False
            try:
                result = fn(conn)
                ok = True
                return result
            finally:
                if ok or not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                    self.free.put(conn)
                else:
                    conn.close()


def now_instant() -> dt.datetime:
    s = os.environ.get("GOATVIEW_NOW")
    if s:
        ns = parse_ts(s)
        if ns is None:
            sys.exit(f"GOATVIEW_NOW is not RFC 3339: {s!r}")
        return _EPOCH + dt.timedelta(microseconds=ns // 1000)
    return dt.datetime.now(_UTC)


def answer(pool, path, raw_query, fixed_now):
    endpoint = path[len(BASE):]
    pid, q = parse_request(endpoint, raw_query)
    now = fixed_now or dt.datetime.now(_UTC)

    def run(conn):
        with conn.transaction():  # one snapshot per request
            cur = conn.cursor()
            row = cur.execute(
                "SELECT project_id, timezone, last_event_at FROM projects WHERE project_id = %s", (pid,)
            ).fetchone()
            if row is None:
                raise NOT_FOUND
            prj = {"id": row[0], "tz": row[1]}
            data = HANDLERS[endpoint](cur, prj, q, now)
            return {"data": data, "error": None, "meta": {"project_id": pid, "last_event_at": row[2]}}

    return pool.run(run)


def make_handler(pool, fixed_now, quiet):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "goatview-pg-baseline"
        # Headers and body leave in separate writes; without TCP_NODELAY, Nagle plus the
        # client's delayed ACK adds ~40 ms to every keep-alive answer.
        disable_nagle_algorithm = True

        def log_message(self, fmt, *a):
            if not quiet:
                super().log_message(fmt, *a)

        def send_json(self, status, body):
            raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def send_error_env(self, status, code, message):
            self.send_json(status, {"data": None, "error": {"code": code, "message": message}, "meta": {}})

        def do_GET(self):
            url = urlsplit(self.path)
            if url.path == "/healthz":
                self.send_json(200, {"status": "ok"})
                return
            if not url.path.startswith(BASE) or url.path[len(BASE):] not in HANDLERS:
                self.send_error_env(404, "not_found", "no such endpoint")
                return
            try:
                self.send_json(200, answer(pool, url.path, url.query, fixed_now))
            except ApiError as e:
                self.send_error_env(e.status, e.code, e.message)
            except Exception:
                traceback.print_exc()
                self.send_error_env(500, "internal", "internal error")

        def _405(self):
            self.close_connection = True  # the request body is not read
            self.send_error_env(405, "method_not_allowed", "method not allowed")

        do_POST = do_PUT = do_DELETE = do_PATCH = _405

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--listen", default="127.0.0.1:" + os.environ.get("GOATVIEW_PG_HTTP_PORT", "18090"))
    ap.add_argument("--pool", type=int, default=8, help="most concurrent PostgreSQL connections")
    ap.add_argument("--quiet", action="store_true", help="no access log")
    args = ap.parse_args()
    fixed_now = now_instant() if os.environ.get("GOATVIEW_NOW") else None
    host, port = args.listen.rsplit(":", 1)
    pool = Pool(args.dsn, args.pool)
    pool.run(lambda c: c.execute("SELECT count(*) FROM projects").fetchone())  # fail fast
    httpd = ThreadingHTTPServer((host, int(port)), make_handler(pool, fixed_now, args.quiet))
    httpd.daemon_threads = True
    print(f"pg baseline serving on http://{host}:{port}{BASE}<endpoint> "
          f"(now={'GOATVIEW_NOW ' + fixed_now.isoformat() if fixed_now else 'system clock'})",
          file=sys.stderr, flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

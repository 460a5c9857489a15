#!/usr/bin/env python3
"""Ask goatview and the PostgreSQL baseline the same requests; report where they differ.

Both servers must hold the same log (goatview: `replay` + `serve`; baseline:
scripts/pg-baseline.sh load + serve) and use the same GOATVIEW_NOW. The request list
covers all ten endpoints with several parameter sets per visible project (date ranges
derived from the project's data, time zones, orders, limits, offsets, bin counts,
multiples, dimensions) and a few requests that must fail (400 / 404).

Projects, their orgs and date spans are read from the baseline's database (--dsn);
--project ID (repeatable) keeps only those. Without the database, give --project with
--from/--to (the data's first and last day) and --org (for a session cookie).

Tolerated differences (counted apart, not as mismatches):
  * view-distribution p50/p75/p90/p99 within 0.1% (goatview reads HDR cells);
  * view-distribution bin counts that differ while total, min, max and edges agree
    (goatview places HDR cells of width <= 0.1% by their lowest value).
Error answers are compared by status and `error.code` only (messages may differ).

goatview needs credentials: --bearer KEY (a key issued in its log), or
--session-secret SECRET (the server's GOATVIEW_SESSION_SECRET; a session cookie for
every org of the compared projects is minted here).

--repeat N also times every request N times on each server and prints the median
latency per endpoint.

Usage: compare.py [--goatview URL] [--pg URL] (--bearer KEY | --session-secret S)
                  [--dsn DSN | --project ID ... --from D --to D] [--repeat N] [--show N]
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import hmac
import http.client
import json
import statistics
import sys
import time
from collections import defaultdict
from urllib.parse import urlencode, urlsplit

BASE = "/api/v1/analytics/aggregate/"
ENDPOINTS = [
    "video-leaderboard", "posting-heatmap", "view-distribution", "outliers", "creator-leaderboard",
    "posting-consistency", "creator-scatter", "goal-compliance", "campaign-leaderboard", "member-overlap",
]


class Client:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, base_url, headers):
        u = urlsplit(base_url)
        self.host, self.port = u.hostname, u.port or 80
        self.headers = headers
        self.conn = None

    def get(self, path):
        for attempt in (0, 1):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
                t0 = time.perf_counter()
                self.conn.request("GET", path, headers=self.headers)
                r = self.conn.getresponse()
                body = r.read()
                return r.status, body, time.perf_counter() - t0
            except (http.client.HTTPException, ConnectionError):
                self.conn = None
                if attempt:
                    raise
        raise AssertionError


def mint_session(secret: str, org_ids) -> str:
    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"exp": 4102444800, "org_ids": sorted(set(org_ids))}).encode())
    sig = hmac.new(secret.encode(), f"{head}.{claims}".encode(), hashlib.sha256).digest()
    return f"{head}.{claims}.{b64(sig)}"


def discover(dsn):
    """(project_id, org_id, first local day, last local day) of every visible project."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            """
            SELECT p.project_id::text, p.org_id::text,
                   (SELECT min(v.posted_at AT TIME ZONE p.timezone)::date FROM gv.videos v
                      JOIN gv.creators c ON c.project_id = v.project_id AND c.creator_id = v.creator_id
                     WHERE v.project_id = p.project_id),
                   (SELECT max(v.posted_at AT TIME ZONE p.timezone)::date FROM gv.videos v
                      JOIN gv.creators c ON c.project_id = v.project_id AND c.creator_id = v.creator_id
                     WHERE v.project_id = p.project_id)
            FROM gv.projects p ORDER BY 1"""
        ).fetchall()
    return rows


def requests_for(pid, first: dt.date | None, last: dt.date | None, extra=()):
    """(endpoint, params) pairs for one project; `extra` adds (from, to) date ranges."""
    d = dt.timedelta
    if first is None or last is None:
        first = last = dt.date(2026, 1, 1)
    span = (last - first).days
    mid = first + d(days=span // 2)
    ranges = [
        (first, last),                                  # everything
        (last - d(days=6), last),                       # last week
        (last - d(days=29), last),                      # last 30 days
        (mid, mid + d(days=max(1, span // 5))),         # a middle slice
        (mid, mid),                                     # one day
    ]
    ranges = [(max(a, first - d(days=1)), b) for a, b in ranges] + list(extra)
    rs = [{"from": a.isoformat(), "to": b.isoformat()} for a, b in ranges]
    out = []

    def add(ep, **params):
        out.append((ep, {"project_id": pid, **params}))

    add("video-leaderboard")
    for r in rs[:3]:
        for order in ("view_count", "like_count", "comment_count", "share_count", "save_count", "posted_at"):
            add("video-leaderboard", **r, order=order, limit="20")
    add("video-leaderboard", **rs[0], limit="7", offset="5")
    add("video-leaderboard", **rs[0], limit="200", offset="100")
    add("video-leaderboard", offset="18446744073709551615")
    add("video-leaderboard", **{"from": rs[1]["from"]})
    add("video-leaderboard", to=rs[3]["to"], order="posted_at")
    for r in rs:
        add("video-leaderboard", **r, limit="3")
        add("posting-heatmap", **r)
        add("posting-consistency", **r)
        for tz in ("UTC", "Asia/Kathmandu", "America/New_York", "Australia/Lord_Howe"):
            add("posting-heatmap", **r, tz=tz)
            add("posting-consistency", **r, tz=tz)
        for bc in ("5", "20", "50"):
            add("view-distribution", **r, bin_count=bc)
        add("campaign-leaderboard", **r)
        add("creator-scatter", **r)
        add("creator-leaderboard", **r)
        add("outliers", **r)
    add("outliers")
    for mx in ("1", "0.5", "3", "10", "1000"):
        add("outliers", min_x_multiple=mx, limit="100")
    add("outliers", **rs[2], min_x_multiple=".75", limit="5")
    add("creator-leaderboard")
    add("creator-leaderboard", **{"from": rs[2]["from"]})
    add("creator-leaderboard", to=rs[3]["to"])
    add("creator-leaderboard", limit="3", offset="2")
    add("creator-leaderboard", **rs[0], limit="200", offset="50")
    add("creator-scatter")
    add("goal-compliance")
    add("member-overlap")
    add("member-overlap", dimension="creator")
    add("member-overlap", dimension="video")
    # Must fail.
    add("video-leaderboard", **{"from": rs[0]["to"], "to": rs[0]["from"]} if span else {"from": "2026-01-02", "to": "2026-01-01"})
    add("posting-heatmap", to=rs[0]["to"])
    add("posting-heatmap", **rs[0], tz="europe/berlin")
    add("video-leaderboard", limit="0")
    add("video-leaderboard", limit="201")
    add("video-leaderboard", order="views")
    add("view-distribution", **rs[0], bin_count="4")
    add("outliers", min_x_multiple="1e2")
    add("outliers", min_x_multiple="0")
    add("member-overlap", dimension="campaign")
    add("creator-leaderboard", **{"from": ""})
    out.append(("goal-compliance", {"project_id": pid.upper()}))
    return out


def global_requests():
    return [
        ("goal-compliance", {}),
        ("goal-compliance", {"project_id": "not-a-uuid"}),
        ("goal-compliance", {"project_id": "00000000-0000-4000-8000-0000000000ff"}),
    ]


def diff(a, b, path="data", tol_paths=(), out=None):
    """Paths where a (goatview) and b (baseline) differ; (path, a, b) triples."""
    out = [] if out is None else out
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append((f"{path}.{k}", a.get(k, "<absent>"), b.get(k, "<absent>")))
            else:
                diff(a[k], b[k], f"{path}.{k}", tol_paths, out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append((f"{path}.length", len(a), len(b)))
        for i, (x, y) in enumerate(zip(a, b)):
            diff(x, y, f"{path}[{i}]", tol_paths, out)
    elif type(a) in (int, float) and type(b) in (int, float) and not isinstance(a, bool):
        if a != b:
            out.append((path, a, b))
    elif a != b or type(a) is not type(b):
        out.append((path, a, b))
    return out


def classify(endpoint, status, a, b):
    """'equal', 'tolerated' or 'mismatch', with the differences."""
    if status[0] != status[1]:
        return "mismatch", [("status", status[0], status[1])]
    if status[0] != 200:
        ca = (a.get("error") or {}).get("code")
        cb = (b.get("error") or {}).get("code")
        return ("equal", []) if ca == cb else ("mismatch", [("error.code", ca, cb)])
    ds = diff(a.get("data"), b.get("data")) + diff(a.get("meta"), b.get("meta"), "meta")
    if not ds:
        return "equal", []
    if endpoint == "view-distribution":
        hard = []
        for p, x, y in ds:
            key = p.rsplit(".", 1)[-1]
            if key in ("p50", "p75", "p90", "p99") and isinstance(x, int) and isinstance(y, int):
                if abs(x - y) <= 0.001 * max(abs(y), 1):
                    continue
            if key == "video_count" and p.startswith("data.bins["):
                continue
            hard.append((p, x, y))
        if not hard:
            return "tolerated", ds
        return "mismatch", hard
    return "mismatch", ds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--goatview", default="http://127.0.0.1:18081")
    ap.add_argument("--pg", default="http://127.0.0.1:18090")
    ap.add_argument("--bearer", help="an API key goatview knows")
    ap.add_argument("--session-secret", help="goatview's GOATVIEW_SESSION_SECRET")
    ap.add_argument("--dsn", default="host=127.0.0.1 port=55432 dbname=goatview user=postgres")
    ap.add_argument("--project", action="append", help="project id (default: all in the baseline)")
    ap.add_argument("--org", action="append", default=[], help="org ids for the session cookie with --project")
    ap.add_argument("--from", dest="first", help="first day of the data (with --project)")
    ap.add_argument("--to", dest="last", help="last day of the data (with --project)")
    ap.add_argument("--range", action="append", default=[], metavar="FROM:TO",
                    help="another date range to ask every period endpoint about")
    ap.add_argument("--endpoint", action="append", choices=ENDPOINTS, help="only these endpoints")
    ap.add_argument("--show-tolerated", action="store_true", help="print tolerated differences too")
    ap.add_argument("--repeat", type=int, default=0, help="also time each request N times per server")
    ap.add_argument("--show", type=int, default=20, help="mismatches to print in full")
    args = ap.parse_args()

    if args.project and (args.first or args.org):
        # Without the baseline's database: the caller names projects, orgs and the data's span.
        first = dt.date.fromisoformat(args.first) if args.first else None
        last = dt.date.fromisoformat(args.last) if args.last else None
        projects = [(p.lower(), None, first, last) for p in args.project]
        orgs = args.org
    else:
        projects = discover(args.dsn)
        if args.project:
            wanted = {p.lower() for p in args.project}
            projects = [p for p in projects if p[0] in wanted]
        orgs = [p[1] for p in projects]
    headers = {}
    if args.bearer:
        headers["Authorization"] = f"Bearer {args.bearer}"
    elif args.session_secret:
        headers["Cookie"] = f"goatview_session={mint_session(args.session_secret, orgs)}"
    else:
        sys.exit("compare.py: give --bearer KEY or --session-secret SECRET for goatview")

    reqs = []
    for pid, _org, first, last in projects:
        extra = [tuple(dt.date.fromisoformat(x) for x in r.split(":")) for r in args.range]
        reqs += requests_for(pid, first, last, extra)
    reqs += global_requests()
    if args.endpoint:
        reqs = [r for r in reqs if r[0] in args.endpoint]

    gv, pg = Client(args.goatview, headers), Client(args.pg, {})
    stats = defaultdict(lambda: defaultdict(int))
    shown = 0
    times = defaultdict(lambda: ([], []))
    for ep, params in reqs:
        path = BASE + ep + ("?" + urlencode(params) if params else "")
        sa, ba, ta = gv.get(path)
        sb, bb, tb = pg.get(path)
        try:
            a, b = json.loads(ba), json.loads(bb)
        except ValueError:
            a, b = {"raw": ba.decode(errors="replace")}, {"raw": bb.decode(errors="replace")}
        verdict, ds = classify(ep, (sa, sb), a, b)
        stats[ep][verdict] += 1
        if (verdict == "mismatch" or verdict == "tolerated" and args.show_tolerated) and shown < args.show:
            shown += 1
            print(f"{verdict.upper()} {path}  (goatview {sa}, baseline {sb})")
            for p, x, y in ds[:8]:
                print(f"    {p}: goatview={json.dumps(x)[:120]} baseline={json.dumps(y)[:120]}")
            if len(ds) > 8:
                print(f"    ... {len(ds) - 8} more differences")
        if args.repeat and sa == 200:
            for _ in range(args.repeat):
                times[ep][0].append(gv.get(path)[2])
                times[ep][1].append(pg.get(path)[2])

    print(f"\n{'endpoint':<22} {'requests':>8} {'equal':>6} {'tolerated':>9} {'mismatch':>8}")
    total = defaultdict(int)
    for ep in ENDPOINTS:
        st = stats[ep]
        n = sum(st.values())
        for k in ("equal", "tolerated", "mismatch"):
            total[k] += st[k]
        print(f"{ep:<22} {n:>8} {st['equal']:>6} {st['tolerated']:>9} {st['mismatch']:>8}")
    print(f"{'total':<22} {sum(total.values()):>8} {total['equal']:>6} {total['tolerated']:>9} {total['mismatch']:>8}")
    if args.repeat:
        print(f"\nmedian latency over {args.repeat} runs of each 200 request (ms; client-side, keep-alive)")
        print(f"{'endpoint':<22} {'samples':>7} {'goatview':>9} {'pg':>9} {'pg p90':>9} {'pg max':>9}")
        for ep in ENDPOINTS:
            g, p = times[ep]
            if not g:
                continue
            p90 = sorted(p)[int(0.9 * (len(p) - 1))]
            print(f"{ep:<22} {len(g):>7} {statistics.median(g) * 1e3:>9.2f} {statistics.median(p) * 1e3:>9.2f} "
                  f"{p90 * 1e3:>9.2f} {max(p) * 1e3:>9.2f}")
    sys.exit(1 if total["mismatch"] else 0)


if __name__ == "__main__":
    main()

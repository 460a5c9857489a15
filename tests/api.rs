//! The HTTP API through the real router (`oneshot`, no socket) over a real redb file, plus
//! one request over a real TCP connection.
//!
//! Auth, parameter and not-found cases never reach the query functions; the success cases
//! (`*_success*`, `meta_*`) do.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use goatview::api::{self, AppState, Clock};
use goatview::events::{Instant, decode, parse_timestamp};
use goatview::store::{Batch, DeadLetter, Store};
use hmac::{Hmac, Mac};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

const NOW: &str = "2026-05-01T00:00:00Z";
const SECRET: &[u8] = b"test-session-secret";

const ORG_A: &str = "0a000000-0000-4000-8000-00000000000a";
const ORG_B: &str = "0b000000-0000-4000-8000-00000000000b";
/// Org A's project, with data.
const P1: &str = "5eed0000-aaaa-4bbb-8ccc-dddddddddd01";
/// Org B's project.
const P2: &str = "5eed0000-aaaa-4bbb-8ccc-dddddddddd02";
/// Org A's deleted project.
const P3: &str = "5eed0000-aaaa-4bbb-8ccc-dddddddddd03";
/// No such project.
const P_MISSING: &str = "5eed0000-aaaa-4bbb-8ccc-dddddddddd04";

const KEY_A: &str = "gv_live_key_a";
const KEY_B: &str = "gv_live_key_b";
const KEY_REVOKED: &str = "gv_live_key_revoked";
const KEY_EXPIRED: &str = "gv_live_key_expired";

const C1: &str = "c1000000-0000-4000-8000-000000000001";
const LAST_EVENT_AT: &str = "2026-04-20T00:00:00Z";

/// Every aggregate endpoint with parameters it accepts (besides `project_id`).
const ENDPOINTS: [(&str, &str); 10] = [
    ("video-leaderboard", ""),
    ("posting-heatmap", "&from=2026-04-01&to=2026-04-30"),
    ("view-distribution", "&from=2026-04-01&to=2026-04-30"),
    ("outliers", ""),
    ("creator-leaderboard", ""),
    ("posting-consistency", "&from=2026-04-01&to=2026-04-30"),
    ("creator-scatter", ""),
    ("goal-compliance", ""),
    ("campaign-leaderboard", "&from=2026-04-01&to=2026-04-30"),
    ("member-overlap", ""),
];

fn hex_sha256(s: &str) -> String {
    Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn events() -> Vec<Value> {
    let mut n = 0;
    let mut ev = |ty: &str, at: &str, mut body: Value| {
        n += 1;
        body["type"] = json!(ty);
        body["event_id"] = json!(format!("e0000000-0000-4000-8000-{n:012}"));
        body["occurred_at"] = json!(at);
        body
    };
    let key = |id: u32, org: &str, key: &str, expires: Value| {
        json!({"key_id": format!("ee000000-0000-4000-8000-{id:012}"), "org_id": org,
               "key_sha256": hex_sha256(key), "expires_at": expires})
    };
    let video = |id: u32, posted: &str, views: u64| {
        json!({"project_id": P1, "video_id": format!("d0000000-0000-4000-8000-{id:012}"), "creator_id": C1,
               "posted_at": posted, "title": format!("V{id}"), "thumbnail_url": format!("https://img/v{id}.jpg"),
               "url": format!("https://tt/v{id}"), "view_count": views, "like_count": views / 10,
               "comment_count": 3, "share_count": 2, "save_count": 1})
    };
    let t0 = "2026-03-01T00:00:00Z";
    vec![
        ev(
            "project.upserted",
            t0,
            json!({"project_id": P1, "org_id": ORG_A, "name": "A", "timezone": "America/New_York"}),
        ),
        ev("project.upserted", t0, json!({"project_id": P2, "org_id": ORG_B, "name": "B", "timezone": "UTC"})),
        ev("project.upserted", t0, json!({"project_id": P3, "org_id": ORG_A, "name": "C", "timezone": "UTC"})),
        ev("project.deleted", "2026-03-02T00:00:00Z", json!({"project_id": P3})),
        ev("api_key.issued", t0, key(1, ORG_A, KEY_A, Value::Null)),
        ev("api_key.issued", t0, key(2, ORG_B, KEY_B, json!("2027-01-01T00:00:00Z"))),
        ev("api_key.issued", t0, key(3, ORG_A, KEY_REVOKED, Value::Null)),
        ev("api_key.revoked", "2026-03-05T00:00:00Z", json!({"key_id": "ee000000-0000-4000-8000-000000000003"})),
        ev("api_key.issued", t0, key(4, ORG_A, KEY_EXPIRED, json!("2026-04-30T23:59:59Z"))),
        ev(
            "creator.snapshot",
            "2026-04-01T00:00:00Z",
            json!({"project_id": P1, "creator_id": C1,
            "tiktok_handle": "goat", "display_name": "Goat", "avatar_url": "https://img/c1.png", "follower_count": 1000}),
        ),
        ev(
            "creator.snapshot",
            LAST_EVENT_AT,
            json!({"project_id": P1, "creator_id": C1,
            "tiktok_handle": "goat", "display_name": "Goat", "avatar_url": "https://img/c1.png", "follower_count": 1500}),
        ),
        ev("video.scraped", "2026-04-15T00:00:00Z", video(1, "2026-04-05T15:00:00Z", 1000)),
        ev("video.scraped", "2026-04-15T00:00:00Z", video(2, "2026-04-10T18:00:00Z", 5000)),
        ev("video.scraped", "2026-04-15T00:00:00Z", video(3, "2026-04-12T01:30:00Z", 100)),
        ev(
            "campaign.upserted",
            "2026-04-02T00:00:00Z",
            json!({"project_id": P1,
            "campaign_id": "ca000000-0000-4000-8000-000000000001", "name": "Spring"}),
        ),
        ev(
            "campaign.item_added",
            "2026-04-02T00:00:00Z",
            json!({"project_id": P1,
            "campaign_id": "ca000000-0000-4000-8000-000000000001", "item_type": "creator", "item_id": C1}),
        ),
        ev(
            "creator.goal_set",
            "2026-04-02T00:00:00Z",
            json!({"project_id": P1, "creator_id": C1,
            "goal_id": "90000000-0000-4000-8000-000000000001", "metric": "posts", "target": 2,
            "starts_on": "2026-04-01", "ends_on": "2026-04-30"}),
        ),
    ]
}

struct App {
    router: Router,
    _dir: tempfile::TempDir,
}

fn app_with(secret: Option<&[u8]>) -> App {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.redb")).unwrap();
    let events = events().iter().map(|e| decode(e.to_string().as_bytes()).unwrap()).collect();
    let dead = DeadLetter {
        source: "file:test.ndjson".into(),
        position: 1,
        raw: b"{".to_vec(),
        reason: "not JSON".into(),
        recorded_at: Instant { secs: 0, nanos: 0 },
    };
    store.commit(&Batch { events, dead_letters: vec![dead], ..Default::default() }).unwrap();
    let state = AppState {
        store: Arc::new(store),
        clock: Clock::Fixed(parse_timestamp(NOW).unwrap()),
        session_secret: secret.map(Arc::from),
        kafka: None,
    };
    App { router: api::router(state), _dir: dir }
}

fn app() -> App {
    app_with(Some(SECRET))
}

/// An HS256 JWT signed with `secret`, from raw header and claims JSON.
fn jwt(header: &str, claims: &str, secret: &[u8]) -> String {
    let signing_input = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", B64.encode(mac.finalize().into_bytes()))
}

fn session(orgs: &[&str]) -> String {
    let claims = json!({"exp": 1_900_000_000, "org_ids": orgs, "sub": "user-1"});
    jwt(r#"{"alg":"HS256","typ":"JWT"}"#, &claims.to_string(), SECRET)
}

fn url(endpoint: &str, project: &str, extra: &str) -> String {
    format!("/api/v1/analytics/aggregate/{endpoint}?project_id={project}{extra}")
}

/// How a request authenticates.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Key(&'a str),
    Cookie(&'a str),
    Both(&'a str, &'a str),
    Header(&'a str),
}

struct Answer {
    status: StatusCode,
    content_type: String,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    /// Asserts a failure envelope with this status and code; returns its message.
    fn failure(&self, status: StatusCode, code: &str) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        let v = self.json();
        assert_eq!(v["data"], Value::Null);
        assert_eq!(v["meta"], json!({}));
        assert_eq!(v["error"]["code"], code, "{}", self.text);
        assert_eq!(v.as_object().unwrap().len(), 3);
        v["error"]["message"].as_str().unwrap().to_owned()
    }
}

async fn send(app: &App, uri: &str, auth: Auth<'_>) -> Answer {
    let mut req = Request::get(uri);
    let cookie = |t: &str| format!("theme=dark; goatview_session={t}");
    match auth {
        Auth::None => {}
        Auth::Key(k) => req = req.header(header::AUTHORIZATION, format!("Bearer {k}")),
        Auth::Cookie(t) => req = req.header(header::COOKIE, cookie(t)),
        Auth::Both(k, t) => {
            req = req.header(header::AUTHORIZATION, format!("Bearer {k}")).header(header::COOKIE, cookie(t))
        }
        Auth::Header(v) => req = req.header(header::AUTHORIZATION, v),
    }
    let res = app.router.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status();
    let content_type =
        res.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    Answer { status, content_type, text: String::from_utf8(bytes.to_vec()).unwrap() }
}

#[tokio::test]
async fn unauthorized_cases() {
    let app = app();
    let b64 = |s: &str| B64.encode(s);
    let future = r#"{"exp":1900000000,"org_ids":["0a000000-0000-4000-8000-00000000000a"]}"#;
    let cases: Vec<(&str, Auth, String)> = vec![
        ("no credentials", Auth::None, String::new()),
        ("unknown key", Auth::Key("gv_live_nope"), String::new()),
        ("revoked key", Auth::Key(KEY_REVOKED), String::new()),
        ("expired key", Auth::Key(KEY_EXPIRED), String::new()),
        ("empty bearer", Auth::Header("Bearer "), String::new()),
        ("basic scheme", Auth::Header("Basic Z29hdDpnb2F0"), String::new()),
        ("bad signature", Auth::Cookie(""), jwt(r#"{"alg":"HS256"}"#, future, b"another-secret")),
        (
            "expired session",
            Auth::Cookie(""),
            jwt(r#"{"alg":"HS256"}"#, r#"{"exp":1777593600,"org_ids":[]}"#, SECRET), // exp == NOW
        ),
        ("alg none", Auth::Cookie(""), format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(future))),
        ("alg none signed anyway", Auth::Cookie(""), jwt(r#"{"alg":"none"}"#, future, SECRET)),
        ("alg HS512", Auth::Cookie(""), jwt(r#"{"alg":"HS512"}"#, future, SECRET)),
        ("no exp", Auth::Cookie(""), jwt(r#"{"alg":"HS256"}"#, r#"{"org_ids":[]}"#, SECRET)),
        ("string exp", Auth::Cookie(""), jwt(r#"{"alg":"HS256"}"#, r#"{"exp":"1900000000","org_ids":[]}"#, SECRET)),
        ("no org_ids", Auth::Cookie(""), jwt(r#"{"alg":"HS256"}"#, r#"{"exp":1900000000}"#, SECRET)),
        ("bad org id", Auth::Cookie(""), jwt(r#"{"alg":"HS256"}"#, r#"{"exp":1900000000,"org_ids":["x"]}"#, SECRET)),
        ("malformed cookie", Auth::Cookie("not-a-jwt"), String::new()),
        ("padded base64", Auth::Cookie(""), format!("{}=", jwt(r#"{"alg":"HS256"}"#, future, SECRET))),
        ("bad key and good cookie", Auth::Both("gv_live_nope", ""), session(&[ORG_A])),
    ];
    for (what, auth, token) in cases {
        let auth = match auth {
            Auth::Cookie("") => Auth::Cookie(&token),
            Auth::Both(k, "") => Auth::Both(k, &token),
            other => other,
        };
        let res = send(&app, &url("video-leaderboard", P1, ""), auth).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{what}: {}", res.text);
        res.failure(StatusCode::UNAUTHORIZED, "unauthorized");
    }

    // Without a configured secret no cookie is valid, even a well-signed one.
    let no_secret = app_with(None);
    let res = send(&no_secret, &url("video-leaderboard", P2, ""), Auth::Cookie(&session(&[ORG_B]))).await;
    res.failure(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn unauthorized_comes_before_bad_parameters() {
    let app = app();
    for (endpoint, _) in ENDPOINTS {
        let res = send(&app, &url(endpoint, "nope", "&limit=0&from=x&from=y"), Auth::None).await;
        res.failure(StatusCode::UNAUTHORIZED, "unauthorized");
        let res = send(&app, &format!("/api/v1/analytics/aggregate/{endpoint}"), Auth::Key("wrong")).await;
        res.failure(StatusCode::UNAUTHORIZED, "unauthorized");
    }
}

#[tokio::test]
async fn not_found_is_the_same_for_every_reason_on_every_endpoint() {
    let app = app();
    let empty_session = session(&[]);
    let session_b = session(&[ORG_B]);
    for (endpoint, extra) in ENDPOINTS {
        let missing = send(&app, &url(endpoint, P_MISSING, extra), Auth::Key(KEY_A)).await;
        let message = missing.failure(StatusCode::NOT_FOUND, "not_found");
        let cases = [
            ("other org", url(endpoint, P2, extra), Auth::Key(KEY_A)),
            ("other org, uppercase id", url(endpoint, &P2.to_uppercase(), extra), Auth::Key(KEY_A)),
            ("deleted", url(endpoint, P3, extra), Auth::Key(KEY_A)),
            ("session without orgs", url(endpoint, P1, extra), Auth::Cookie(&empty_session)),
            ("session of another org", url(endpoint, P1, extra), Auth::Cookie(&session_b)),
            // The bearer key (org A) wins over a cookie that could read P2.
            ("both sent", url(endpoint, P2, extra), Auth::Both(KEY_A, &session_b)),
        ];
        for (what, uri, auth) in cases {
            let res = send(&app, &uri, auth).await;
            assert_eq!(res.status, StatusCode::NOT_FOUND, "{endpoint} {what}: {}", res.text);
            assert_eq!(res.text, missing.text, "{endpoint} {what}");
        }
        assert!(!message.contains(P_MISSING));
    }
}

/// `(endpoint, query after project_id, parameter the message must name)`.
const BAD_PARAMETERS: &[(&str, &str, &str)] = &[
    ("video-leaderboard", "&limit=5&limit=5", "limit"),
    ("video-leaderboard", "&from=", "from"),
    ("video-leaderboard", "&to=2026-4-01", "to"),
    ("video-leaderboard", "&from=2026-02-30", "from"),
    ("video-leaderboard", "&from=%FF", "from"),
    ("video-leaderboard", "&from=2026-04-02&to=2026-04-01", "from"),
    ("video-leaderboard", "&limit=0", "limit"),
    ("video-leaderboard", "&limit=201", "limit"),
    ("video-leaderboard", "&limit=+5", "limit"),
    ("video-leaderboard", "&limit=%205", "limit"),
    ("video-leaderboard", "&limit=5.0", "limit"),
    ("video-leaderboard", "&offset=-1", "offset"),
    ("video-leaderboard", "&offset=99999999999999999999999", "offset"),
    ("video-leaderboard", "&order=views", "order"),
    ("video-leaderboard", "&order=VIEW_COUNT", "order"),
    ("posting-heatmap", "&to=2026-04-30", "from"),
    ("posting-heatmap", "&from=2026-04-01", "to"),
    ("posting-heatmap", "&from=2026-04-01&to=2026-04-30&tz=Mars/Olympus", "tz"),
    ("posting-heatmap", "&from=2026-04-01&to=2026-04-30&tz=", "tz"),
    ("view-distribution", "&from=2026-04-01&to=2026-04-30&bin_count=4", "bin_count"),
    ("view-distribution", "&from=2026-04-01&to=2026-04-30&bin_count=51", "bin_count"),
    ("outliers", "&limit=101", "limit"),
    ("outliers", "&min_x_multiple=0", "min_x_multiple"),
    ("outliers", "&min_x_multiple=1000.01", "min_x_multiple"),
    ("outliers", "&min_x_multiple=1e2", "min_x_multiple"),
    ("outliers", "&min_x_multiple=NaN", "min_x_multiple"),
    ("outliers", "&min_x_multiple=-2", "min_x_multiple"),
    ("creator-leaderboard", "&limit=201", "limit"),
    ("creator-leaderboard", "&offset=1&offset=2", "offset"),
    ("posting-consistency", "&from=2026-04-01&to=2026-04-30&tz=europe/berlin", "tz"),
    ("creator-scatter", "&to=2026-13-01", "to"),
    ("campaign-leaderboard", "&from=2026-04-01", "to"),
    ("campaign-leaderboard", "&from=2026-04-30&to=2026-04-01", "from"),
    ("member-overlap", "&dimension=campaign", "dimension"),
    ("member-overlap", "&dimension=", "dimension"),
];

#[tokio::test]
async fn bad_parameters_are_400_naming_the_parameter_before_404() {
    let app = app();
    for (endpoint, extra, param) in BAD_PARAMETERS {
        // The project does not exist: 400 still comes first.
        for project in [P_MISSING, P1] {
            let res = send(&app, &url(endpoint, project, extra), Auth::Key(KEY_A)).await;
            let message = res.failure(StatusCode::BAD_REQUEST, "invalid_parameter");
            assert!(message.contains(&format!("`{param}`")), "{endpoint}{extra}: {message}");
        }
    }
    for (endpoint, _) in ENDPOINTS {
        for (query, what) in [("", "absent"), ("?project_id=not-a-uuid", "malformed"), ("?project_id=", "empty")] {
            let uri = format!("/api/v1/analytics/aggregate/{endpoint}{query}");
            let message =
                send(&app, &uri, Auth::Key(KEY_A)).await.failure(StatusCode::BAD_REQUEST, "invalid_parameter");
            assert!(message.contains("`project_id`"), "{endpoint} {what}: {message}");
        }
        let uri = format!("{}&project_id={P1}", url(endpoint, P1, ""));
        let message = send(&app, &uri, Auth::Key(KEY_A)).await.failure(StatusCode::BAD_REQUEST, "invalid_parameter");
        assert!(message.contains("`project_id`"), "{endpoint} twice: {message}");
    }
}

#[tokio::test]
async fn unknown_parameters_are_ignored() {
    let app = app();
    for (endpoint, extra) in ENDPOINTS {
        // Not taken by these endpoints (or by any), and each malformed, empty or repeated.
        let junk = "&tz=Not/AZone&dimension=x&order=y&bin_count=0&min_x_multiple=0&foo=&bar=1&bar=2&=&&";
        let taken: Vec<&str> = match endpoint {
            "posting-heatmap" | "posting-consistency" => vec!["tz"],
            "member-overlap" => vec!["dimension"],
            "video-leaderboard" => vec!["order"],
            "view-distribution" => vec!["bin_count"],
            "outliers" => vec!["min_x_multiple"],
            _ => vec![],
        };
        let junk: String = junk
            .split('&')
            .filter(|kv| !taken.iter().any(|t| kv.starts_with(&format!("{t}="))))
            .collect::<Vec<_>>()
            .join("&");
        let res = send(&app, &format!("{}&{junk}", url(endpoint, P_MISSING, extra)), Auth::Key(KEY_A)).await;
        res.failure(StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_envelope() {
    let app = app();
    for uri in ["/", "/api/v1/analytics/aggregate/nope", "/api/v1/analytics/aggregate/video-leaderboard/"] {
        send(&app, uri, Auth::Key(KEY_A)).await.failure(StatusCode::NOT_FOUND, "not_found");
    }
    let req = Request::post(url("video-leaderboard", P1, "")).body(Body::empty()).unwrap();
    let res = app.router.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn healthz() {
    let app = app();
    let res = send(&app, "/healthz", Auth::None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json(), json!({"status": "ok"}));
}

#[tokio::test]
async fn openapi_lists_every_route_and_parameter() {
    let app = app();
    let res = send(&app, "/api/v1/openapi.json", Auth::None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.content_type.starts_with("application/json"));
    let spec = res.json();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let paths = spec["paths"].as_object().unwrap();

    let routes = api::paths();
    assert_eq!(routes.len(), ENDPOINTS.len() + 3);
    for route in &routes {
        assert!(paths.contains_key(route), "{route} is not in the document");
    }
    for (path, item) in paths {
        assert!(routes.contains(path), "{path} is documented but not routed");
        assert!(item["get"].is_object(), "{path}");
        // The router really serves it (any answer but an unknown-route 404).
        let res = send(&app, path, Auth::None).await;
        assert!(res.status != StatusCode::NOT_FOUND || res.json()["error"]["message"] != "no such endpoint", "{path}");
    }
    for (endpoint, _) in ENDPOINTS {
        let op = &paths[&format!("/api/v1/analytics/aggregate/{endpoint}")]["get"];
        for status in ["200", "400", "401", "404", "500"] {
            assert!(op["responses"][status].is_object(), "{endpoint} {status}");
        }
        let params = op["parameters"].as_array().unwrap();
        let project = params.iter().find(|p| p["name"] == "project_id").unwrap();
        assert_eq!(project["required"], true);
        assert_eq!(project["in"], "query");
        let data = &op["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["data"];
        assert!(data.is_object(), "{endpoint}: {data}");
    }
    let params = &paths["/api/v1/analytics/aggregate/video-leaderboard"]["get"]["parameters"];
    let limit = params.as_array().unwrap().iter().find(|p| p["name"] == "limit").unwrap();
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], 200);
    assert_eq!(limit["schema"]["default"], 100);
    let order = params.as_array().unwrap().iter().find(|p| p["name"] == "order").unwrap();
    assert_eq!(order["schema"]["enum"].as_array().unwrap().len(), 6);
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    for name in ["VideoItem", "Distribution", "BinItem", "CampaignItem", "Meta", "ErrorEnvelope"] {
        assert!(schemas.contains_key(name), "{name}");
    }
    let video = &schemas["VideoItem"]["properties"];
    for field in ["video_id", "posted_at", "tiktok_handle", "total_count"] {
        assert!(video[field].is_object(), "{field}");
    }
}

#[tokio::test]
async fn metrics_count_requests_and_read_store_counters() {
    let app = app();
    send(&app, &url("video-leaderboard", P1, ""), Auth::None).await;
    send(&app, &url("video-leaderboard", P_MISSING, ""), Auth::Key(KEY_A)).await;
    send(&app, "/no/such/route", Auth::None).await;
    let res = send(&app, "/metrics", Auth::None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.content_type.starts_with("text/plain"));
    let text = res.text;
    let n = events().len();
    assert!(text.contains(&format!("\ngoatview_events_applied_total {n}\n")), "{text}");
    assert!(text.contains("\ngoatview_dead_letters_total 1\n"), "{text}");
    // Other tests share the process's lane, so only the gauge's form is known.
    let waiting = text.lines().find_map(|l| l.strip_prefix("goatview_long_answers_waiting "));
    assert!(waiting.is_some_and(|n| n.parse::<usize>().is_ok()), "{text}");
    let vl = "endpoint=\"/api/v1/analytics/aggregate/video-leaderboard\"";
    assert!(text.contains(&format!("goatview_http_requests_total{{{vl},status=\"401\"}} 1")), "{text}");
    assert!(text.contains(&format!("goatview_http_requests_total{{{vl},status=\"404\"}} 1")), "{text}");
    assert!(text.contains("goatview_http_requests_total{endpoint=\"unmatched\",status=\"404\"} 1"), "{text}");
    assert!(text.contains(&format!("goatview_http_request_duration_seconds_count{{{vl}}} 2")), "{text}");
    assert!(text.contains(&format!("goatview_http_request_duration_seconds_bucket{{{vl},le=\"+Inf\"}} 2")), "{text}");
}

// ---- Success paths: these call the query functions. ----

#[tokio::test]
async fn meta_has_lowercase_project_id_and_last_event_at() {
    let app = app();
    for auth in [Auth::Key(KEY_A), Auth::Cookie(&session(&[ORG_B, ORG_A])), Auth::Both(KEY_A, "garbage")] {
        let res = send(&app, &url("goal-compliance", &P1.to_uppercase(), ""), auth).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text);
        let v = res.json();
        assert_eq!(v["error"], Value::Null);
        assert_eq!(v["meta"]["project_id"], P1);
        assert_eq!(v["meta"]["last_event_at"], LAST_EVENT_AT);
    }
}

#[tokio::test]
async fn every_endpoint_success() {
    let app = app();
    for (endpoint, extra) in ENDPOINTS {
        let junk = "&unknown=1&unknown=2&also=";
        let res = send(&app, &url(endpoint, P1, &format!("{extra}{junk}")), Auth::Key(KEY_A)).await;
        assert_eq!(res.status, StatusCode::OK, "{endpoint}: {}", res.text);
        let v = res.json();
        assert_eq!(v["error"], Value::Null, "{endpoint}");
        assert_eq!(v["meta"]["project_id"], P1, "{endpoint}");
        let object = matches!(endpoint, "view-distribution" | "goal-compliance");
        assert_eq!(v["data"].is_object(), object, "{endpoint}: {}", v["data"]);
        assert_eq!(v["data"].is_array(), !object, "{endpoint}: {}", v["data"]);
    }
}

/// A validator for one response schema of the served document (its `$ref`s resolve
/// against the document's `components`).
fn response_validator(spec: &Value, path: &str, status: &str) -> jsonschema::Validator {
    let mut schema = spec["paths"][path]["get"]["responses"][status]["content"]["application/json"]["schema"].clone();
    schema["components"] = spec["components"].clone();
    jsonschema::draft202012::options().build(&schema).unwrap_or_else(|e| panic!("{path} {status}: {e}"))
}

fn assert_valid(validator: &jsonschema::Validator, instance: &Value, what: &str) {
    let errors: Vec<String> = validator.iter_errors(instance).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{what}: {errors:?}\n{instance}");
}

#[tokio::test]
async fn answers_match_the_openapi_document() {
    let app = app();
    let spec = send(&app, "/api/v1/openapi.json", Auth::None).await.json();
    for (endpoint, extra) in ENDPOINTS {
        let path = format!("/api/v1/analytics/aggregate/{endpoint}");
        let ok = send(&app, &url(endpoint, P1, extra), Auth::Key(KEY_A)).await;
        assert_eq!(ok.status, StatusCode::OK, "{endpoint}: {}", ok.text);
        assert_valid(&response_validator(&spec, &path, "200"), &ok.json(), endpoint);
        let cases = [
            ("400", url(endpoint, P1, "&project_id=x"), Auth::Key(KEY_A)),
            ("401", url(endpoint, P1, extra), Auth::None),
            ("404", url(endpoint, P2, extra), Auth::Key(KEY_A)),
        ];
        for (status, uri, auth) in cases {
            let res = send(&app, &uri, auth).await;
            assert_eq!(res.status.as_str(), status, "{endpoint}: {}", res.text);
            assert_valid(&response_validator(&spec, &path, status), &res.json(), &format!("{endpoint} {status}"));
        }
    }
    let empty = send(&app, &url("view-distribution", P2, "&from=2026-04-01&to=2026-04-30"), Auth::Key(KEY_B)).await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.text);
    assert_eq!(empty.json()["data"]["total"], 0);
    assert_eq!(empty.json()["meta"]["last_event_at"], "2026-03-01T00:00:00Z");
    let validator = response_validator(&spec, "/api/v1/analytics/aggregate/view-distribution", "200");
    assert_valid(&validator, &empty.json(), "empty view-distribution");
}

#[tokio::test]
async fn video_leaderboard_success() {
    let app = app();
    let res = send(&app, &url("video-leaderboard", P1, "&limit=2&order=view_count"), Auth::Key(KEY_A)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let data = res.json()["data"].clone();
    let views: Vec<u64> = data.as_array().unwrap().iter().map(|v| v["view_count"].as_u64().unwrap()).collect();
    assert_eq!(views, [5000, 1000]);
    assert_eq!(data[0]["total_count"], 3);
    assert_eq!(data[0]["creator_id"], C1);
}

// ---- A real socket. ----

#[tokio::test]
async fn serves_http1_over_tcp() {
    let app = app();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app.router.clone();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {KEY_A}\r\nConnection: close\r\n\r\n",
        url("posting-heatmap", P_MISSING, "&from=2026-04-01&to=2026-04-30")
    );
    let mut written = 0;
    while written < request.len() {
        stream.writable().await.unwrap();
        match stream.try_write(&request.as_bytes()[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
    }
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        stream.readable().await.unwrap();
        match stream.try_read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
    }
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{head}");
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    server.abort();
}

//! [`ApiError`]: the one error type of the HTTP API, and the failure envelope.
//!
//! One `status_code` match decides the status; every failure has the same JSON shape
//! (contract §4.1). 4xx messages explain what to fix; a 500 says nothing about internals,
//! and the real error is logged instead.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::error;

use crate::state::StateError;
use crate::store::StoreError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: no credentials, an unknown/expired/revoked key, or a bad or expired session.
    #[error("missing or invalid credentials")]
    Unauthorized,
    /// 400: a parameter is missing, malformed or out of range; `message` names it.
    #[error("{message}")]
    InvalidParameter { param: &'static str, message: String },
    /// 404: the project does not exist, is deleted or belongs to another org (one answer
    /// for all three, so that ids of other orgs cannot be probed).
    #[error("project not found")]
    NotFound,
    /// 404: no route has this path.
    #[error("no such endpoint")]
    NoRoute,
    /// 405: the path exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 500: a bug or a storage failure; logged, never shown.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// A 400 for `param`; `detail` follows the parameter's name, e.g. "is required".
    pub(crate) fn invalid(param: &'static str, detail: impl std::fmt::Display) -> ApiError {
        ApiError::InvalidParameter { param, message: format!("`{param}` {detail}") }
    }

    pub(crate) fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ApiError {
        ApiError::Internal(e.into())
    }

    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::InvalidParameter { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable `error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::InvalidParameter { .. } => "invalid_parameter",
            ApiError::NotFound | ApiError::NoRoute => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(e)
    }
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        ApiError::internal(e)
    }
}

/// The body of every failure: `{"data": null, "error": {…}, "meta": {}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    /// Always null.
    #[schema(schema_with = null, required = true)]
    data: Option<()>,
    error: ErrorBody,
    /// Always empty.
    #[schema(value_type = Object)]
    meta: Empty,
}

/// What went wrong.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// `invalid_parameter`, `unauthorized`, `not_found`, `method_not_allowed` or `internal`.
    code: &'static str,
    /// A sentence for people; for `invalid_parameter` it names the parameter.
    message: String,
}

#[derive(Debug, Serialize)]
struct Empty {}

/// The schema of a field that is always `null`.
fn null() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::Null).build()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(source) = &self {
            error!(error = %source, "Request failed.");
        }
        let body = ErrorEnvelope {
            data: None,
            error: ErrorBody { code: self.code(), message: self.to_string() },
            meta: Empty {},
        };
        (self.status_code(), Json(body)).into_response()
    }
}

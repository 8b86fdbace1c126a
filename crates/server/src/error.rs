//! [`ApiError`]: an HTTP error reply with a status, a stable code and a message, rendered as
//! `{"error":{"code":…,"message":…}}` and counted in the error metric by whoever builds it.

use axum::{
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use switchboard_proto::ErrorCode;

/// An HTTP error reply.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub(crate) struct ApiError {
    /// The error code (decides the status).
    pub(crate) code: ErrorCode,
    /// What went wrong, for humans.
    pub(crate) message: String,
}

impl ApiError {
    /// An error with `code` and `message`.
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A `bad_request` error.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
}

impl From<switchboard_core::HubError> for ApiError {
    fn from(e: switchboard_core::HubError) -> Self {
        Self::new(ErrorCode::from_hub(&e), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.code == ErrorCode::Internal {
            tracing::error!(message = %self.message, "internal error");
        } else {
            tracing::debug!(code = self.code.as_str(), message = %self.message, "request refused");
        }
        let body = switchboard_proto::error(
            switchboard_proto::Format::Json,
            None,
            self.code,
            &self.message,
        );
        let status =
            StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        // Lets middleware count the exact code (see `api::authorize`).
        resp.extensions_mut().insert(self.code);
        resp
    }
}

//! The bundled web app (`web/`) and the JS client (`clients/js/src/`), embedded in the binary
//! and served as-is.

use axum::{
    extract::Path,
    http::header,
    response::{IntoResponse, Response},
};
use rust_embed::RustEmbed;
use switchboard_proto::ErrorCode;

use crate::error::ApiError;

#[derive(RustEmbed)]
#[folder = "../../web/"]
struct Web;

#[derive(RustEmbed)]
#[folder = "../../clients/js/src/"]
struct ClientJs;

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

fn serve(file: Option<rust_embed::EmbeddedFile>, path: &str) -> Response {
    match file {
        Some(f) => (
            [
                (header::CONTENT_TYPE, content_type(path)),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            f.data,
        )
            .into_response(),
        None => ApiError::new(ErrorCode::NotFound, "no such file").into_response(),
    }
}

pub(crate) async fn index() -> Response {
    serve(Web::get("index.html"), "index.html")
}

pub(crate) async fn web(Path(path): Path<String>) -> Response {
    serve(Web::get(&path), &path)
}

pub(crate) async fn client(Path(path): Path<String>) -> Response {
    serve(ClientJs::get(&path), &path)
}

//! Opening a connection: the connection token, the WebSocket upgrade (over TLS for `wss`),
//! and the `connect` exchange, all within `connect_timeout` (the token within
//! `token_timeout` before it). Called by the connection task's loop (`connection.rs`), which
//! also learns here whether a failed attempt is worth retrying.

use std::{sync::Arc, time::Duration};

use futures_util::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use tokio_tungstenite::{
    Connector, connect_async_tls_with_config,
    tungstenite::{
        Message,
        client::IntoClientRequest,
        http::{HeaderValue, header::SEC_WEBSOCKET_PROTOCOL},
        protocol::CloseFrame,
    },
};
use tracing::{debug, info};

use super::{Connection, Link, MAX_PING_INTERVAL, Socket, stopped};
use crate::{
    close::{AfterClose, after_close, close_code},
    error::{ClientError, ErrorCode},
    state::{ConnectionState, Disconnect},
    wire::{self, Command, Incoming, Push, ReplyBody, Secret},
};

// === impl Connection: opening a connection ===

impl Connection {
    /// One connection attempt: the connection token, then the WebSocket and `connect`.
    pub(super) async fn connect_once(&mut self) -> Result<Link, ClientError> {
        let token = self.connection_token().await?;
        self.open(token.as_deref()).await
    }

    /// What follows a failed reconnect: `Ok` with the disconnect to show while retrying,
    /// or `Err` with the error and disconnect the client ends with.
    pub(super) fn after_failed_connect(
        &mut self,
        error: ClientError,
    ) -> Result<Disconnect, (ClientError, Disconnect)> {
        match error {
            ClientError::TokenExpired if self.token_renews() => {
                self.auth.stale = true;
                Ok(Disconnect::new(
                    Some(close_code::TOKEN_EXPIRED),
                    "the connection token expired",
                    true,
                ))
            }
            ClientError::Token(token_error) => Ok(Disconnect {
                token_error: Some(token_error.clone()),
                ..Disconnect::new(None, token_error.to_string(), true)
            }),
            ClientError::TokenExpired
            | ClientError::Unauthorized { .. }
            | ClientError::Forbidden { .. }
            | ClientError::Terminated { .. } => Err(stopped(error)),
            other => Ok(Disconnect::new(None, other.to_string(), true)),
        }
    }

    /// Opens a WebSocket and completes the `connect` exchange, within `connect_timeout`.
    async fn open(&mut self, token: Option<&str>) -> Result<Link, ClientError> {
        match tokio::time::timeout(self.options.connect_timeout, self.handshake(token)).await {
            Ok(opened) => opened,
            Err(_) => Err(ClientError::Timeout),
        }
    }

    async fn handshake(&mut self, token: Option<&str>) -> Result<Link, ClientError> {
        let url = self.url.clone();
        let connect_error = |error: tokio_tungstenite::tungstenite::Error| ClientError::Connect {
            url: url.clone(),
            source: Arc::new(error),
        };
        let mut request = self
            .url
            .as_str()
            .into_client_request()
            .map_err(connect_error)?;
        request.headers_mut().insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(self.options.format.subprotocol()),
        );
        // tungstenite checks that the server answered with the subprotocol asked for. The
        // connector is set for `wss` only; `ws` stays plain TCP.
        let connector = self.tls.clone().map(Connector::Rustls);
        let (socket, _response) = connect_async_tls_with_config(request, None, true, connector)
            .await
            .map_err(connect_error)?;
        let (mut sink, mut stream) = socket.split();

        let id = self.take_id();
        let connect = wire::encode(
            self.options.format,
            Some(id),
            Command::Connect {
                name: self.options.name.as_deref(),
                version: self.options.version.as_deref(),
                info: self.options.info.as_ref(),
                token: token.map(Secret),
            },
        )?;
        sink.send(connect).await.map_err(connect_error)?;
        let renews = self.token_renews();
        loop {
            let message = match stream.next().await {
                Some(message) => message.map_err(connect_error)?,
                None => return Err(handshake_closed(None, renews)),
            };
            let incoming = match message {
                Message::Text(text) => wire::decode_text(&text),
                Message::Binary(bytes) => wire::decode_binary(&bytes),
                Message::Close(frame) => return Err(handshake_closed(frame, renews)),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            };
            match incoming? {
                Incoming::Reply { id: got, result } if got == id => {
                    let body = result.map_err(connect_refused)?;
                    return self.link(sink, stream, body);
                }
                Incoming::Push(Push::Ping) => {
                    let pong = wire::encode(self.options.format, None, Command::Pong)?;
                    sink.send(pong).await.map_err(connect_error)?;
                }
                other => debug!(?other, "ignoring a frame before the connect reply"),
            }
        }
    }

    fn link(
        &mut self,
        sink: SplitSink<Socket, Message>,
        stream: SplitStream<Socket>,
        body: ReplyBody,
    ) -> Result<Link, ClientError> {
        let (Some(client), Some(ping_interval)) = (body.client, body.ping_interval) else {
            return Err(ClientError::Protocol(
                "connect reply without client or ping_interval".into(),
            ));
        };
        let ping_interval = Duration::try_from_secs_f64(ping_interval)
            .ok()
            .filter(|interval| *interval <= MAX_PING_INTERVAL)
            .ok_or_else(|| {
                ClientError::Protocol(format!("connect reply ping_interval {ping_interval}"))
            })?;
        info!(%client, user = ?body.user, ?ping_interval, url = %self.url, "connected");
        self.auth.expires = body.expires;
        self.state.send_replace(ConnectionState::Connected {
            client,
            ping_interval,
            user: body.user,
        });
        Ok(Link {
            sink,
            stream,
            ping_interval,
            close: None,
            disconnect: None,
        })
    }
}

/// The typed error for a refused `connect`.
fn connect_refused(error: ClientError) -> ClientError {
    match error {
        ClientError::Server {
            code: ErrorCode::Unauthorized,
            message,
        } => ClientError::Unauthorized { reason: message },
        ClientError::Server {
            code: ErrorCode::TokenExpired,
            ..
        } => ClientError::TokenExpired,
        other => other,
    }
}

/// The error for a connection closed before the `connect` reply.
fn handshake_closed(frame: Option<CloseFrame>, token_renews: bool) -> ClientError {
    let Some(frame) = frame else {
        return ClientError::Protocol("closed before the connect reply".into());
    };
    let code = u16::from(frame.code);
    match after_close(Some(code), None, &frame.reason, token_renews) {
        AfterClose::Stop(error) => error,
        // `after_failed_connect` turns this into a token renewal.
        AfterClose::RenewToken => ClientError::TokenExpired,
        AfterClose::Reconnect => ClientError::Protocol(format!(
            "closed before the connect reply: {code} {}",
            frame.reason
        )),
    }
}

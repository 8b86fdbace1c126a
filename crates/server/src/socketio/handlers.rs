//! The embeddable Rust API: handlers per namespace and event, with typed (serde) payloads.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use switchboard_server::{Config, Server};
//!
//! let server = Server::bind(Config::default()).await?;
//! let io = server.socketio().expect("socketio is enabled by default");
//! io.of("/chat").on_connect(|socket| async move {
//!     socket.join("lobby").await.ok();
//!     socket.on("chat message", |socket, text: String, ack| async move {
//!         // To everyone else in the lobby, whatever their transport or protocol.
//!         socket.to("lobby").emit("chat message", &(socket.id(), &text)).await.ok();
//!         ack.send(&"delivered");
//!     });
//! });
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```
//!
//! A handler runs in its own task; `on_connect` handlers run before any event of their
//! socket is dispatched (events that arrive meanwhile wait, at most
//! [`MAX_EARLY_EVENTS`] of them), so handlers registered with [`Socket::on`] there see every
//! event. Emits go straight to the socket's queue or through the hub, so rooms reach native
//! WebSocket, SSE and polling clients too.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::{Serialize, de::DeserializeOwned};
use switchboard_core::{ChannelName, ClientId, ClientInfo, Hub, HubError, Payload};
use switchboard_socketio::{JsonText, socketio::RESERVED_EVENTS};
use tokio::sync::{mpsc, oneshot};

use super::{
    Control, Input, SocketIo,
    rooms::{join_array, json_string, namespace_channel, room_channel, split_args},
    socket::direct_delivery,
};

/// Events of one socket held while its `on_connect` handler runs.
pub const MAX_EARLY_EVENTS: usize = 256;

/// Why an emit or a room operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// The data could not be serialized as JSON (or has no MessagePack form).
    #[error("data cannot be sent: {0}")]
    Data(String),
    /// The event name is one Socket.IO reserves (`connect`, `disconnect`, …).
    #[error("{0:?} is a reserved event name")]
    ReservedEvent(String),
    /// The room name cannot be a channel.
    #[error("invalid room: {0}")]
    Room(String),
    /// The hub refused (permissions, limits, store).
    #[error(transparent)]
    Hub(#[from] HubError),
    /// The socket is gone.
    #[error("the socket is disconnected")]
    Disconnected,
    /// The socket did not acknowledge in time, or acknowledged with data of another shape.
    #[error("no acknowledgement: {0}")]
    Ack(String),
}

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type ConnectFn = dyn Fn(Socket) -> BoxFuture + Send + Sync;
type EventFn = dyn Fn(Socket, JsonText, Ack) -> BoxFuture + Send + Sync;
type DisconnectFn = dyn Fn(Socket, String) -> BoxFuture + Send + Sync;

/// Handlers registered for namespaces.
#[derive(Default)]
pub(crate) struct Registry {
    connect: Mutex<HashMap<String, Arc<ConnectFn>>>,
}

impl Registry {
    pub(crate) fn connect_handler(&self, namespace: &str) -> Option<Arc<ConnectFn>> {
        super::lock(&self.connect).get(namespace).cloned()
    }

    pub(crate) fn has(&self, namespace: &str) -> bool {
        super::lock(&self.connect).contains_key(namespace)
    }
}

/// One socket's event handlers, shared by its [`Socket`] handles and its session.
#[derive(Default)]
pub(crate) struct SocketHandlers {
    events: Mutex<HashMap<String, Arc<EventFn>>>,
    disconnect: Mutex<Option<Arc<DisconnectFn>>>,
}

impl SocketHandlers {
    pub(crate) fn event(&self, name: &str) -> Option<Arc<EventFn>> {
        super::lock(&self.events).get(name).cloned()
    }

    pub(crate) fn disconnect(&self) -> Option<Arc<DisconnectFn>> {
        super::lock(&self.disconnect).clone()
    }
}

/// The Socket.IO server of an embedding application: namespaces, rooms, broadcasts.
/// Cheap to clone.
#[derive(Clone)]
pub struct Io {
    pub(crate) sio: Arc<SocketIo>,
    pub(crate) hub: Hub,
}

impl Io {
    /// Namespace `name` (`/chat`); registering a connect handler makes it exist.
    pub fn of(&self, name: &str) -> Namespace {
        Namespace {
            io: self.clone(),
            name: Arc::from(name),
        }
    }

    /// Emits to every socket of the root namespace.
    pub async fn emit<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<(), SocketError> {
        self.of("/").emit(event, data).await
    }

    /// A broadcast to `room` of the root namespace.
    pub fn to(&self, room: &str) -> Broadcast {
        self.of("/").to(room)
    }
}

/// One namespace of an [`Io`].
#[derive(Clone)]
pub struct Namespace {
    io: Io,
    name: Arc<str>,
}

impl Namespace {
    /// Runs `handler` for each socket that connects to this namespace (after its CONNECT
    /// is accepted and answered).
    pub fn on_connect<F, Fut>(&self, handler: F)
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let f: Arc<ConnectFn> = Arc::new(move |s| Box::pin(handler(s)));
        super::lock(&self.io.sio.handlers.connect).insert(self.name.to_string(), f);
    }

    /// Emits to every socket of the namespace.
    pub async fn emit<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<(), SocketError> {
        let channel = namespace_channel(&self.name)
            .ok_or_else(|| SocketError::Room(format!("invalid namespace {:?}", self.name)))?;
        let payload = event_payload(event, data)?;
        self.io.hub.publish(&channel, payload, None).await?;
        Ok(())
    }

    /// A broadcast to `room`.
    pub fn to(&self, room: &str) -> Broadcast {
        Broadcast {
            io: self.io.clone(),
            namespace: self.name.clone(),
            rooms: vec![room.to_owned()],
            except: Vec::new(),
            sender: None,
            volatile: false,
        }
    }

    /// Ids of the sockets connected to this namespace.
    pub fn sockets(&self) -> Vec<String> {
        self.io
            .sio
            .sockets(Some(&self.name))
            .into_iter()
            .map(|(id, _)| id.as_str().to_owned())
            .collect()
    }
}

/// A broadcast being addressed: `to(room)…except(room).emit(event, data)`.
pub struct Broadcast {
    io: Io,
    namespace: Arc<str>,
    rooms: Vec<String>,
    except: Vec<String>,
    /// The socket broadcasting, left out.
    sender: Option<(ClientId, Arc<ClientInfo>)>,
    volatile: bool,
}

impl Broadcast {
    /// Also to `room`.
    pub fn to(mut self, room: &str) -> Self {
        self.rooms.push(room.to_owned());
        self
    }

    /// Volatile: a socket that cannot take it at once (a polling client between two
    /// requests) skips it.
    pub fn volatile(mut self) -> Self {
        self.volatile = true;
        self
    }

    /// Not to the members of `room` (or the socket with that id).
    pub fn except(mut self, room: &str) -> Self {
        self.except.push(room.to_owned());
        self
    }

    /// Sends `event(data)` to each member of the rooms once, whatever its transport or
    /// protocol (rooms are hub channels).
    pub async fn emit<T: Serialize + ?Sized>(
        self,
        event: &str,
        data: &T,
    ) -> Result<(), SocketError> {
        let payload = event_payload(event, data)?;
        let mut except: HashSet<ClientId> = HashSet::new();
        if let Some((id, _)) = &self.sender {
            except.insert(id.clone());
        }
        for r in &self.except {
            let channel =
                room_channel(&self.namespace, r).map_err(|e| SocketError::Room(e.to_string()))?;
            if let Ok(members) = self.io.hub.presence(&channel) {
                except.extend(members.iter().map(|m| m.client.clone()));
            }
            except.insert(ClientId::restore(r));
        }
        let channels = self
            .rooms
            .iter()
            .map(|r| room_channel(&self.namespace, r).map_err(|e| SocketError::Room(e.to_string())))
            .collect::<Result<Vec<ChannelName>, _>>()?;
        let info = self.sender.as_ref().map(|(_, info)| info.clone());
        for (k, channel) in channels.iter().enumerate() {
            if k > 0
                && let Ok(members) = self.io.hub.presence(&channels[k - 1])
            {
                except.extend(members.iter().map(|m| m.client.clone()));
            }
            let live = switchboard_core::Live {
                except: (!except.is_empty()).then(|| Arc::new(except.clone())),
                volatile: self.volatile,
            };
            self.io
                .hub
                .submit_live(channel, payload.clone(), info.clone(), live)
                .await?
                .await?;
        }
        Ok(())
    }
}

/// A connected socket, as handlers see it. Cheap to clone; outlives the socket harmlessly
/// (operations then fail with [`SocketError::Disconnected`] or do nothing).
#[derive(Clone)]
pub struct Socket {
    io: Io,
    namespace: Arc<str>,
    info: Arc<ClientInfo>,
    session: mpsc::Sender<Input>,
    outbox: Arc<switchboard_core::Outbox>,
    handlers: Arc<SocketHandlers>,
}

impl Socket {
    pub(crate) fn new(
        io: Io,
        namespace: Arc<str>,
        info: Arc<ClientInfo>,
        session: mpsc::Sender<Input>,
        outbox: Arc<switchboard_core::Outbox>,
        handlers: Arc<SocketHandlers>,
    ) -> Self {
        Self {
            io,
            namespace,
            info,
            session,
            outbox,
            handlers,
        }
    }

    /// The socket's id (also the id of its own room).
    pub fn id(&self) -> &str {
        self.info.client.as_str()
    }

    /// The authenticated user, if any.
    pub fn user(&self) -> Option<&str> {
        self.info.user.as_ref().map(|u| u.as_str())
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Handles event `name`: `T` is read from the event's argument (or from the array of
    /// its arguments when it has none or several). Events whose data does not fit `T` are
    /// acknowledged with an `invalid_data` error and not passed on.
    pub fn on<T, F, Fut>(&self, name: &str, handler: F)
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(Socket, T, Ack) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let f: Arc<EventFn> = Arc::new(move |socket, data, ack| match args_as::<T>(&data) {
            Ok(value) => Box::pin(handler(socket, value, ack)),
            Err(e) => {
                tracing::debug!(error = %e, "socket.io event data does not fit the handler's type");
                ack.send(&serde_json::json!({"error": {"code": "invalid_data", "message": e}}));
                Box::pin(async {})
            }
        });
        super::lock(&self.handlers.events).insert(name.to_owned(), f);
    }

    /// Runs `handler` with the reason when the socket disconnects.
    pub fn on_disconnect<F, Fut>(&self, handler: F)
    where
        F: Fn(Socket, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let f: Arc<DisconnectFn> = Arc::new(move |s, reason| Box::pin(handler(s, reason)));
        *super::lock(&self.handlers.disconnect) = Some(f);
    }

    /// Sends `event(data)` to this socket.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), SocketError> {
        self.emit_to_self(event, data, false)
    }

    /// Sends `event(data)` to this socket unless it cannot take it at once (a polling client
    /// between two requests): Socket.IO's `socket.volatile.emit`.
    pub fn emit_volatile<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<(), SocketError> {
        self.emit_to_self(event, data, true)
    }

    fn emit_to_self<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        volatile: bool,
    ) -> Result<(), SocketError> {
        let payload = event_payload(event, data)?;
        let d = direct_delivery(&self.namespace, payload, None, volatile)
            .ok_or(SocketError::Disconnected)?;
        match self.outbox.push(d) {
            switchboard_core::Pushed::Queued => Ok(()),
            _ => Err(SocketError::Disconnected),
        }
    }

    /// Sends `event(data)` and waits (at most `timeout`) for the client's ack, read as `R`
    /// from the ack's argument (or the array of its arguments when it has none or several).
    pub async fn emit_with_ack<T, R>(
        &self,
        event: &str,
        data: &T,
        timeout: Duration,
    ) -> Result<R, SocketError>
    where
        T: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let data = event_data(event, data)?;
        let (tx, rx) = oneshot::channel();
        self.session
            .send(Input::control(Control::EmitWithAck(
                self.info.client.clone(),
                data,
                timeout,
                tx,
            )))
            .await
            .map_err(|_| SocketError::Disconnected)?;
        let ack = rx
            .await
            .map_err(|_| SocketError::Disconnected)?
            .map_err(SocketError::Ack)?;
        // An ack's data is the array of its arguments.
        let wrapped = format!(r#"["ack",{}"#, &ack.as_str()[1..]);
        let wrapped = JsonText::parse(bytes::Bytes::from(wrapped))
            .map_err(|e| SocketError::Ack(e.to_string()))?;
        args_as(&wrapped).map_err(SocketError::Ack)
    }

    /// Joins `room` (its channel's subscribe rule does not apply: the application decided).
    pub async fn join(&self, room: &str) -> Result<(), SocketError> {
        let (tx, rx) = oneshot::channel();
        self.session
            .send(Input::control(Control::Join(
                self.info.client.clone(),
                vec![room.to_owned()],
                tx,
            )))
            .await
            .map_err(|_| SocketError::Disconnected)?;
        rx.await
            .map_err(|_| SocketError::Disconnected)?
            .map_err(SocketError::Room)
    }

    /// Leaves `room`.
    pub async fn leave(&self, room: &str) -> Result<(), SocketError> {
        self.session
            .send(Input::control(Control::Leave(
                self.info.client.clone(),
                vec![room.to_owned()],
            )))
            .await
            .map_err(|_| SocketError::Disconnected)
    }

    /// The rooms the socket is in.
    pub async fn rooms(&self) -> Vec<String> {
        let (tx, rx) = oneshot::channel();
        if self
            .session
            .send(Input::control(Control::Rooms(self.info.client.clone(), tx)))
            .await
            .is_err()
        {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// A broadcast to `room`, leaving this socket out (`socket.to(room).emit` in Node).
    pub fn to(&self, room: &str) -> Broadcast {
        Broadcast {
            io: self.io.clone(),
            namespace: self.namespace.clone(),
            rooms: vec![room.to_owned()],
            except: Vec::new(),
            sender: Some((self.info.client.clone(), self.info.clone())),
            volatile: false,
        }
    }

    /// Disconnects the socket from its namespace.
    pub async fn disconnect(&self) {
        let _ = self
            .session
            .send(Input::control(Control::Disconnect(
                self.info.client.clone(),
                false,
            )))
            .await;
    }
}

/// The client's acknowledgement callback for one event (does nothing when the client asked
/// for none).
pub struct Ack {
    pub(crate) target: Option<(mpsc::Sender<Input>, ClientId, u64)>,
}

impl Ack {
    /// Acknowledges with `data` as the ack's one argument.
    pub fn send<T: Serialize + ?Sized>(self, data: &T) {
        let Some((session, socket, id)) = self.target else {
            return;
        };
        let Ok(text) = serde_json::to_string(data) else {
            return;
        };
        if let Ok(json) = JsonText::parse(bytes::Bytes::from(format!("[{text}]"))) {
            let _ = session.try_send(Input::control(Control::Ack(socket, id, json)));
        }
    }

    /// Whether the client asked for an ack.
    pub fn requested(&self) -> bool {
        self.target.is_some()
    }
}

/// `["event", data]` as JSON text.
fn event_data<T: Serialize + ?Sized>(event: &str, data: &T) -> Result<JsonText, SocketError> {
    if RESERVED_EVENTS.contains(&event) {
        return Err(SocketError::ReservedEvent(event.to_owned()));
    }
    let value = serde_json::to_string(data).map_err(|e| SocketError::Data(e.to_string()))?;
    let name = json_string(event);
    join_array([name.as_str(), value.as_str()]).ok_or_else(|| SocketError::Data("not JSON".into()))
}

fn event_payload<T: Serialize + ?Sized>(event: &str, data: &T) -> Result<Payload, SocketError> {
    let text = event_data(event, data)?;
    Payload::json(text.into_bytes()).map_err(|e| SocketError::Data(e.to_string()))
}

/// Reads `T` from `["name", args…]`: the one argument, or the array of the arguments.
fn args_as<T: DeserializeOwned>(data: &JsonText) -> Result<T, String> {
    let args = split_args(data).ok_or_else(|| "event data is not an array".to_owned())?;
    match args.as_slice() {
        [_, one] => serde_json::from_str(one.get()).map_err(|e| e.to_string()),
        // No argument: `()`, `Option`s and `Vec`s all read it.
        [_] => serde_json::from_str("null")
            .or_else(|_| serde_json::from_str("[]"))
            .map_err(|e: serde_json::Error| e.to_string()),
        [_, rest @ ..] => {
            let list = join_array(rest.iter().map(|a| a.get())).ok_or("bad arguments")?;
            serde_json::from_str(list.as_str()).map_err(|e| e.to_string())
        }
        [] => Err("event data is empty".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_types_read_one_argument_or_the_list() {
        let one = JsonText::parse(bytes::Bytes::from_static(br#"["e",{"a":1}]"#)).unwrap();
        let v: serde_json::Value = args_as(&one).unwrap();
        assert_eq!(v, serde_json::json!({"a": 1}));
        let two = JsonText::parse(bytes::Bytes::from_static(br#"["e","x",2]"#)).unwrap();
        let (s, n): (String, u32) = args_as(&two).unwrap();
        assert_eq!((s.as_str(), n), ("x", 2));
        let none = JsonText::parse(bytes::Bytes::from_static(br#"["e"]"#)).unwrap();
        let () = args_as(&none).unwrap();
        assert!(args_as::<u32>(&one).is_err());
        assert!(event_data("connect", &1).is_err());
    }
}

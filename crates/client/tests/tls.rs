//! The client over `wss://` against `switchboard serve --tls-self-signed`, trusting the
//! certificate the server generated and printed.

mod common;

use common::{Setup, TestServer, next_event};
use serde_json::json;
use switchboard_client::{
    Client, ClientError, ClientOptions, Format, SubscribeOptions, SubscriptionEvent,
};

fn self_signed_server() -> TestServer {
    TestServer::start_with(Setup {
        args: &["--tls-self-signed"],
        ..Setup::default()
    })
}

#[tokio::test]
async fn client_talks_over_wss_when_it_trusts_the_self_signed_certificate() {
    let server = self_signed_server();
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let certificate = server
        .certificate
        .clone()
        .expect("the certificate is printed");
    assert!(certificate.starts_with(server.data_dir().canonicalize().expect("data dir")));
    for format in [Format::Json, Format::MessagePack] {
        let options = ClientOptions {
            ca_file: Some(certificate.clone()),
            ..server.options(format)
        };
        assert!(options.websocket_url().expect("url").starts_with("wss://"));
        let client = Client::connect(options).await.expect("connect over wss");
        let channel = format!("secure-{format:?}");
        let mut sub = client
            .subscribe(&channel, SubscribeOptions::default())
            .await
            .expect("subscribe");
        assert!(matches!(
            next_event(&mut sub).await,
            SubscriptionEvent::Subscribed { .. }
        ));
        let position = client
            .publish(&channel, json!({"over": "tls"}))
            .await
            .expect("publish");
        match next_event(&mut sub).await {
            SubscriptionEvent::Publication(p) => {
                assert_eq!(p.position(), position);
                assert_eq!(p.data.as_json(), Some(&json!({"over": "tls"})));
            }
            other => panic!("expected the publication, got {other:?}"),
        }
        client.close().await;
    }
}

#[tokio::test]
async fn an_untrusted_certificate_fails_the_connect() {
    let server = self_signed_server();
    let refused = Client::connect(server.options(Format::Json)).await;
    let Err(ClientError::Connect { source, .. }) = &refused else {
        panic!("expected a connect error, got {refused:?}");
    };
    assert!(
        source.to_string().contains("certificate"),
        "the error names the certificate: {source}"
    );
}

#[tokio::test]
async fn a_ca_file_that_is_no_certificate_is_refused_before_connecting() {
    let server = self_signed_server();
    let bogus = server.data_dir().join("bogus.pem");
    std::fs::write(&bogus, "hello").expect("write");
    let options = ClientOptions {
        ca_file: Some(bogus.clone()),
        ..server.options(Format::Json)
    };
    let refused = Client::connect(options).await;
    assert!(
        matches!(&refused, Err(ClientError::CaFile { path, .. }) if *path == bogus),
        "{refused:?}"
    );
}

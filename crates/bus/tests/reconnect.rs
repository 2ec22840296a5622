//! Losing the server and getting it back; credentials in the URL.

use crate::support::{NatsServer, connect, eventually, next, options};
use bytes::Bytes;
use salam_bus::{BusError, Client};

#[tokio::test]
async fn after_a_server_restart_subscriptions_work_again() {
    let mut server = NatsServer::start();
    let client = connect(&server).await;
    let mut subscription = client.subscribe("survives.*").await.unwrap();

    server.kill();
    eventually("the client notices", || !client.is_connected()).await;
    assert!(matches!(
        client.publish("survives.a", Bytes::new()),
        Err(BusError::Disconnected)
    ));
    assert!(matches!(client.flush().await, Err(BusError::Disconnected)));
    assert_eq!(client.stats().dropped_outbound, 1);

    server.restart();
    eventually("the client reconnects", || client.is_connected()).await;
    assert_eq!(client.stats().reconnects, 1);
    let publisher = connect(&server).await;
    publisher
        .publish("survives.a", Bytes::from_static(b"after"))
        .unwrap();
    assert_eq!(&next(&mut subscription).await.payload[..], b"after");

    // Requests work too: the inbox was subscribed again.
    let result = client.request("nobody", Bytes::new()).await;
    assert!(matches!(result, Err(BusError::NoResponders)), "{result:?}");
    client.publish("x", Bytes::new()).unwrap();
    client.flush().await.unwrap();
}

#[tokio::test]
async fn user_and_password_from_the_url() {
    let server = NatsServer::start_with(&["--user", "u", "--pass", "p@ss"]);
    let authorised = format!("nats://u:p%40ss@127.0.0.1:{}", server.port);
    let subscriber = Client::connect(options(&authorised)).await.unwrap();
    let publisher = Client::connect(options(&authorised)).await.unwrap();
    let mut subscription = subscriber.subscribe("secret").await.unwrap();
    publisher
        .publish("secret", Bytes::from_static(b"in"))
        .unwrap();
    assert_eq!(&next(&mut subscription).await.payload[..], b"in");

    let wrong = format!("nats://u:wrong@127.0.0.1:{}", server.port);
    let result = Client::connect(options(&wrong)).await;
    assert!(matches!(result, Err(BusError::Protocol(_))), "{result:?}");
    let anonymous = Client::connect(options(&server.url())).await;
    assert!(
        matches!(anonymous, Err(BusError::Protocol(_))),
        "{anonymous:?}"
    );
}

#[tokio::test]
async fn the_first_connection_must_succeed() {
    let closed_port = crate::support::free_port();
    let result = Client::connect(options(&format!("nats://127.0.0.1:{closed_port}"))).await;
    assert!(matches!(result, Err(BusError::Connect(_))), "{result:?}");
    let result = Client::connect(options("tls://127.0.0.1:4222")).await;
    assert!(matches!(result, Err(BusError::Url(_))), "{result:?}");
}

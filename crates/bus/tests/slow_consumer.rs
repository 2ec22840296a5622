//! A subscriber that does not keep up loses messages, counted, without stalling the rest.

use crate::support::{NatsServer, connect, next, options};
use bytes::Bytes;
use salam_bus::{Client, Options};

#[tokio::test]
async fn a_full_subscription_queue_drops_and_counts() {
    let server = NatsServer::start();
    let small = Options {
        subscription_capacity: 4,
        ..options(&server.url())
    };
    let subscriber = Client::connect(small).await.unwrap();
    let publisher = connect(&server).await;
    let mut slow = subscriber.subscribe("flood").await.unwrap();
    let mut other = subscriber.subscribe("other").await.unwrap();
    for index in 0..100u8 {
        publisher
            .publish("flood", Bytes::from(vec![index]))
            .unwrap();
    }
    publisher
        .publish("other", Bytes::from_static(b"still here"))
        .unwrap();
    publisher.flush().await.unwrap();
    // The server queued all of it for the subscriber before answering this PING.
    subscriber.flush().await.unwrap();

    assert_eq!(&next(&mut other).await.payload[..], b"still here");
    let stats = subscriber.stats();
    assert_eq!((stats.received, stats.dropped_inbound), (101, 96));
    for index in 0..4u8 {
        assert_eq!(
            next(&mut slow).await.payload[..],
            [index],
            "the first four are kept"
        );
    }
    publisher
        .publish("flood", Bytes::from_static(b"later"))
        .unwrap();
    assert_eq!(&next(&mut slow).await.payload[..], b"later");
}

#[tokio::test]
async fn a_full_outbound_queue_refuses_and_counts() {
    let server = NatsServer::start();
    let tiny = Options {
        outbound_capacity: 1,
        ..options(&server.url())
    };
    let client = Client::connect(tiny).await.unwrap();
    // Without yielding, the writer cannot drain: the second publish finds the queue full.
    client.publish("a", Bytes::new()).unwrap();
    let refused = client.publish("a", Bytes::new());
    assert!(
        matches!(refused, Err(salam_bus::BusError::Full)),
        "{refused:?}"
    );
    let stats = client.stats();
    assert_eq!((stats.published, stats.dropped_outbound), (1, 1));
}

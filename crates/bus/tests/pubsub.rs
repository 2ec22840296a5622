//! Publish and subscribe against a real server.

use crate::support::{NatsServer, connect, next, options};
use bytes::Bytes;
use salam_bus::{BusError, Client, Options};

#[tokio::test]
async fn wildcards_match_one_token_or_the_rest() {
    let server = NatsServer::start();
    let subscriber = connect(&server).await;
    let publisher = connect(&server).await;
    let mut one_token = subscriber.subscribe("hub.*.events").await.unwrap();
    let mut the_rest = subscriber.subscribe("hub.>").await.unwrap();
    assert_eq!(one_token.subject(), "hub.*.events");

    publisher
        .publish("hub.a.events", Bytes::from_static(b"1"))
        .unwrap();
    publisher
        .publish("hub.a.b.events", Bytes::from_static(b"2"))
        .unwrap();
    publisher
        .publish("other.a.events", Bytes::from_static(b"3"))
        .unwrap();
    publisher
        .publish("hub.b.events", Bytes::from_static(b"4"))
        .unwrap();

    let first = next(&mut one_token).await;
    assert_eq!(
        (first.subject.as_str(), &first.payload[..]),
        ("hub.a.events", &b"1"[..])
    );
    assert_eq!(first.reply, None);
    assert_eq!(
        &next(&mut one_token).await.payload[..],
        b"4",
        "hub.a.b.events is two tokens"
    );
    let seen: Vec<Bytes> = vec![
        next(&mut the_rest).await.payload,
        next(&mut the_rest).await.payload,
        next(&mut the_rest).await.payload,
    ];
    assert_eq!(seen, [&b"1"[..], b"2", b"4"]);
    publisher.flush().await.unwrap();
    subscriber.flush().await.unwrap();
    assert_eq!(subscriber.stats().received, 5);
    assert_eq!(publisher.stats().published, 4);
}

#[tokio::test]
async fn a_client_does_not_receive_its_own_publishes() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let other = connect(&server).await;
    let mut subscription = client.subscribe("echo").await.unwrap();
    client.publish("echo", Bytes::from_static(b"own")).unwrap();
    client.flush().await.unwrap();
    other.publish("echo", Bytes::from_static(b"other")).unwrap();
    assert_eq!(&next(&mut subscription).await.payload[..], b"other");
    assert_eq!(client.stats().received, 1);
}

#[tokio::test]
async fn dropping_a_subscription_unsubscribes() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let other = connect(&server).await;
    drop(client.subscribe("gone").await.unwrap());
    client.flush().await.unwrap();
    other.publish("gone", Bytes::from_static(b"1")).unwrap();
    other.flush().await.unwrap();
    // The server would deliver it before this PONG if the subscription still existed.
    client.flush().await.unwrap();
    assert_eq!(
        client.stats().received,
        0,
        "the server still had the subscription"
    );

    let mut again = client.subscribe("gone").await.unwrap();
    other.publish("gone", Bytes::from_static(b"2")).unwrap();
    assert_eq!(&next(&mut again).await.payload[..], b"2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_order_is_kept_for_100k_messages() {
    const N: u32 = 100_000;
    let server = NatsServer::start();
    let roomy = Options {
        outbound_capacity: N as usize + 1,
        subscription_capacity: N as usize,
        request_timeout: std::time::Duration::from_secs(60),
        ..options(&server.url())
    };
    let subscriber = Client::connect(roomy.clone()).await.unwrap();
    let publisher = Client::connect(roomy).await.unwrap();
    let mut subscription = subscriber.subscribe("order").await.unwrap();
    for index in 0..N {
        publisher
            .publish("order", Bytes::copy_from_slice(&index.to_be_bytes()))
            .unwrap_or_else(|error| panic!("publish {index}: {error}"));
    }
    publisher.flush().await.unwrap();
    for expected in 0..N {
        let message = next(&mut subscription).await;
        let index = u32::from_be_bytes(message.payload[..].try_into().unwrap());
        assert_eq!(index, expected);
    }
    let stats = subscriber.stats();
    assert_eq!((stats.received, stats.dropped_inbound), (N as u64, 0));
    assert_eq!(publisher.stats().dropped_outbound, 0);
}

#[tokio::test]
async fn payloads_up_to_max_payload_arrive_and_larger_are_refused() {
    let server = NatsServer::start();
    let subscriber = connect(&server).await;
    let publisher = connect(&server).await;
    let max = publisher.server_max_payload();
    assert_eq!(max, 1024 * 1024, "nats-server's default");
    let mut subscription = subscriber.subscribe("big").await.unwrap();

    let largest: Bytes = (0..max).map(|index| (index % 251) as u8).collect();
    publisher.publish("big", largest.clone()).unwrap();
    assert_eq!(next(&mut subscription).await.payload, largest);

    let too_large = Bytes::from(vec![0; max + 1]);
    match publisher.publish("big", too_large) {
        Err(BusError::TooLarge { size, max: limit }) => assert_eq!((size, limit), (max + 1, max)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(publisher.is_connected());
}

#[tokio::test]
async fn bad_subjects_are_refused_before_the_wire() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    for subject in ["", "a b", "a..b", "a\r\nPUB x 1", "a.*"] {
        assert!(
            matches!(
                client.publish(subject, Bytes::new()),
                Err(BusError::InvalidSubject(_))
            ),
            "{subject:?}"
        );
    }
    assert!(matches!(
        client.subscribe("a.>.b").await,
        Err(BusError::InvalidSubject(_))
    ));
    assert!(matches!(
        client.publish_with_reply("a", "r s", Bytes::new()),
        Err(BusError::InvalidSubject(_))
    ));
    client.flush().await.unwrap();
    assert_eq!(client.stats().published, 0);
}

#[tokio::test]
async fn dropping_the_last_client_ends_its_subscriptions() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let clone = client.clone();
    let mut subscription = client.subscribe("end").await.unwrap();
    drop(client);
    assert!(clone.is_connected(), "a clone keeps the connection");
    drop(clone);
    let ended = tokio::time::timeout(crate::support::PATIENCE, subscription.next()).await;
    assert!(matches!(ended, Ok(None)), "{ended:?}");
}

#[tokio::test]
async fn many_subscriptions_share_one_receiver_and_each_unsubscribes_on_drop() {
    let server = NatsServer::start();
    let subscriber = connect(&server).await;
    let publisher = connect(&server).await;
    let (sender, mut receiver) = tokio::sync::mpsc::channel(16);
    let first = subscriber
        .subscribe_into("topic.a", sender.clone())
        .unwrap();
    let second = subscriber
        .subscribe_into("topic.b", sender.clone())
        .unwrap();
    assert!(
        subscriber
            .subscribe_into("bad subject", sender.clone())
            .is_err()
    );
    // Not awaited by subscribe_into: a flush confirms the server has both.
    subscriber.flush().await.unwrap();
    publisher
        .publish("topic.a", Bytes::from_static(b"a1"))
        .unwrap();
    publisher
        .publish("topic.b", Bytes::from_static(b"b1"))
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        let message = tokio::time::timeout(std::time::Duration::from_secs(5), receiver.recv())
            .await
            .expect("a message within 5 s")
            .expect("the receiver is open");
        got.push((message.subject, message.payload));
    }
    got.sort();
    assert_eq!(
        got,
        [
            ("topic.a".to_string(), Bytes::from_static(b"a1")),
            ("topic.b".to_string(), Bytes::from_static(b"b1")),
        ]
    );
    drop(first);
    subscriber.flush().await.unwrap();
    publisher
        .publish("topic.a", Bytes::from_static(b"a2"))
        .unwrap();
    publisher
        .publish("topic.b", Bytes::from_static(b"b2"))
        .unwrap();
    let message = tokio::time::timeout(std::time::Duration::from_secs(5), receiver.recv())
        .await
        .expect("a message within 5 s")
        .expect("the receiver is open");
    assert_eq!(&message.payload[..], b"b2", "topic.a was unsubscribed");
    publisher.flush().await.unwrap();
    subscriber.flush().await.unwrap();
    assert!(
        receiver.try_recv().is_err(),
        "nothing from topic.a after the drop"
    );
    drop(second);
}

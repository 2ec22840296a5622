//! Request/reply against a real server.

use crate::support::{NatsServer, connect, next, options};
use bytes::Bytes;
use salam_bus::{BusError, Client};
use std::time::Duration;

#[tokio::test]
async fn a_request_gets_its_reply() {
    let server = NatsServer::start();
    let requester = connect(&server).await;
    let responder = connect(&server).await;
    let mut service = responder.subscribe("service.upper").await.unwrap();
    let answering = tokio::spawn(async move {
        for _ in 0..2 {
            let request = next(&mut service).await;
            assert!(request.reply.as_deref().unwrap().starts_with("_INBOX."));
            let answer = String::from_utf8_lossy(&request.payload).to_uppercase();
            responder.respond(&request, Bytes::from(answer)).unwrap();
        }
        responder
    });
    let (first, second) = tokio::join!(
        requester.request("service.upper", Bytes::from_static(b"salam")),
        requester.request("service.upper", Bytes::from_static(b"hello")),
    );
    assert_eq!(&first.unwrap().payload[..], b"SALAM");
    assert_eq!(&second.unwrap().payload[..], b"HELLO");
    let responder = answering.await.unwrap();

    let no_reply_subject = salam_bus::Message {
        subject: "x".into(),
        reply: None,
        payload: Bytes::new(),
    };
    assert!(matches!(
        responder.respond(&no_reply_subject, Bytes::new()),
        Err(BusError::InvalidSubject(_))
    ));
}

#[tokio::test]
async fn a_request_nobody_listens_to_is_no_responders() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let result = client
        .request("nobody.here", Bytes::from_static(b"?"))
        .await;
    assert!(matches!(result, Err(BusError::NoResponders)), "{result:?}");
}

#[tokio::test]
async fn a_request_nobody_answers_times_out() {
    let server = NatsServer::start();
    let quick = salam_bus::Options {
        request_timeout: Duration::from_millis(300),
        ..options(&server.url())
    };
    let requester = Client::connect(quick).await.unwrap();
    let silent = connect(&server).await;
    let mut listening = silent.subscribe("silent").await.unwrap();
    let result = requester.request("silent", Bytes::from_static(b"?")).await;
    assert!(matches!(result, Err(BusError::Timeout)), "{result:?}");
    // It did reach the subscriber, which just did not answer.
    assert!(next(&mut listening).await.reply.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_each_get_their_own_reply() {
    const N: usize = 200;
    let server = NatsServer::start();
    let requester = connect(&server).await;
    let responder = connect(&server).await;
    let mut service = responder.subscribe("service.echo").await.unwrap();
    tokio::spawn(async move {
        while let Some(request) = service.next().await {
            let _ = responder.respond(&request, request.payload.clone());
        }
    });
    let mut requests = tokio::task::JoinSet::new();
    for index in 0..N {
        let requester = requester.clone();
        requests.spawn(async move {
            let payload = Bytes::from(index.to_string());
            let reply = requester
                .request("service.echo", payload.clone())
                .await
                .unwrap();
            assert_eq!(reply.payload, payload);
        });
    }
    let mut n_answered = 0;
    while let Some(result) = requests.join_next().await {
        result.unwrap();
        n_answered += 1;
    }
    assert_eq!(n_answered, N);
}

//! Several hubs writing to one PostgreSQL database at once (issue 13), PostgreSQL's
//! alone. Two hubs' writer batches can lock the same conversation rows in opposite
//! orders; PostgreSQL then aborts one of them with `deadlock_detected`. The writer
//! retries such a batch whole, so no caller sees the deadlock: the first test makes one
//! happen for certain (a third session holds the rows until both batches wait on them),
//! the second lets two hubs append and change states in opposite orders and checks
//! that every log stays gap-free with each client id once.

use salam_protocol::{Author, AuthorKind, ConversationState, EventCode, MessageKind, SystemEvent};
use salam_store::postgres::scratch::ScratchDatabase;
use salam_store::{
    NewMessage, PostgresOptions, PostgresStore, Store, StoreError, Transition, Transitioned,
    VisitorUpdate,
};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Two PostgreSQL stores (two hubs) on one scratch database, with `max_batch` writes
/// in a batch at most.
async fn two_hubs(max_batch: usize) -> (ScratchDatabase, Arc<dyn Store>, Arc<dyn Store>) {
    tokio::task::spawn_blocking(move || {
        let database =
            ScratchDatabase::create().expect("a scratch database (SALAM_TEST_POSTGRES_URL)");
        let options = PostgresOptions {
            max_batch,
            ..PostgresOptions::default()
        };
        let first = PostgresStore::connect(database.url(), options.clone()).expect("hub one");
        let second = PostgresStore::connect(database.url(), options).expect("hub two");
        let first: Arc<dyn Store> = Arc::new(first);
        let second: Arc<dyn Store> = Arc::new(second);
        (database, first, second)
    })
    .await
    .expect("connect task")
}

/// A site, its visitor `v_1` and `count` conversations with the bot.
async fn conversations(store: &dyn Store, count: usize) -> Vec<String> {
    let site = store.create_site("Shop", &["*".into()]).await.unwrap();
    store
        .touch_visitor("v_1", &site.id, VisitorUpdate::default(), 1)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for at in 0..count {
        let conversation = store
            .create_conversation(&site.id, "v_1", ConversationState::Bot, at as i64 + 1)
            .await
            .unwrap();
        ids.push(conversation.id);
    }
    ids
}

/// A visitor's text with a client id.
fn text(conversation: &str, client_id: &str) -> NewMessage {
    NewMessage {
        conversation: conversation.to_owned(),
        kind: MessageKind::Text,
        author: Author {
            kind: AuthorKind::Visitor,
            id: Some("v_1".into()),
            name: None,
        },
        text: format!("text {client_id}"),
        client_id: Some(client_id.to_owned()),
        quick_replies: Vec::new(),
        rule: None,
        event: None,
        at: 2,
        only_in: None,
    }
}

/// A change to `queued` that always applies (from the bot or the queue) and writes a
/// system line, so it locks the conversation row and takes a sequence number.
fn requeue(conversation: &str) -> Transition {
    let mut change = Transition::new(
        conversation,
        &[ConversationState::Bot, ConversationState::Queued],
        ConversationState::Queued,
        3,
    );
    change.event = Some(SystemEvent::new(EventCode::Requeued, &[]));
    change
}

/// One queued write, resolved with the sequence number it took.
type Pending = Pin<Box<dyn Future<Output = Result<u64, StoreError>> + Send>>;

/// Queues an append (unguarded, the hot path) or a transition (in a savepoint) and
/// returns at once with its answer.
async fn queue(store: &dyn Store, conversation: &str, client_id: &str, append: bool) -> Pending {
    if append {
        let answer = store
            .append_queued(text(conversation, client_id))
            .await
            .unwrap();
        Box::pin(async move { answer.await.map(|appended| appended.message.seq) })
    } else {
        let answer = store
            .transition_queued(requeue(conversation))
            .await
            .unwrap();
        Box::pin(async move {
            match answer.await? {
                Transitioned::Applied {
                    event: Some(event), ..
                } => Ok(event.seq),
                other => panic!("a requeue from the bot or the queue applies: {other:?}"),
            }
        })
    }
}

/// A third session on the database, outside both hubs: it holds row locks so the
/// hubs' writers wait where the test wants them. Its blocking client runs off the
/// runtime's threads (and is dropped off them too).
#[derive(Clone)]
struct Session(Arc<Client>);

struct Client(Mutex<Option<pg::Client>>);

impl Drop for Client {
    fn drop(&mut self) {
        let client = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        let _ = std::thread::spawn(move || drop(client)).join();
    }
}

impl Session {
    async fn open(url: &str) -> Session {
        let url = url.to_owned();
        let client = tokio::task::spawn_blocking(move || {
            pg::Client::connect(&url, pg::NoTls).expect("a third session")
        })
        .await
        .unwrap();
        Session(Arc::new(Client(Mutex::new(Some(client)))))
    }

    /// Runs `work` on the session's client, off the runtime's threads.
    async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut pg::Client) -> Result<T, pg::Error> + Send + 'static,
    ) -> T {
        let session = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let mut client = session.0.lock().unwrap();
            work(client.as_mut().expect("open"))
        })
        .await
        .unwrap()
        .unwrap_or_else(|err| panic!("the third session's statement failed: {err}"))
    }

    async fn run(&self, sql: String) {
        self.with(move |client| client.batch_execute(&sql)).await
    }

    /// Begins a transaction that locks `ids`' conversation rows until [`Session::run`]
    /// commits it.
    async fn lock(&self, ids: &[&str]) {
        let list = ids
            .iter()
            .map(|id| format!("'{id}'"))
            .collect::<Vec<_>>()
            .join(", ");
        self.run(format!(
            "BEGIN; SELECT 1 FROM conversations WHERE id IN ({list}) FOR UPDATE"
        ))
        .await;
    }

    /// Waits until exactly `count` sessions of the database wait for a lock.
    async fn until_waiting(&self, count: i64) {
        for _ in 0..4000 {
            let waiting = self
                .with(|client| {
                    client
                        .query_one(
                            "SELECT count(*) FROM pg_stat_activity \
                             WHERE datname = current_database() AND wait_event_type = 'Lock'",
                            &[],
                        )
                        .map(|row| row.get::<_, i64>(0))
                })
                .await;
            if waiting == count {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        panic!("{count} writers never waited for the third session's locks");
    }
}

/// The batches the two hubs' writers retried after a deadlock, together.
fn retried(one: &dyn Store, two: &dyn Store) -> u64 {
    one.metrics().retried_batches.load(Ordering::Relaxed)
        + two.metrics().retried_batches.load(Ordering::Relaxed)
}

/// Hub one's batch writes conversation A then B, hub two's B then A, and a third
/// session holds both rows until each batch waits on its first: when it lets go, each
/// batch takes its first row and waits for the other's, a deadlock for certain.
/// PostgreSQL aborts one batch; its writer retries it whole and every write commits,
/// for appends (unguarded) and for transitions (in savepoints) alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_between_two_hubs_batches_is_retried_and_every_write_commits() {
    let (database, one, two) = two_hubs(64).await;
    let ids = conversations(&*one, 4).await;
    let (a, b, plug_one, plug_two) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    let plugs = Session::open(database.url()).await;
    let rows = Session::open(database.url()).await;
    let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
    // Round 1: appends only; round 2: transitions only; round 3: both.
    for (round, kinds) in [[true, true], [false, false], [true, false]]
        .into_iter()
        .enumerate()
    {
        plugs.lock(&[plug_one, plug_two]).await;
        rows.lock(&[a, b]).await;
        // Each writer first waits on its plug, so the two writes queued behind it
        // make up its next batch together.
        let first_plug = queue(&*one, plug_one, &format!("p1-{round}"), true).await;
        plugs.until_waiting(1).await;
        let one_a = queue(&*one, a, &format!("1a-{round}"), kinds[0]).await;
        let one_b = queue(&*one, b, &format!("1b-{round}"), kinds[1]).await;
        let second_plug = queue(&*two, plug_two, &format!("p2-{round}"), true).await;
        plugs.until_waiting(2).await;
        let two_b = queue(&*two, b, &format!("2b-{round}"), kinds[0]).await;
        let two_a = queue(&*two, a, &format!("2a-{round}"), kinds[1]).await;
        plugs.run("COMMIT".into()).await;
        first_plug.await.unwrap();
        second_plug.await.unwrap();
        // Hub one's batch waits on A, hub two's on B.
        rows.until_waiting(2).await;
        let retried_before = retried(&*one, &*two);
        rows.run("COMMIT".into()).await;
        let (one_a, one_b, two_b, two_a) = tokio::join!(one_a, one_b, two_b, two_a);
        for (name, answer) in [
            ("hub one, A", one_a),
            ("hub one, B", one_b),
            ("hub two, B", two_b),
            ("hub two, A", two_a),
        ] {
            if let Err(err) = answer {
                panic!("round {round}: {name} failed: {err}");
            }
        }
        assert!(
            retried(&*one, &*two) > retried_before,
            "round {round}: the deadlock was retried"
        );
        for id in [a, b] {
            *expected.entry(id).or_default() += 2;
        }
        for id in [plug_one, plug_two] {
            *expected.entry(id).or_default() += 1;
        }
    }
    one.flush().await.unwrap();
    two.flush().await.unwrap();
    for (id, count) in expected {
        let stored = two.messages_after(id, 0, 100).await.unwrap();
        let seqs: Vec<u64> = stored.iter().map(|message| message.seq).collect();
        assert_eq!(
            seqs,
            (1..=count).collect::<Vec<_>>(),
            "{id}: each write once, without a gap"
        );
        let found = one.conversation(id).await.unwrap().unwrap();
        assert_eq!(found.last_seq, count);
    }
}

/// Two hubs write to the same conversations at once, hub one in ascending order and
/// hub two in descending order: appends (a third of them sharing client ids between
/// the hubs, some resent) and transitions with their system line. Every write
/// answers `Ok`, each log is 1..N without a gap, each client id is stored once and
/// every answer for it names the stored row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_writing_in_opposite_orders_keep_every_log_gap_free() {
    let (_database, one, two) = two_hubs(32).await;
    let ids = Arc::new(conversations(&*one, 6).await);
    const ROUNDS: usize = 40;
    let mut tasks = Vec::new();
    for (hub, store) in [(0usize, one.clone()), (1, two.clone())] {
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            let mut order: Vec<usize> = (0..ids.len()).collect();
            if hub == 1 {
                order.reverse();
            }
            let mut pending = Vec::new();
            for round in 0..ROUNDS {
                for &index in &order {
                    let id = &ids[index];
                    let client_id = if round % 3 == 0 {
                        format!("s{index}-{round}")
                    } else {
                        format!("h{hub}-{index}-{round}")
                    };
                    let append = round % 5 != 4;
                    let answer = queue(&*store, id, &client_id, append).await;
                    pending.push((index, append.then_some(client_id.clone()), answer));
                    if append && round % 7 == 6 {
                        // A resend of this round's message, as a client that lost the ack.
                        let resend = queue(&*store, id, &client_id, true).await;
                        pending.push((index, Some(client_id), resend));
                    }
                }
            }
            let mut answers = Vec::new();
            for (index, client_id, answer) in pending {
                match answer.await {
                    Ok(seq) => answers.push((index, client_id, seq)),
                    Err(err) => panic!("hub {hub}: a write failed: {err}"),
                }
            }
            answers
        }));
    }
    // Per conversation: each client id's answers, and the transitions' sequence numbers.
    let mut texts: Vec<BTreeMap<String, BTreeSet<u64>>> = vec![BTreeMap::new(); ids.len()];
    let mut events: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); ids.len()];
    for task in tasks {
        for (index, client_id, seq) in task.await.unwrap() {
            match client_id {
                Some(client_id) => {
                    texts[index].entry(client_id).or_default().insert(seq);
                }
                None => assert!(events[index].insert(seq), "two events got {seq}"),
            }
        }
    }
    one.flush().await.unwrap();
    two.flush().await.unwrap();
    for (index, id) in ids.iter().enumerate() {
        let stored = one.messages_after(id, 0, 10_000).await.unwrap();
        let count = (texts[index].len() + events[index].len()) as u64;
        let seqs: Vec<u64> = stored.iter().map(|message| message.seq).collect();
        assert_eq!(
            seqs,
            (1..=count).collect::<Vec<_>>(),
            "{id}: gap-free, one row per client id and per transition"
        );
        for (client_id, answered) in &texts[index] {
            assert_eq!(
                answered.len(),
                1,
                "{id}: every answer for {client_id} names one row: {answered:?}"
            );
            let seq = *answered.first().unwrap();
            let row = &stored[seq as usize - 1];
            assert_eq!(row.client_id.as_deref(), Some(client_id.as_str()));
        }
        for seq in &events[index] {
            assert_eq!(stored[*seq as usize - 1].kind, MessageKind::Event);
        }
        let found = two.conversation(id).await.unwrap().unwrap();
        assert_eq!(found.last_seq, count);
        assert_eq!(found.state, ConversationState::Queued);
    }
}

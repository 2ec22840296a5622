//! Several hubs writing to one PostgreSQL database at once (issue 13), PostgreSQL's
//! alone. Two hubs' writer batches can lock the same rows in opposite orders, and
//! PostgreSQL then aborts one of them with `deadlock_detected`. The writer locks a
//! batch's conversation rows up front in one order, so appends and transitions do not
//! deadlock; for other rows it runs an aborted batch again whole, so no caller sees
//! the deadlock. The first test sets both up with a third session that holds the rows
//! until both hubs' batches wait on them; the second lets two hubs append (with shared
//! client ids and resends) and change states in opposite orders and checks that every
//! log stays gap-free with each client id once.

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

    /// Begins a transaction that locks `ids`' rows of `table` until [`Session::run`]
    /// commits it.
    async fn lock(&self, table: &str, ids: &[&str]) {
        let list = ids
            .iter()
            .map(|id| format!("'{id}'"))
            .collect::<Vec<_>>()
            .join(", ");
        self.run(format!(
            "BEGIN; SELECT 1 FROM {table} WHERE id IN ({list}) FOR NO KEY UPDATE"
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

/// One write of the deterministic rounds.
#[derive(Clone, Copy, Debug)]
enum Write<'a> {
    /// An append to the conversation (unguarded).
    Append(&'a str),
    /// The same append as the hub's write at this index in the round, again.
    Resend(&'a str, usize),
    /// A transition of the conversation with its system line (in a savepoint).
    Requeue(&'a str),
    /// A visitor seen again (in a savepoint): locks the visitor's row, which the
    /// writer does not lock up front.
    Touch(&'a str),
}

/// Queues `write` on `store`'s writer now and returns its answer to await later.
async fn queue_write(
    store: &Arc<dyn Store>,
    site_id: &str,
    write: Write<'_>,
    tag: &str,
) -> Pending {
    match write {
        Write::Append(id) | Write::Resend(id, _) => queue(&**store, id, tag, true).await,
        Write::Requeue(id) => queue(&**store, id, tag, false).await,
        Write::Touch(visitor) => {
            let (store, site_id, visitor) = (store.clone(), site_id.to_owned(), visitor.to_owned());
            // Unconstrained: the runtime's budget never makes the first poll wait.
            let mut touch: Pending = Box::pin(tokio::task::unconstrained(async move {
                store
                    .touch_visitor(&visitor, &site_id, VisitorUpdate::default(), 9)
                    .await
                    .map(|()| 0)
            }));
            // Polled once, the write is in the writer's queue (the queue has room) and
            // the future waits for its answer.
            let mut context = std::task::Context::from_waker(std::task::Waker::noop());
            match touch.as_mut().poll(&mut context) {
                std::task::Poll::Ready(answer) => Box::pin(std::future::ready(answer)),
                std::task::Poll::Pending => touch,
            }
        }
    }
}

/// The messages `write` adds to its conversation.
fn lines(write: Write<'_>) -> Option<&str> {
    match write {
        Write::Append(id) | Write::Requeue(id) => Some(id),
        Write::Resend(..) | Write::Touch(_) => None,
    }
}

/// One round: the table and rows the third session holds, then each hub's writes.
type Round<'a> = (&'static str, [&'a str; 2], Vec<Write<'a>>, Vec<Write<'a>>);

/// A round on conversations `a` and `b`: hub one writes `one`, hub two the same in the
/// opposite order.
fn opposite<'a>(a: &'a str, b: &'a str, one: [Write<'a>; 2]) -> Round<'a> {
    ("conversations", [a, b], one.to_vec(), vec![one[1], one[0]])
}

/// Hub one's batch writes A then B, hub two's B then A, and a third session holds
/// both rows until each batch waits on them; then it lets go at once.
///
/// For conversations (appends, transitions, both), each writer locks its batch's
/// conversation rows up front in one order: both batches wait on the same first row
/// and run one after the other, no deadlock, nothing retried. For visitors (rows the
/// writer does not lock up front), with an append and a transition between them, each
/// batch takes its first visitor's row and waits for the other's, a deadlock:
/// PostgreSQL aborts one batch, its writer runs it again whole (the append and the
/// transition too), and every write commits once. Each log is gap-free afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opposite_lock_orders_never_fail_a_write_and_deadlocks_are_retried() {
    let (database, one, two) = two_hubs(64).await;
    let ids = conversations(&*one, 4).await;
    let site_id = one.conversation(&ids[0]).await.unwrap().unwrap().site_id;
    one.touch_visitor("v_2", &site_id, VisitorUpdate::default(), 1)
        .await
        .unwrap();
    let (a, b, plug_one, plug_two) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    let plugs = Session::open(database.url()).await;
    let rows = Session::open(database.url()).await;
    let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
    // Once the third session lets go, the first batch to wake may take both visitors'
    // rows before the other wakes (PostgreSQL lets it pass the waiter): no deadlock
    // that time. So the visitors' round runs until one deadlocks (about every other
    // time), 30 times at most.
    // Without the lock order, such a round deadlocks about every other time (see
    // below): three times each.
    let mut rounds = Vec::new();
    for _ in 0..3 {
        rounds.extend([
            opposite(a, b, [Write::Append(a), Write::Append(b)]),
            opposite(a, b, [Write::Requeue(a), Write::Requeue(b)]),
            opposite(a, b, [Write::Append(a), Write::Requeue(b)]),
        ]);
    }
    // Each hub also appends to and changes a conversation of its own between the two
    // visitors: the batch run again holds an unguarded append and a transition.
    let visitors_round: Round<'_> = (
        "visitors",
        ["v_1", "v_2"],
        vec![
            Write::Touch("v_1"),
            Write::Append(a),
            Write::Requeue(a),
            Write::Resend(a, 1),
            Write::Touch("v_2"),
        ],
        vec![
            Write::Touch("v_2"),
            Write::Append(b),
            Write::Requeue(b),
            Write::Resend(b, 1),
            Write::Touch("v_1"),
        ],
    );
    rounds.extend(std::iter::repeat_n(visitors_round, 30));
    let mut deadlocked = false;
    for (round, (table, locked, writes_one, writes_two)) in rounds.into_iter().enumerate() {
        let visitors = table == "visitors";
        if visitors && deadlocked {
            break;
        }
        plugs.lock("conversations", &[plug_one, plug_two]).await;
        rows.lock(table, &locked).await;
        // Each writer first waits on its plug, so the writes queued behind it make up
        // its next batch together.
        let mut answers = Vec::new();
        let mut plugged = Vec::new();
        for (hub, store, plug_id, writes) in [
            (1, &one, plug_one, &writes_one),
            (2, &two, plug_two, &writes_two),
        ] {
            plugged.push(queue(&**store, plug_id, &format!("p{hub}-{round}"), true).await);
            plugs.until_waiting(hub).await;
            for (index, write) in writes.iter().enumerate() {
                let original = match write {
                    Write::Resend(_, original) => *original,
                    _ => index,
                };
                let tag = format!("{hub}-{round}-{original}");
                let answer = queue_write(store, &site_id, *write, &tag).await;
                answers.push((hub, index, *write, answer));
            }
        }
        plugs.run("COMMIT".into()).await;
        for plug in plugged {
            if let Err(err) = plug.await {
                panic!("round {round}: a plug failed: {err}");
            }
        }
        // Both batches wait on the third session's rows.
        rows.until_waiting(2).await;
        let retried_before = retried(&*one, &*two);
        rows.run("COMMIT".into()).await;
        let mut seqs: BTreeMap<(i64, usize), u64> = BTreeMap::new();
        for (hub, index, write, answer) in answers {
            let seq = answer.await.unwrap_or_else(|err| {
                panic!("round {round} ({table}): hub {hub}, {write:?} failed: {err}")
            });
            if let Write::Resend(_, original) = write {
                assert_eq!(
                    seqs[&(hub, original)],
                    seq,
                    "round {round}: hub {hub}'s resend is answered with the original"
                );
            }
            seqs.insert((hub, index), seq);
        }
        let retried_now = retried(&*one, &*two) - retried_before;
        if visitors {
            deadlocked = retried_now > 0;
        } else {
            assert_eq!(
                retried_now, 0,
                "round {round}: the conversations were locked in one order, no deadlock"
            );
        }
        for id in writes_one
            .iter()
            .chain(&writes_two)
            .filter_map(|write| lines(*write))
        {
            *expected.entry(id).or_default() += 1;
        }
        for id in [plug_one, plug_two] {
            *expected.entry(id).or_default() += 1;
        }
    }
    assert!(deadlocked, "the visitors' rounds never deadlocked");
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
    let touched = one.visitor("v_2").await.unwrap().unwrap();
    assert_eq!(
        touched.last_seen, 9,
        "the retried visitors' batch committed"
    );
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

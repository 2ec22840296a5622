//! Schema migrations, applied in order and recorded in `PRAGMA user_version`.

use crate::StoreError;
use crate::sqlite::map_err;
use rusqlite::Connection;

/// Each entry moves the schema from version `index` to `index + 1`. Never edit an entry
/// that has shipped; append a new one.
const MIGRATIONS: &[&str] = &[
    FIRST_VERSION,
    SECOND_VERSION,
    THIRD_VERSION,
    FOURTH_VERSION,
    FIFTH_VERSION,
    API_VERSION,
    WEBHOOKS_VERSION,
    EMAIL_VERSION,
    VISITOR_EVENTS_VERSION,
    KEY_ACCOUNTS_VERSION,
    INDEXES_VERSION,
];

/// 1: sites, agents, sessions, visitors, conversations, messages.
pub(crate) const FIRST_VERSION: &str = r#"
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE sites (
        id         TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        key        TEXT NOT NULL UNIQUE,
        origins    TEXT NOT NULL,          -- JSON array of origins
        settings   TEXT NOT NULL DEFAULT '{}', -- JSON, see the hub's SiteSettings
        identity_secret TEXT NOT NULL,     -- signs identify() hashes (the site's backend has it)
        created_at INTEGER NOT NULL
    );
    CREATE TABLE agents (
        id            TEXT PRIMARY KEY,
        email         TEXT NOT NULL UNIQUE COLLATE NOCASE,
        name          TEXT NOT NULL,
        role          TEXT NOT NULL CHECK (role IN ('agent', 'admin')),
        password_hash TEXT NOT NULL,
        disabled      INTEGER NOT NULL DEFAULT 0,
        capacity      INTEGER,             -- concurrent chats; NULL: the hub's default
        departments   TEXT NOT NULL DEFAULT '[]', -- JSON array
        created_at    INTEGER NOT NULL
    );
    CREATE TABLE agent_sites (
        agent_id TEXT NOT NULL REFERENCES agents(id),
        site_id  TEXT NOT NULL REFERENCES sites(id),
        PRIMARY KEY (agent_id, site_id)
    ) WITHOUT ROWID;
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,       -- SHA-256 of the session token, never the token
        agent_id   TEXT NOT NULL REFERENCES agents(id),
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE visitors (
        id         TEXT PRIMARY KEY,
        site_id    TEXT NOT NULL REFERENCES sites(id),
        name       TEXT,
        email      TEXT,
        locale     TEXT,
        page_url   TEXT,
        page_title TEXT,
        referrer   TEXT,
        user_agent TEXT,
        external_id TEXT,                  -- the site's user id, once identify() verified it
        phone      TEXT,
        first_seen INTEGER NOT NULL,
        last_seen  INTEGER NOT NULL
    );
    CREATE TABLE conversations (
        id         TEXT PRIMARY KEY,
        site_id    TEXT NOT NULL REFERENCES sites(id),
        visitor_id TEXT NOT NULL REFERENCES visitors(id),
        state      TEXT NOT NULL CHECK (state IN ('bot', 'queued', 'assigned', 'closed')),
        agent_id   TEXT REFERENCES agents(id),
        last_seq   INTEGER NOT NULL DEFAULT 0,
        department TEXT NOT NULL DEFAULT '',
        priority   INTEGER NOT NULL DEFAULT 0,
        handoff_reason TEXT,               -- why the bot handed off (requested, complaint, ...)
        handed_off_at  INTEGER,            -- NULL: the bot settled it (deflection)
        first_response_at INTEGER,         -- first agent text after the handoff
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        closed_at  INTEGER
    );
    CREATE INDEX conversations_by_visitor ON conversations (site_id, visitor_id, state);
    -- Not on updated_at: that changes with every message and would cost an index write.
    CREATE INDEX conversations_by_site ON conversations (site_id, state);
    CREATE TABLE messages (
        conversation_id TEXT NOT NULL REFERENCES conversations(id),
        seq             INTEGER NOT NULL,
        kind            TEXT NOT NULL CHECK (kind IN ('text', 'note', 'event')),
        author_kind     TEXT NOT NULL,
        author_id       TEXT NOT NULL DEFAULT '',
        author_name     TEXT,
        text            TEXT NOT NULL,
        at              INTEGER NOT NULL,
        client_id       TEXT,
        quick_replies   TEXT,              -- JSON, only for bot answers
        rule            TEXT,              -- the bot rule that produced a bot line
        PRIMARY KEY (conversation_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE bot_turns (
        id              INTEGER PRIMARY KEY,
        conversation_id TEXT NOT NULL REFERENCES conversations(id),
        site_id         TEXT NOT NULL,
        rule_id         TEXT,
        intent          TEXT NOT NULL,     -- the intent answered or handed off, 'clarify' or 'none'
        decision        TEXT NOT NULL CHECK (decision IN ('answer', 'clarify', 'handoff', 'fallback')),
        score           REAL NOT NULL,
        lang            TEXT NOT NULL,
        question        TEXT NOT NULL,     -- the visitor's text (for the unanswered list)
        at              INTEGER NOT NULL
    );
    CREATE INDEX bot_turns_by_conversation ON bot_turns (conversation_id, id);
    CREATE INDEX bot_turns_by_site ON bot_turns (site_id, at);
    CREATE TABLE offline_requests (
        id              INTEGER PRIMARY KEY,
        site_id         TEXT NOT NULL REFERENCES sites(id),
        visitor_id      TEXT NOT NULL,
        conversation_id TEXT,
        name            TEXT,
        email           TEXT,
        phone           TEXT,
        message         TEXT,
        created_at      INTEGER NOT NULL,
        done_at         INTEGER
    );
    CREATE TABLE ratings (
        conversation_id TEXT PRIMARY KEY REFERENCES conversations(id),
        score           INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
        comment         TEXT,
        at              INTEGER NOT NULL
    );
    CREATE TABLE alerts (
        id              INTEGER PRIMARY KEY,
        site_id         TEXT NOT NULL,
        conversation_id TEXT,
        kind            TEXT NOT NULL,     -- low_rating, ...
        detail          TEXT NOT NULL,
        at              INTEGER NOT NULL,
        acknowledged_at INTEGER
    );
    CREATE TABLE departments (
        name       TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE canned_responses (
        id         INTEGER PRIMARY KEY,
        shortcut   TEXT NOT NULL UNIQUE,
        text       TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX messages_by_client_id
        ON messages (conversation_id, author_kind, author_id, client_id)
        WHERE client_id IS NOT NULL;
    "#;

/// 2: the control plane: explicit "all sites" membership, the presence an agent chose,
/// and what a conversation's summary shows (when it joined its queue, unread visitor
/// messages, the last text).
pub(crate) const SECOND_VERSION: &str = r#"
    ALTER TABLE agents ADD COLUMN all_sites INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE agents ADD COLUMN presence TEXT NOT NULL DEFAULT 'online'
        CHECK (presence IN ('online', 'away'));
    -- Admins always worked on every site; keep that if one is demoted.
    UPDATE agents SET all_sites = 1 WHERE role = 'admin';
    ALTER TABLE conversations ADD COLUMN queued_at INTEGER;
    ALTER TABLE conversations ADD COLUMN unread INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE conversations ADD COLUMN preview TEXT;         -- first characters of the last text or note
    ALTER TABLE conversations ADD COLUMN preview_author TEXT;  -- its author kind
    ALTER TABLE conversations ADD COLUMN preview_at INTEGER;
    UPDATE conversations SET queued_at = updated_at WHERE state = 'queued';
    CREATE INDEX sessions_by_agent ON sessions (agent_id);
    "#;

/// 3: the hub's edges: sessions that end when idle, canned responses and departments
/// per site, one alert of a kind per conversation, one open offline request per
/// visitor, rotating identity secrets, and what a signed identity verified.
const THIRD_VERSION: &str = r#"
    ALTER TABLE sessions ADD COLUMN last_seen INTEGER NOT NULL DEFAULT 0;
    UPDATE sessions SET last_seen = created_at;

    -- Canned responses and departments belong to a site (each existing one is copied
    -- to every site, so nobody loses what they had).
    CREATE TABLE canned_per_site (
        id         INTEGER PRIMARY KEY,
        site_id    TEXT NOT NULL REFERENCES sites(id),
        shortcut   TEXT NOT NULL,
        text       TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        UNIQUE (site_id, shortcut)
    );
    INSERT INTO canned_per_site (site_id, shortcut, text, created_at)
        SELECT s.id, c.shortcut, c.text, c.created_at FROM canned_responses c CROSS JOIN sites s;
    DROP TABLE canned_responses;
    ALTER TABLE canned_per_site RENAME TO canned_responses;
    CREATE TABLE departments_per_site (
        site_id    TEXT NOT NULL REFERENCES sites(id),
        name       TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (site_id, name)
    ) WITHOUT ROWID;
    INSERT INTO departments_per_site (site_id, name, created_at)
        SELECT s.id, d.name, d.created_at FROM departments d CROSS JOIN sites s;
    DROP TABLE departments;
    ALTER TABLE departments_per_site RENAME TO departments;

    -- One alert of a kind per conversation.
    DELETE FROM alerts WHERE conversation_id IS NOT NULL
        AND id NOT IN (SELECT min(id) FROM alerts WHERE conversation_id IS NOT NULL
                       GROUP BY conversation_id, kind);
    CREATE UNIQUE INDEX alerts_one_per_conversation ON alerts (conversation_id, kind)
        WHERE conversation_id IS NOT NULL;

    -- One open offline request per visitor (a second one updates it).
    UPDATE offline_requests SET done_at = created_at WHERE done_at IS NULL
        AND id NOT IN (SELECT max(id) FROM offline_requests WHERE done_at IS NULL
                       GROUP BY site_id, visitor_id);
    CREATE UNIQUE INDEX offline_requests_one_open ON offline_requests (site_id, visitor_id)
        WHERE done_at IS NULL;

    -- A rotated identity secret still verifies for a grace period.
    ALTER TABLE sites ADD COLUMN previous_identity_secret TEXT;
    ALTER TABLE sites ADD COLUMN identity_secret_rotated_at INTEGER;
    -- Which of the visitor's details a signed identity vouched for (JSON array of
    -- `name`, `email`), and its signed attributes (JSON object).
    ALTER TABLE visitors ADD COLUMN verified TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE visitors ADD COLUMN attributes TEXT;
"#;

/// 4: operations (issue 18): anonymous report facts that outlive the conversations the
/// retention sweep or an erasure deletes, the audit log, and the indexes those deletions
/// need so that each batch stays small.
const FOURTH_VERSION: &str = r#"
    -- One row per deleted conversation, so reports keep their figures: no id, no
    -- visitor, no text; the creation time rounded down to the hour, the other times
    -- as durations (what the reports compute from them).
    CREATE TABLE report_facts (
        id                INTEGER PRIMARY KEY,
        site_id           TEXT NOT NULL,
        created_hour      INTEGER NOT NULL, -- created_at rounded down to the hour (ms)
        had_bot           INTEGER NOT NULL, -- the bot took at least one turn
        deflected         INTEGER NOT NULL, -- settled by the bot: answered, never handed off
        handed_off        INTEGER NOT NULL,
        handoff_reason    TEXT,
        first_response_ms INTEGER,          -- first agent text after the hand-off
        resolution_ms     INTEGER,          -- creation to close
        score             INTEGER,          -- the rating, without its comment
        unanswered        INTEGER NOT NULL  -- bot turns that fell back or asked back
    );
    CREATE INDEX report_facts_by_site ON report_facts (site_id, created_hour);
    -- Who erased or exported what, and when; what the retention sweep deleted. Never
    -- personal data: visitor ids (random), counts, the kind of selector, not its value.
    CREATE TABLE audit_log (
        id      INTEGER PRIMARY KEY,
        at      INTEGER NOT NULL,
        actor   TEXT NOT NULL,             -- agent:ID (e-mail), cli:USER, retention
        action  TEXT NOT NULL,             -- visitor.erase, visitor.export, retention.delete
        subject TEXT NOT NULL,             -- a visitor id, a site id
        detail  TEXT NOT NULL DEFAULT '{}' -- JSON
    );
    -- The retention sweep takes the oldest closed conversations of a site.
    CREATE INDEX conversations_closed ON conversations (site_id, closed_at)
        WHERE state = 'closed';
    -- Deleting a conversation deletes its alerts and callbacks; an erasure finds a
    -- visitor by the site's user id and their callbacks.
    CREATE INDEX alerts_by_conversation ON alerts (conversation_id)
        WHERE conversation_id IS NOT NULL;
    CREATE INDEX offline_requests_by_conversation ON offline_requests (conversation_id)
        WHERE conversation_id IS NOT NULL;
    CREATE INDEX offline_requests_by_visitor ON offline_requests (visitor_id);
    CREATE INDEX visitors_by_external_id ON visitors (external_id)
        WHERE external_id IS NOT NULL;
    "#;

/// 5: states after a reload (issue 15): the code and params of an event line, so that
/// clients render it in their reader's language (lines written before have none); when
/// the contact form was asked for in a conversation and not answered yet.
const FIFTH_VERSION: &str = r#"
    ALTER TABLE messages ADD COLUMN event TEXT; -- JSON {"code", "params"} of a system line
    ALTER TABLE conversations ADD COLUMN contact_asked_at INTEGER; -- NULL once answered
    "#;

/// The REST API v1 (issue 17): API tokens per site (only a SHA-256 of each token is
/// kept), contacts with custom attributes, and the history of attribute changes.
const API_VERSION: &str = r#"
    CREATE TABLE api_tokens (
        id           TEXT PRIMARY KEY,
        site_id      TEXT NOT NULL REFERENCES sites(id),
        name         TEXT NOT NULL,
        scope        TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
        token_hash   TEXT NOT NULL UNIQUE,  -- SHA-256 of the token, never the token
        created_by   TEXT,                  -- the admin who created it
        created_at   INTEGER NOT NULL,
        last_used_at INTEGER,
        revoked_at   INTEGER
    );
    CREATE INDEX api_tokens_by_site ON api_tokens (site_id, created_at);
    CREATE TABLE contacts (
        id          TEXT PRIMARY KEY,
        site_id     TEXT NOT NULL REFERENCES sites(id),
        external_id TEXT,                   -- the site's user id (as identify() gives it)
        email       TEXT,
        name        TEXT,
        attributes  TEXT NOT NULL DEFAULT '{}', -- JSON object of custom attributes
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX contacts_by_external_id ON contacts (site_id, external_id)
        WHERE external_id IS NOT NULL;
    CREATE INDEX contacts_by_email ON contacts (site_id, email COLLATE NOCASE);
    CREATE TABLE contact_attribute_changes (
        id         INTEGER PRIMARY KEY,
        contact_id TEXT NOT NULL REFERENCES contacts(id),
        key        TEXT NOT NULL,
        old_value  TEXT,                    -- JSON; NULL: the key was absent
        new_value  TEXT,                    -- JSON; NULL: the key was removed
        changed_by TEXT NOT NULL,           -- "token:ID" or "agent:ID"
        at         INTEGER NOT NULL
    );
    CREATE INDEX contact_attribute_changes_by_contact
        ON contact_attribute_changes (contact_id, id);
    "#;

/// Webhooks (issue 17): endpoints per site and the durable outbox of deliveries (one
/// row per event and endpoint, holding the exact bytes that are signed and sent).
pub(crate) const WEBHOOKS_VERSION: &str = r#"
    CREATE TABLE webhook_endpoints (
        id                    TEXT PRIMARY KEY,
        site_id               TEXT NOT NULL,
        url                   TEXT NOT NULL,
        events                TEXT NOT NULL,         -- JSON array of event types
        include_notes         INTEGER NOT NULL DEFAULT 0,
        enabled               INTEGER NOT NULL DEFAULT 1,
        secret                TEXT NOT NULL,
        previous_secret       TEXT,
        previous_expires_at   INTEGER,               -- ms; the previous secret signs until then
        created_by            TEXT NOT NULL,
        created_at            INTEGER NOT NULL,
        consecutive_failures  INTEGER NOT NULL DEFAULT 0,
        failing_since         INTEGER,               -- ms of the first failure in a row
        disabled_reason       TEXT
    );
    CREATE INDEX webhook_endpoints_site ON webhook_endpoints (site_id);
    CREATE TABLE webhook_deliveries (
        id               INTEGER PRIMARY KEY,
        endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
        event_id         TEXT NOT NULL,
        event_type       TEXT NOT NULL,
        conversation_id  TEXT,                       -- NULL: not ordered with others
        seq              INTEGER,                    -- the conversation's sequence (order)
        body             BLOB NOT NULL,              -- the exact bytes signed and sent
        status           TEXT NOT NULL CHECK (status IN ('pending', 'retrying', 'delivered', 'dead')),
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  INTEGER NOT NULL,
        last_status      INTEGER,
        last_error       TEXT,
        last_duration_ms INTEGER,
        last_attempt_at  INTEGER,
        delivered_at     INTEGER,
        created_at       INTEGER NOT NULL,
        UNIQUE (endpoint_id, event_id)
    );
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
        WHERE status IN ('pending', 'retrying');
    CREATE INDEX webhook_deliveries_order ON webhook_deliveries (endpoint_id, conversation_id, seq, id)
        WHERE status IN ('pending', 'retrying');
    CREATE INDEX webhook_deliveries_log ON webhook_deliveries (endpoint_id, id);
    -- Retention and erasure delete a conversation's deliveries (their bodies quote it).
    CREATE INDEX webhook_deliveries_conversation ON webhook_deliveries (conversation_id);
    -- A message of a site with webhooks whose `message.created` is not in the outbox yet:
    -- written in the message's own transaction, deleted in the outbox's; what a crash
    -- leaves here is emitted at the next start.
    CREATE TABLE webhook_pending (
        conversation_id  TEXT NOT NULL,
        seq              INTEGER NOT NULL,
        PRIMARY KEY (conversation_id, seq)
    ) WITHOUT ROWID;
"#;

/// E-mail as a channel (issue 17): a conversation's channel, the Message-IDs of the
/// mails of each conversation (threading), bounces and auto-replies received, addresses
/// that bounced, and the agent replies a visitor has not seen yet (one batched e-mail).
const EMAIL_VERSION: &str = r#"
    ALTER TABLE conversations ADD COLUMN channel TEXT NOT NULL DEFAULT 'chat'; -- chat | email
    CREATE TABLE email_messages (
        message_id      TEXT PRIMARY KEY,  -- without angle brackets
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        direction       TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        address         TEXT NOT NULL,     -- the visitor's address
        at              INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX email_messages_by_conversation ON email_messages (conversation_id, at);
    CREATE TABLE email_events (
        id      INTEGER PRIMARY KEY,
        address TEXT NOT NULL,
        kind    TEXT NOT NULL,             -- bounce | auto_reply | rejected
        detail  TEXT NOT NULL,
        at      INTEGER NOT NULL
    );
    CREATE TABLE email_failing (
        address TEXT PRIMARY KEY COLLATE NOCASE,
        reason  TEXT NOT NULL,
        at      INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE email_unseen (
        conversation_id TEXT PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
        from_seq        INTEGER NOT NULL,  -- the first agent reply not seen
        due_at          INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX email_unseen_due ON email_unseen (due_at);
    CREATE TABLE email_transcripts (
        conversation_id TEXT PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
        email           TEXT NOT NULL,
        lang            TEXT NOT NULL,
        at              INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE email_missed (
        conversation_id TEXT PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
        at              INTEGER NOT NULL  -- when the agents were told
    ) WITHOUT ROWID;
    "#;

/// Key accounts first (issue 19): the name of the site's key-account rule that matched
/// at the hand-off (reports give key accounts' first-response times apart), kept in the
/// report facts of deleted conversations too.
const KEY_ACCOUNTS_VERSION: &str = r#"
    ALTER TABLE conversations ADD COLUMN key_account TEXT;
    ALTER TABLE report_facts ADD COLUMN key_account TEXT;
    "#;

/// Issue 19: what a visitor did and was shown outside conversations (pages, proactive
/// messages), deleted with the visitor.
const VISITOR_EVENTS_VERSION: &str = r#"
    CREATE TABLE visitor_events (
        id          INTEGER PRIMARY KEY,
        site_id     TEXT NOT NULL,
        visitor_id  TEXT NOT NULL REFERENCES visitors(id) ON DELETE CASCADE,
        kind        TEXT NOT NULL,     -- page_view, trigger_shown, trigger_opened, ...
        data        TEXT NOT NULL,     -- JSON object
        at          INTEGER NOT NULL
    );
    CREATE INDEX visitor_events_by_visitor ON visitor_events (visitor_id, id);
    CREATE INDEX visitor_events_by_site ON visitor_events (site_id, kind, at);
"#;

/// Issue 13: a visitor looked up by e-mail address in a site (an inbound e-mail's
/// sender) was a scan of the site's visitors, and deleting a visitor (retention,
/// erasure) scanned the conversations for the foreign key's check.
const INDEXES_VERSION: &str = r#"
    CREATE INDEX visitors_by_email ON visitors (site_id, email COLLATE NOCASE);
    CREATE INDEX conversations_by_visitor_id ON conversations (visitor_id);
"#;

/// The schema version this binary writes (databases with a higher one are refused).
pub(crate) const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Applies the migrations the database does not have yet, in one transaction. A
/// database written by a newer release (a higher version) is refused: this binary
/// would not know what its tables mean (a downgrade is a restore of the backup taken
/// before the upgrade).
pub(crate) fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(map_err)?;
    if current > CURRENT_VERSION {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {current}, written by a newer release; this one \
             knows versions up to {CURRENT_VERSION}"
        )));
    }
    let current = current.max(0) as usize;
    if current >= MIGRATIONS.len() {
        return Ok(());
    }
    let transaction = connection.transaction().map_err(map_err)?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        transaction.execute_batch(sql).map_err(map_err)?;
        transaction
            .pragma_update(None, "user_version", (index + 1) as i64)
            .map_err(map_err)?;
        tracing::info!(version = index + 1, "applied schema migration");
    }
    transaction.commit().map_err(map_err)
}

//! PostgreSQL schema migrations, applied in order and recorded in `schema_migrations`.
//!
//! The first version is the SQLite schema's state at the time the backend was added
//! (see `crate::schema`), translated: `INTEGER` times and counters are `BIGINT`, flags
//! are `BOOLEAN`, `INTEGER PRIMARY KEY` ids are `BIGSERIAL`, `COLLATE NOCASE` becomes
//! an index on `lower(…)` (queries compare `lower(column) = lower($n)`), and SQLite's
//! `rowid` on visitors is the `row_id` column. Later changes append a version here and
//! in `crate::schema` alike.
//!
//! Several hubs may start at once against one empty database: each takes a session
//! advisory lock before it reads the version, so exactly one applies each migration and
//! the others find it applied.

use super::map_err;
use crate::StoreError;

/// Each entry moves the schema from version `index` to `index + 1`. Never edit an entry
/// that has shipped; append a new one.
const MIGRATIONS: &[&str] = &[FIRST_VERSION];

/// The advisory lock key the migrations hold ("salam" + 1 in ASCII, as a number).
const MIGRATION_LOCK: i64 = 0x73_61_6c_61_6d_01;

/// 1: everything SQLite's versions 1 to 11 built (sites to visitor events, and the
/// indexes of version 11, added here before this version shipped).
const FIRST_VERSION: &str = r#"
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE sites (
        id         TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        key        TEXT NOT NULL UNIQUE,
        origins    TEXT NOT NULL,              -- JSON array of origins
        settings   TEXT NOT NULL DEFAULT '{}', -- JSON, see the hub's SiteSettings
        identity_secret TEXT NOT NULL,
        previous_identity_secret TEXT,
        identity_secret_rotated_at BIGINT,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE agents (
        id            TEXT PRIMARY KEY,
        email         TEXT NOT NULL,
        name          TEXT NOT NULL,
        role          TEXT NOT NULL CHECK (role IN ('agent', 'admin')),
        password_hash TEXT NOT NULL,
        disabled      BOOLEAN NOT NULL DEFAULT FALSE,
        capacity      BIGINT,                  -- concurrent chats; NULL: the hub's default
        departments   TEXT NOT NULL DEFAULT '[]', -- JSON array
        all_sites     BOOLEAN NOT NULL DEFAULT FALSE,
        presence      TEXT NOT NULL DEFAULT 'online' CHECK (presence IN ('online', 'away')),
        created_at    BIGINT NOT NULL
    );
    CREATE UNIQUE INDEX agents_by_email ON agents (lower(email));
    CREATE TABLE agent_sites (
        agent_id TEXT NOT NULL REFERENCES agents(id),
        site_id  TEXT NOT NULL REFERENCES sites(id),
        PRIMARY KEY (agent_id, site_id)
    );
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,           -- SHA-256 of the session token, never the token
        agent_id   TEXT NOT NULL REFERENCES agents(id),
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        last_seen  BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX sessions_by_agent ON sessions (agent_id);
    CREATE TABLE visitors (
        id          TEXT PRIMARY KEY,
        row_id      BIGSERIAL NOT NULL UNIQUE, -- SQLite's rowid: the sweep's cursor
        site_id     TEXT NOT NULL REFERENCES sites(id),
        name        TEXT,
        email       TEXT,
        locale      TEXT,
        page_url    TEXT,
        page_title  TEXT,
        referrer    TEXT,
        user_agent  TEXT,
        external_id TEXT,                      -- the site's user id, once identify() verified it
        phone       TEXT,
        verified    TEXT NOT NULL DEFAULT '[]', -- JSON array: `name`, `email`
        attributes  TEXT,                      -- JSON object of signed attributes
        first_seen  BIGINT NOT NULL,
        last_seen   BIGINT NOT NULL
    );
    CREATE INDEX visitors_by_external_id ON visitors (external_id) WHERE external_id IS NOT NULL;
    CREATE INDEX visitors_by_email ON visitors (site_id, lower(email));
    CREATE TABLE conversations (
        id         TEXT PRIMARY KEY,
        site_id    TEXT NOT NULL REFERENCES sites(id),
        visitor_id TEXT NOT NULL REFERENCES visitors(id),
        state      TEXT NOT NULL CHECK (state IN ('bot', 'queued', 'assigned', 'closed')),
        agent_id   TEXT REFERENCES agents(id),
        last_seq   BIGINT NOT NULL DEFAULT 0,
        department TEXT NOT NULL DEFAULT '',
        priority   BIGINT NOT NULL DEFAULT 0,
        handoff_reason TEXT,
        handed_off_at  BIGINT,                 -- NULL: the bot settled it (deflection)
        first_response_at BIGINT,              -- first agent text after the handoff
        queued_at  BIGINT,
        unread     BIGINT NOT NULL DEFAULT 0,
        preview    TEXT,                       -- first characters of the last text or note
        preview_author TEXT,                   -- its author kind
        preview_at BIGINT,
        contact_asked_at BIGINT,               -- NULL once answered
        channel    TEXT NOT NULL DEFAULT 'chat', -- chat | email
        key_account TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        closed_at  BIGINT
    );
    CREATE INDEX conversations_by_visitor ON conversations (site_id, visitor_id, state);
    CREATE INDEX conversations_by_site ON conversations (site_id, state);
    CREATE INDEX conversations_closed ON conversations (site_id, closed_at) WHERE state = 'closed';
    -- The foreign key's check when a visitor is deleted.
    CREATE INDEX conversations_by_visitor_id ON conversations (visitor_id);
    CREATE TABLE messages (
        conversation_id TEXT NOT NULL REFERENCES conversations(id),
        seq             BIGINT NOT NULL,
        kind            TEXT NOT NULL CHECK (kind IN ('text', 'note', 'event')),
        author_kind     TEXT NOT NULL,
        author_id       TEXT NOT NULL DEFAULT '',
        author_name     TEXT,
        text            TEXT NOT NULL,
        at              BIGINT NOT NULL,
        client_id       TEXT,
        quick_replies   TEXT,                  -- JSON, only for bot answers
        rule            TEXT,                  -- the bot rule that produced a bot line
        event           TEXT,                  -- JSON {"code", "params"} of a system line
        PRIMARY KEY (conversation_id, seq)
    );
    CREATE UNIQUE INDEX messages_by_client_id
        ON messages (conversation_id, author_kind, author_id, client_id)
        WHERE client_id IS NOT NULL;
    CREATE TABLE bot_turns (
        id              BIGSERIAL PRIMARY KEY,
        conversation_id TEXT NOT NULL REFERENCES conversations(id),
        site_id         TEXT NOT NULL,
        rule_id         TEXT,
        intent          TEXT NOT NULL,
        decision        TEXT NOT NULL CHECK (decision IN ('answer', 'clarify', 'handoff', 'fallback')),
        score           DOUBLE PRECISION NOT NULL,
        lang            TEXT NOT NULL,
        question        TEXT NOT NULL,
        at              BIGINT NOT NULL
    );
    CREATE INDEX bot_turns_by_conversation ON bot_turns (conversation_id, id);
    CREATE INDEX bot_turns_by_site ON bot_turns (site_id, at);
    CREATE TABLE offline_requests (
        id              BIGSERIAL PRIMARY KEY,
        site_id         TEXT NOT NULL REFERENCES sites(id),
        visitor_id      TEXT NOT NULL,
        conversation_id TEXT,
        name            TEXT,
        email           TEXT,
        phone           TEXT,
        message         TEXT,
        created_at      BIGINT NOT NULL,
        done_at         BIGINT
    );
    CREATE UNIQUE INDEX offline_requests_one_open ON offline_requests (site_id, visitor_id)
        WHERE done_at IS NULL;
    CREATE INDEX offline_requests_by_conversation ON offline_requests (conversation_id)
        WHERE conversation_id IS NOT NULL;
    CREATE INDEX offline_requests_by_visitor ON offline_requests (visitor_id);
    CREATE TABLE ratings (
        conversation_id TEXT PRIMARY KEY REFERENCES conversations(id),
        score           BIGINT NOT NULL CHECK (score BETWEEN 1 AND 5),
        comment         TEXT,
        at              BIGINT NOT NULL
    );
    CREATE TABLE alerts (
        id              BIGSERIAL PRIMARY KEY,
        site_id         TEXT NOT NULL,
        conversation_id TEXT,
        kind            TEXT NOT NULL,
        detail          TEXT NOT NULL,
        at              BIGINT NOT NULL,
        acknowledged_at BIGINT
    );
    CREATE UNIQUE INDEX alerts_one_per_conversation ON alerts (conversation_id, kind)
        WHERE conversation_id IS NOT NULL;
    CREATE INDEX alerts_by_conversation ON alerts (conversation_id)
        WHERE conversation_id IS NOT NULL;
    CREATE TABLE departments (
        site_id    TEXT NOT NULL REFERENCES sites(id),
        name       TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (site_id, name)
    );
    CREATE TABLE canned_responses (
        id         BIGSERIAL PRIMARY KEY,
        site_id    TEXT NOT NULL REFERENCES sites(id),
        shortcut   TEXT NOT NULL,
        text       TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        UNIQUE (site_id, shortcut)
    );
    CREATE TABLE report_facts (
        id                BIGSERIAL PRIMARY KEY,
        site_id           TEXT NOT NULL,
        created_hour      BIGINT NOT NULL,
        had_bot           BOOLEAN NOT NULL,
        deflected         BOOLEAN NOT NULL,
        handed_off        BOOLEAN NOT NULL,
        handoff_reason    TEXT,
        first_response_ms BIGINT,
        resolution_ms     BIGINT,
        score             BIGINT,
        unanswered        BIGINT NOT NULL,
        key_account       TEXT
    );
    CREATE INDEX report_facts_by_site ON report_facts (site_id, created_hour);
    CREATE TABLE audit_log (
        id      BIGSERIAL PRIMARY KEY,
        at      BIGINT NOT NULL,
        actor   TEXT NOT NULL,
        action  TEXT NOT NULL,
        subject TEXT NOT NULL,
        detail  TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE api_tokens (
        id           TEXT PRIMARY KEY,
        site_id      TEXT NOT NULL REFERENCES sites(id),
        name         TEXT NOT NULL,
        scope        TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
        token_hash   TEXT NOT NULL UNIQUE,
        created_by   TEXT,
        created_at   BIGINT NOT NULL,
        last_used_at BIGINT,
        revoked_at   BIGINT
    );
    CREATE INDEX api_tokens_by_site ON api_tokens (site_id, created_at);
    CREATE TABLE contacts (
        id          TEXT PRIMARY KEY,
        site_id     TEXT NOT NULL REFERENCES sites(id),
        external_id TEXT,
        email       TEXT,
        name        TEXT,
        attributes  TEXT NOT NULL DEFAULT '{}',
        created_at  BIGINT NOT NULL,
        updated_at  BIGINT NOT NULL
    );
    CREATE UNIQUE INDEX contacts_by_external_id ON contacts (site_id, external_id)
        WHERE external_id IS NOT NULL;
    CREATE INDEX contacts_by_email ON contacts (site_id, lower(email));
    CREATE TABLE contact_attribute_changes (
        id         BIGSERIAL PRIMARY KEY,
        contact_id TEXT NOT NULL REFERENCES contacts(id),
        key        TEXT NOT NULL,
        old_value  TEXT,
        new_value  TEXT,
        changed_by TEXT NOT NULL,
        at         BIGINT NOT NULL
    );
    CREATE INDEX contact_attribute_changes_by_contact ON contact_attribute_changes (contact_id, id);
    CREATE TABLE webhook_endpoints (
        id                    TEXT PRIMARY KEY,
        site_id               TEXT NOT NULL,
        url                   TEXT NOT NULL,
        events                TEXT NOT NULL,
        include_notes         BOOLEAN NOT NULL DEFAULT FALSE,
        enabled               BOOLEAN NOT NULL DEFAULT TRUE,
        secret                TEXT NOT NULL,
        previous_secret       TEXT,
        previous_expires_at   BIGINT,
        created_by            TEXT NOT NULL,
        created_at            BIGINT NOT NULL,
        consecutive_failures  BIGINT NOT NULL DEFAULT 0,
        failing_since         BIGINT,
        disabled_reason       TEXT
    );
    CREATE INDEX webhook_endpoints_site ON webhook_endpoints (site_id);
    CREATE TABLE webhook_deliveries (
        id               BIGSERIAL PRIMARY KEY,
        endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
        event_id         TEXT NOT NULL,
        event_type       TEXT NOT NULL,
        conversation_id  TEXT,
        seq              BIGINT,
        body             BYTEA NOT NULL,
        status           TEXT NOT NULL CHECK (status IN ('pending', 'retrying', 'delivered', 'dead')),
        attempts         BIGINT NOT NULL DEFAULT 0,
        next_attempt_at  BIGINT NOT NULL,
        last_status      BIGINT,
        last_error       TEXT,
        last_duration_ms BIGINT,
        last_attempt_at  BIGINT,
        delivered_at     BIGINT,
        created_at       BIGINT NOT NULL,
        UNIQUE (endpoint_id, event_id)
    );
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
        WHERE status IN ('pending', 'retrying');
    CREATE INDEX webhook_deliveries_order ON webhook_deliveries (endpoint_id, conversation_id, seq, id)
        WHERE status IN ('pending', 'retrying');
    CREATE INDEX webhook_deliveries_log ON webhook_deliveries (endpoint_id, id);
    CREATE INDEX webhook_deliveries_conversation ON webhook_deliveries (conversation_id);
    CREATE TABLE webhook_pending (
        conversation_id  TEXT NOT NULL,
        seq              BIGINT NOT NULL,
        PRIMARY KEY (conversation_id, seq)
    );
    CREATE TABLE email_messages (
        message_id      TEXT PRIMARY KEY,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        direction       TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        address         TEXT NOT NULL,
        at              BIGINT NOT NULL
    );
    CREATE INDEX email_messages_by_conversation ON email_messages (conversation_id, at);
    CREATE TABLE email_events (
        id      BIGSERIAL PRIMARY KEY,
        address TEXT NOT NULL,
        kind    TEXT NOT NULL,
        detail  TEXT NOT NULL,
        at      BIGINT NOT NULL
    );
    CREATE TABLE email_failing (
        address TEXT PRIMARY KEY,              -- stored lower-cased (SQLite: COLLATE NOCASE)
        reason  TEXT NOT NULL,
        at      BIGINT NOT NULL
    );
    CREATE TABLE email_unseen (
        conversation_id TEXT PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
        from_seq        BIGINT NOT NULL,
        due_at          BIGINT NOT NULL
    );
    CREATE INDEX email_unseen_due ON email_unseen (due_at);
    CREATE TABLE email_transcripts (
        conversation_id TEXT PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
        email           TEXT NOT NULL,
        lang            TEXT NOT NULL,
        at              BIGINT NOT NULL
    );
    CREATE TABLE email_missed (
        conversation_id TEXT PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
        at              BIGINT NOT NULL
    );
    CREATE TABLE visitor_events (
        id          BIGSERIAL PRIMARY KEY,
        site_id     TEXT NOT NULL,
        visitor_id  TEXT NOT NULL REFERENCES visitors(id) ON DELETE CASCADE,
        kind        TEXT NOT NULL,
        data        TEXT NOT NULL,
        at          BIGINT NOT NULL
    );
    CREATE INDEX visitor_events_by_visitor ON visitor_events (visitor_id, id);
    CREATE INDEX visitor_events_by_site ON visitor_events (site_id, kind, at);
"#;

/// The schema version this binary writes (databases with a higher one are refused).
pub(crate) const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Applies the migrations the database does not have yet, each in its own transaction,
/// holding the migration advisory lock so that hubs starting together take turns. A
/// database written by a newer release is refused.
pub(crate) fn migrate(client: &mut pg::Client) -> Result<i64, StoreError> {
    // A hub waits for another's migration as long as it takes (the store's connections
    // have a `lock_timeout`, which the migrations themselves keep).
    client
        .batch_execute("SET lock_timeout = 0")
        .map_err(map_err)?;
    let locked = client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .map_err(map_err);
    client
        .batch_execute("RESET lock_timeout")
        .map_err(map_err)?;
    locked?;
    let result = apply(client);
    // Released even when a migration failed (the session would release it anyway when
    // the connection closes).
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .map_err(map_err);
    let version = result?;
    unlocked?;
    Ok(version)
}

fn apply(client: &mut pg::Client) -> Result<i64, StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version    BIGINT PRIMARY KEY,
                applied_at BIGINT NOT NULL
            )",
        )
        .map_err(map_err)?;
    let current: i64 = client
        .query_one(
            "SELECT COALESCE(max(version), 0) FROM schema_migrations",
            &[],
        )
        .map_err(map_err)?
        .get(0);
    if current > CURRENT_VERSION {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {current}, written by a newer release; this one \
             knows versions up to {CURRENT_VERSION}"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        let version = index as i64 + 1;
        let mut transaction = client.transaction().map_err(map_err)?;
        transaction.batch_execute(sql).map_err(map_err)?;
        transaction
            .execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                &[&version, &crate::postgres::now_ms()],
            )
            .map_err(map_err)?;
        transaction.commit().map_err(map_err)?;
        tracing::info!(version, "applied PostgreSQL schema migration");
    }
    Ok(CURRENT_VERSION)
}

//! API tokens of the REST API v1 (issue 17): one site each, one scope each, only the
//! SHA-256 of the token stored (the token itself is shown once, at creation), the last
//! use recorded, revoked by a timestamp (a revoked token is kept for the list).

use crate::StoreError;
use crate::sqlite::{SqliteStore, map_err, new_id};
use rusqlite::{OptionalExtension, Row, params};

/// What a token may do. Each scope includes the ones before it:
/// `read` ⊂ `write` ⊂ `admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApiScope {
    Read,
    Write,
    Admin,
}

impl ApiScope {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiScope::Read => "read",
            ApiScope::Write => "write",
            ApiScope::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<ApiScope> {
        match name {
            "read" => Some(ApiScope::Read),
            "write" => Some(ApiScope::Write),
            "admin" => Some(ApiScope::Admin),
            _ => None,
        }
    }

    /// Whether a token of this scope may do what `needed` allows.
    pub fn allows(self, needed: ApiScope) -> bool {
        self >= needed
    }
}

/// A stored API token (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: String,
    pub site_id: String,
    pub name: String,
    pub scope: ApiScope,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A token to store.
#[derive(Debug, Clone)]
pub struct NewApiToken {
    pub site_id: String,
    pub name: String,
    pub scope: ApiScope,
    /// The SHA-256 of the token.
    pub token_hash: String,
    pub created_by: Option<String>,
    pub now: i64,
}

const TOKEN_COLUMNS: &str =
    "id, site_id, name, scope, created_by, created_at, last_used_at, revoked_at";

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<ApiToken> {
    let scope: String = row.get(3)?;
    Ok(ApiToken {
        id: row.get(0)?,
        site_id: row.get(1)?,
        name: row.get(2)?,
        // The table's CHECK allows only these three.
        scope: ApiScope::parse(&scope).unwrap_or(ApiScope::Read),
        created_by: row.get(4)?,
        created_at: row.get(5)?,
        last_used_at: row.get(6)?,
        revoked_at: row.get(7)?,
    })
}

impl SqliteStore {
    pub(crate) async fn create_api_token_impl(
        &self,
        token: NewApiToken,
    ) -> Result<ApiToken, StoreError> {
        let created = ApiToken {
            id: new_id("tok"),
            site_id: token.site_id,
            name: token.name,
            scope: token.scope,
            created_by: token.created_by,
            created_at: token.now,
            last_used_at: None,
            revoked_at: None,
        };
        let row = created.clone();
        let hash = token.token_hash;
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "INSERT INTO api_tokens (id, site_id, name, scope, token_hash, created_by, \
                         created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![
                            row.id,
                            row.site_id,
                            row.name,
                            row.scope.as_str(),
                            hash,
                            row.created_by,
                            row.created_at
                        ],
                    )
                    .map_err(map_err)?;
                Ok(())
            })
            .await?;
        Ok(created)
    }

    pub(crate) async fn api_tokens_impl(&self, site_id: &str) -> Result<Vec<ApiToken>, StoreError> {
        let site_id = site_id.to_owned();
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE site_id = ?1 \
                     ORDER BY created_at DESC, id"
                ))
                .map_err(map_err)?;
            let rows = statement
                .query_map([site_id], token_from_row)
                .map_err(map_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(map_err)?;
            Ok(rows)
        })
        .await
    }

    pub(crate) async fn api_token_by_hash_impl(
        &self,
        token_hash: &str,
    ) -> Result<Option<ApiToken>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.read(move |connection| {
            connection
                .prepare_cached(&format!(
                    "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = ?1"
                ))
                .map_err(map_err)?
                .query_row([token_hash], token_from_row)
                .optional()
                .map_err(map_err)
        })
        .await
    }

    pub(crate) async fn revoke_api_token_impl(
        &self,
        site_id: &str,
        id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let (site_id, id) = (site_id.to_owned(), id.to_owned());
        self.writer
            .write(move |connection| {
                let changed = connection
                    .execute(
                        "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?3) \
                         WHERE id = ?1 AND site_id = ?2",
                        params![id, site_id, now],
                    )
                    .map_err(map_err)?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
            .await
    }

    pub(crate) async fn touch_api_token_impl(&self, id: &str, now: i64) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.writer
            .write(move |connection| {
                connection
                    .execute(
                        "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1",
                        params![id, now],
                    )
                    .map_err(map_err)?;
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_include_the_ones_below() {
        assert!(ApiScope::Admin.allows(ApiScope::Write));
        assert!(ApiScope::Admin.allows(ApiScope::Read));
        assert!(ApiScope::Write.allows(ApiScope::Read));
        assert!(!ApiScope::Read.allows(ApiScope::Write));
        assert!(!ApiScope::Write.allows(ApiScope::Admin));
        for scope in [ApiScope::Read, ApiScope::Write, ApiScope::Admin] {
            assert_eq!(ApiScope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(ApiScope::parse("root"), None);
    }
}

//! An in-memory store, for tests and for embedders who keep state elsewhere. Every operation
//! takes one mutex, so each is atomic; nothing survives the process.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use super::{
    AccountStore, AdminStore, GrantFilter, PurgeCounts, PurgePolicy, Redemption, Rotation,
    RotationInput, Store, StoreError,
};
use crate::clock::Timestamp;
use crate::crypto::TokenDigest;
use crate::feed::{FeedPage, NewRevocation, RevocationEvent, RevocationKind};
use crate::model::{
    AccessTokenRecord, AccessTokenState, AuthorizationCodeRecord, AuthorizationCodeState, Client,
    Consent, Grant, RefreshTokenRecord, RefreshTokenState, Session, User,
};

#[derive(Debug, Clone)]
struct AccessEntry {
    record: AccessTokenRecord,
    revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
struct RefreshEntry {
    record: RefreshTokenRecord,
    used_at: Option<Timestamp>,
    sealed: Option<Vec<u8>>,
    revoked_at: Option<Timestamp>,
}

#[derive(Debug, Default)]
struct Inner {
    clients: HashMap<String, Client>,
    users: HashMap<String, User>,
    grants: HashMap<String, Grant>,
    access: HashMap<TokenDigest, AccessEntry>,
    refresh: HashMap<TokenDigest, RefreshEntry>,
    codes: HashMap<TokenDigest, AuthorizationCodeState>,
    sessions: HashMap<TokenDigest, Session>,
    consents: HashMap<(String, String), Consent>,
    events: VecDeque<RevocationEvent>,
    feed_head: u64,
    feed_floor: u64,
}

impl Inner {
    fn grant_revoked(&self, grant_id: Option<&str>) -> bool {
        grant_id.is_some_and(|id| self.grants.get(id).is_none_or(|g| g.revoked_at.is_some()))
    }

    fn refresh_state(&self, e: &RefreshEntry) -> RefreshTokenState {
        RefreshTokenState {
            record: e.record.clone(),
            used_at: e.used_at,
            sealed_successor: e.sealed.clone(),
            revoked: e.revoked_at.is_some() || self.grant_revoked(Some(&e.record.grant_id)),
        }
    }

    fn append_event(&mut self, event: NewRevocation, now: Timestamp) {
        self.feed_head += 1;
        self.events.push_back(event.numbered(self.feed_head, now));
    }

    /// Revokes a grant; `announce` appends its `Grant` event (client deletion announces the
    /// client instead).
    fn revoke_grant(&mut self, grant_id: &str, now: Timestamp, announce: bool) -> bool {
        let Some(grant) = self.grants.get_mut(grant_id) else {
            return false;
        };
        if grant.revoked_at.is_some() {
            return false;
        }
        grant.revoked_at = Some(now);
        let event = NewRevocation {
            kind: RevocationKind::Grant,
            client_id: grant.client_id.clone(),
            token: None,
            grant_id: Some(grant_id.to_owned()),
            subject: Some(grant.username.clone()),
        };
        if announce {
            self.append_event(event, now);
        }
        for e in self.access.values_mut() {
            if e.record.grant_id.as_deref() == Some(grant_id) && e.revoked_at.is_none() {
                e.revoked_at = Some(now);
            }
        }
        for e in self.refresh.values_mut() {
            if e.record.grant_id == grant_id && e.revoked_at.is_none() {
                e.revoked_at = Some(now);
            }
        }
        true
    }

    fn matching_grants(&self, filter: &GrantFilter) -> Vec<String> {
        self.grants
            .values()
            .filter(|g| filter.username.as_ref().is_none_or(|u| &g.username == u))
            .filter(|g| filter.client_id.as_ref().is_none_or(|c| &g.client_id == c))
            .map(|g| g.grant_id.clone())
            .collect()
    }
}

/// The in-memory store.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    fn lock(&self) -> Result<MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store mutex poisoned".into()))
    }
}

impl Store for MemoryStore {
    async fn find_client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        Ok(self.lock()?.clients.get(client_id).cloned())
    }

    async fn insert_access_token(&self, token: &AccessTokenRecord) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        if inner.access.contains_key(&token.digest) {
            return Err(StoreError::Conflict);
        }
        inner.access.insert(
            token.digest,
            AccessEntry {
                record: token.clone(),
                revoked_at: None,
            },
        );
        Ok(())
    }

    async fn create_grant(
        &self,
        grant: &Grant,
        access: &AccessTokenRecord,
        refresh: Option<&RefreshTokenRecord>,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        if inner.grants.contains_key(&grant.grant_id)
            || inner.access.contains_key(&access.digest)
            || refresh.is_some_and(|r| inner.refresh.contains_key(&r.digest))
        {
            return Err(StoreError::Conflict);
        }
        inner.grants.insert(grant.grant_id.clone(), grant.clone());
        inner.access.insert(
            access.digest,
            AccessEntry {
                record: access.clone(),
                revoked_at: None,
            },
        );
        if let Some(r) = refresh {
            inner.refresh.insert(
                r.digest,
                RefreshEntry {
                    record: r.clone(),
                    used_at: None,
                    sealed: None,
                    revoked_at: None,
                },
            );
        }
        Ok(())
    }

    async fn find_access_token(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<AccessTokenState>, StoreError> {
        let inner = self.lock()?;
        Ok(inner.access.get(digest).map(|e| AccessTokenState {
            record: e.record.clone(),
            revoked: e.revoked_at.is_some() || inner.grant_revoked(e.record.grant_id.as_deref()),
        }))
    }

    async fn find_refresh_token(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<RefreshTokenState>, StoreError> {
        let inner = self.lock()?;
        Ok(inner.refresh.get(digest).map(|e| inner.refresh_state(e)))
    }

    async fn rotate_refresh_token(
        &self,
        old: &TokenDigest,
        new: &RotationInput,
        now: Timestamp,
    ) -> Result<Rotation, StoreError> {
        let mut inner = self.lock()?;
        let Some(entry) = inner.refresh.get(old) else {
            return Ok(Rotation::Unknown);
        };
        let state = inner.refresh_state(entry);
        if !state.is_active(now) {
            return Ok(Rotation::NotRotated(state));
        }
        if inner.refresh.contains_key(&new.refresh.digest)
            || inner.access.contains_key(&new.access.digest)
        {
            return Err(StoreError::Conflict);
        }
        let grant_id = state.record.grant_id.clone();
        if let Some(e) = inner.refresh.get_mut(old) {
            e.used_at = Some(now);
            e.sealed = Some(new.sealed_response.clone());
        }
        inner.refresh.insert(
            new.refresh.digest,
            RefreshEntry {
                record: new.refresh.clone(),
                used_at: None,
                sealed: None,
                revoked_at: None,
            },
        );
        inner.access.insert(
            new.access.digest,
            AccessEntry {
                record: new.access.clone(),
                revoked_at: None,
            },
        );
        if let Some(g) = inner.grants.get_mut(&grant_id) {
            g.last_refreshed_at = Some(now);
        }
        Ok(Rotation::Rotated)
    }

    async fn insert_authorization_code(
        &self,
        code: &AuthorizationCodeRecord,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        if inner.codes.contains_key(&code.digest) {
            return Err(StoreError::Conflict);
        }
        inner.codes.insert(
            code.digest,
            AuthorizationCodeState {
                record: code.clone(),
                used_at: None,
                grant_id: None,
            },
        );
        Ok(())
    }

    async fn find_authorization_code(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<AuthorizationCodeState>, StoreError> {
        Ok(self.lock()?.codes.get(digest).cloned())
    }

    async fn redeem_authorization_code(
        &self,
        code: &TokenDigest,
        grant: &Grant,
        access: &AccessTokenRecord,
        refresh: Option<&RefreshTokenRecord>,
        now: Timestamp,
    ) -> Result<Redemption, StoreError> {
        let mut inner = self.lock()?;
        let Some(state) = inner.codes.get(code) else {
            return Ok(Redemption::Unknown);
        };
        if state.used_at.is_some() || now >= state.record.expires_at {
            return Ok(Redemption::AlreadyUsed {
                grant_id: state.grant_id.clone(),
            });
        }
        if inner.grants.contains_key(&grant.grant_id)
            || inner.access.contains_key(&access.digest)
            || refresh.is_some_and(|r| inner.refresh.contains_key(&r.digest))
        {
            return Err(StoreError::Conflict);
        }
        if let Some(state) = inner.codes.get_mut(code) {
            state.used_at = Some(now);
            state.grant_id = Some(grant.grant_id.clone());
        }
        inner.grants.insert(grant.grant_id.clone(), grant.clone());
        inner.access.insert(
            access.digest,
            AccessEntry {
                record: access.clone(),
                revoked_at: None,
            },
        );
        if let Some(r) = refresh {
            inner.refresh.insert(
                r.digest,
                RefreshEntry {
                    record: r.clone(),
                    used_at: None,
                    sealed: None,
                    revoked_at: None,
                },
            );
        }
        Ok(Redemption::Redeemed)
    }

    async fn revoke_access_token(
        &self,
        digest: &TokenDigest,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let Some(e) = inner.access.get(digest) else {
            return Ok(());
        };
        if e.revoked_at.is_some() || inner.grant_revoked(e.record.grant_id.as_deref()) {
            return Ok(());
        }
        let event = NewRevocation {
            kind: RevocationKind::Token,
            client_id: e.record.client_id.clone(),
            token: Some(*digest),
            grant_id: e.record.grant_id.clone(),
            subject: None,
        };
        if let Some(e) = inner.access.get_mut(digest) {
            e.revoked_at = Some(now);
        }
        inner.append_event(event, now);
        Ok(())
    }

    async fn revoke_grant(&self, grant_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        Ok(self.lock()?.revoke_grant(grant_id, now, true))
    }

    async fn revocation_events(&self, after: u64, limit: u32) -> Result<FeedPage, StoreError> {
        let inner = self.lock()?;
        let events = inner
            .events
            .iter()
            .filter(|e| e.seq > after)
            .take(limit as usize)
            .cloned()
            .collect();
        Ok(FeedPage {
            events,
            head: inner.feed_head,
            floor: inner.feed_floor,
        })
    }
}

impl AdminStore for MemoryStore {
    async fn create_client(&self, client: &Client) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        if inner.clients.contains_key(&client.client_id) {
            return Err(StoreError::Conflict);
        }
        inner
            .clients
            .insert(client.client_id.clone(), client.clone());
        Ok(())
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        let mut clients: Vec<Client> = self.lock()?.clients.values().cloned().collect();
        clients.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(clients)
    }

    async fn set_client_secret(
        &self,
        client_id: &str,
        digest: &TokenDigest,
    ) -> Result<bool, StoreError> {
        Ok(self
            .lock()?
            .clients
            .get_mut(client_id)
            .map(|c| c.secret_digest = Some(*digest))
            .is_some())
    }

    async fn delete_client(
        &self,
        client_id: &str,
        now: Timestamp,
    ) -> Result<Option<u64>, StoreError> {
        let mut inner = self.lock()?;
        if inner.clients.remove(client_id).is_none() {
            return Ok(None);
        }
        inner.consents.retain(|(_, c), _| c != client_id);
        inner
            .codes
            .retain(|_, c| c.record.client_id != client_id || c.used_at.is_some());
        let ids = inner.matching_grants(&GrantFilter {
            username: None,
            client_id: Some(client_id.to_owned()),
        });
        let revoked = ids
            .iter()
            .filter(|id| inner.revoke_grant(id, now, false))
            .count() as u64;
        for e in inner.access.values_mut() {
            if e.record.client_id == client_id && e.revoked_at.is_none() {
                e.revoked_at = Some(now);
            }
        }
        let event = NewRevocation {
            kind: RevocationKind::Client,
            client_id: client_id.to_owned(),
            token: None,
            grant_id: None,
            subject: None,
        };
        inner.append_event(event, now);
        Ok(Some(revoked))
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        if inner.users.contains_key(&user.username) {
            return Err(StoreError::Conflict);
        }
        inner.users.insert(user.username.clone(), user.clone());
        Ok(())
    }

    async fn find_user(&self, username: &str) -> Result<Option<User>, StoreError> {
        Ok(self.lock()?.users.get(username).cloned())
    }

    async fn list_grants(&self, filter: &GrantFilter) -> Result<Vec<Grant>, StoreError> {
        let inner = self.lock()?;
        let mut grants: Vec<Grant> = inner
            .matching_grants(filter)
            .iter()
            .filter_map(|id| inner.grants.get(id).cloned())
            .collect();
        grants.sort_by(|a, b| (a.created_at, &a.grant_id).cmp(&(b.created_at, &b.grant_id)));
        Ok(grants)
    }

    async fn revoke_grants(&self, filter: &GrantFilter, now: Timestamp) -> Result<u64, StoreError> {
        let mut inner = self.lock()?;
        let ids = inner.matching_grants(filter);
        Ok(ids
            .iter()
            .filter(|id| inner.revoke_grant(id, now, true))
            .count() as u64)
    }

    async fn purge(
        &self,
        now: Timestamp,
        policy: PurgePolicy,
        dry_run: bool,
    ) -> Result<PurgeCounts, StoreError> {
        let mut inner = self.lock()?;
        let cutoff = now.saturating_sub(policy.revoked_retention);
        let dead_access: Vec<TokenDigest> = inner
            .access
            .iter()
            .filter(|(_, e)| {
                e.record.expires_at <= now || e.revoked_at.is_some_and(|t| t <= cutoff)
            })
            .map(|(d, _)| *d)
            .collect();
        let dead_refresh: Vec<TokenDigest> = inner
            .refresh
            .iter()
            .filter(|(_, e)| {
                e.record.expires_at <= now || e.revoked_at.is_some_and(|t| t <= cutoff)
            })
            .map(|(d, _)| *d)
            .collect();
        let dead_codes: Vec<TokenDigest> = inner
            .codes
            .iter()
            .filter(|(_, c)| c.record.expires_at <= cutoff)
            .map(|(d, _)| *d)
            .collect();
        let dead_sessions: Vec<TokenDigest> = inner
            .sessions
            .iter()
            .filter(|(_, s)| s.expires_at <= now)
            .map(|(d, _)| *d)
            .collect();
        let mut counts = PurgeCounts {
            access_tokens: dead_access.len() as u64,
            refresh_tokens: dead_refresh.len() as u64,
            grants: 0,
            authorization_codes: dead_codes.len() as u64,
            sessions: dead_sessions.len() as u64,
            revocation_events: 0,
        };
        let event_cutoff = now.saturating_sub(policy.event_retention);
        // Everything up to the newest old-enough event goes, so the floor is exact.
        let through = inner
            .events
            .iter()
            .filter(|e| e.at <= event_cutoff)
            .map(|e| e.seq)
            .max();
        if let Some(through) = through {
            counts.revocation_events =
                inner.events.iter().filter(|e| e.seq <= through).count() as u64;
            if !dry_run {
                inner.events.retain(|e| e.seq > through);
                inner.feed_floor = inner.feed_floor.max(through);
            }
        }
        if !dry_run {
            for d in &dead_codes {
                inner.codes.remove(d);
            }
            for d in &dead_sessions {
                inner.sessions.remove(d);
            }
        }
        if !dry_run {
            for d in &dead_access {
                inner.access.remove(d);
            }
            for d in &dead_refresh {
                inner.refresh.remove(d);
            }
        }
        // A grant goes once no token of it remains (after this purge).
        let dead_grants: Vec<String> = inner
            .grants
            .keys()
            .filter(|id| {
                !inner.access.iter().any(|(d, e)| {
                    e.record.grant_id.as_deref() == Some(id.as_str()) && !dead_access.contains(d)
                }) && !inner
                    .refresh
                    .iter()
                    .any(|(d, e)| &e.record.grant_id == *id && !dead_refresh.contains(d))
            })
            .cloned()
            .collect();
        counts.grants = dead_grants.len() as u64;
        if !dry_run {
            for id in &dead_grants {
                inner.grants.remove(id);
            }
        }
        Ok(counts)
    }
}

impl AccountStore for MemoryStore {
    async fn create_session(&self, session: &Session) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        if inner.sessions.contains_key(&session.digest) {
            return Err(StoreError::Conflict);
        }
        inner.sessions.insert(session.digest, session.clone());
        Ok(())
    }

    async fn find_session(&self, digest: &TokenDigest) -> Result<Option<Session>, StoreError> {
        Ok(self.lock()?.sessions.get(digest).cloned())
    }

    async fn delete_session(&self, digest: &TokenDigest) -> Result<(), StoreError> {
        self.lock()?.sessions.remove(digest);
        Ok(())
    }

    async fn find_consent(
        &self,
        username: &str,
        client_id: &str,
    ) -> Result<Option<Consent>, StoreError> {
        Ok(self
            .lock()?
            .consents
            .get(&(username.to_owned(), client_id.to_owned()))
            .cloned())
    }

    async fn save_consent(&self, consent: &Consent) -> Result<(), StoreError> {
        self.lock()?.consents.insert(
            (consent.username.clone(), consent.client_id.clone()),
            consent.clone(),
        );
        Ok(())
    }

    async fn delete_consent(&self, username: &str, client_id: &str) -> Result<(), StoreError> {
        self.lock()?
            .consents
            .remove(&(username.to_owned(), client_id.to_owned()));
        Ok(())
    }
}

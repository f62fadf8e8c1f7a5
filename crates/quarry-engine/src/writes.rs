//! Writes to a collection: upserts, deletes, payload changes (each one logged operation, applied
//! after the log has it) and payload indexes.

use crate::collection::Collection;
use crate::filter::Filter;
use crate::id::PointId;
use crate::point::{Op, Point};
use crate::state::State;
use quarry_core::{Error, Result};
use serde_json::{Map, Value};
use std::sync::PoisonError;

/// Checks a payload key to index: a non-empty dotted path of at most 256 bytes.
fn check_payload_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 256 || key.split('.').any(str::is_empty) {
        return Err(Error::InvalidArgument(format!(
            "payload key {key:?}: use a dotted path of 1-256 bytes without empty parts"
        )));
    }
    Ok(())
}

impl Collection {
    /// Inserts or replaces `points` as one durable batch. Every point is checked first (dimension,
    /// finite values, payload size); one bad point rejects the batch and nothing is written.
    pub fn upsert(&self, points: Vec<Point>) -> Result<usize> {
        for p in &points {
            p.check(&self.schema)?;
        }
        let n = points.len();
        if n > 0 {
            self.commit(Op::Upsert(points))?;
        }
        Ok(n)
    }

    /// Deletes `ids` durably; returns how many existed.
    pub fn delete(&self, ids: &[PointId]) -> Result<usize> {
        let present = {
            let st = self.read_state();
            ids.iter().filter(|id| st.slot(id).is_some()).count()
        };
        if !ids.is_empty() {
            self.commit(Op::Delete(ids.to_vec()))?;
        }
        Ok(present)
    }

    /// Sets payload keys of the points `ids` durably (merged into each payload, or replacing it
    /// whole with `overwrite`); returns how many exist. A result over the collection's payload
    /// limit rejects the call and nothing is written.
    pub fn set_payload(
        &self,
        ids: &[PointId],
        payload: Map<String, Value>,
        overwrite: bool,
    ) -> Result<usize> {
        let present = {
            let st = self.read_state();
            let mut present = 0;
            for id in ids {
                let Some(slot) = st.slot(id) else { continue };
                present += 1;
                let p = crate::point::updated_payload(&st.payloads.get(slot), &payload, overwrite);
                crate::point::check_payload_size(*id, &p, self.schema.max_payload_bytes)?;
            }
            present
        };
        if !ids.is_empty() {
            self.commit(Op::SetPayload { ids: ids.to_vec(), payload, overwrite })?;
        }
        Ok(present)
    }

    /// Removes payload `keys` from the points `ids` durably, in one logged operation; returns
    /// how many of the points held at least one of the keys when the call began.
    pub fn delete_payload_keys(&self, ids: &[PointId], keys: &[String]) -> Result<usize> {
        let holding = {
            let st = self.read_state();
            ids.iter()
                .filter_map(|id| st.slot(id))
                .filter(|&slot| keys.iter().any(|k| st.payloads.contains_key(slot, k)))
                .count()
        };
        if holding > 0 {
            self.commit(Op::DeletePayloadKeys { ids: ids.to_vec(), keys: keys.to_vec() })?;
        }
        Ok(holding)
    }

    /// Sets payload keys of every point passing `filter` ([`Collection::set_payload`]).
    pub fn set_payload_by_filter(
        &self,
        filter: &Filter,
        payload: Map<String, Value>,
        overwrite: bool,
    ) -> Result<usize> {
        let ids: Vec<PointId> = {
            let st = self.read_state();
            st.matching(filter, 0).map(|s| st.ids[s as usize]).collect()
        };
        self.set_payload(&ids, payload, overwrite)
    }

    /// Deletes every point passing `filter` durably; returns how many.
    pub fn delete_by_filter(&self, filter: &Filter) -> Result<usize> {
        let ids: Vec<PointId> = {
            let st = self.read_state();
            st.matching(filter, 0).map(|s| st.ids[s as usize]).collect()
        };
        self.delete(&ids)
    }

    /// Starts indexing payload key `key` (a dotted path): the index is built over the stored
    /// points and recorded in `schema.json` (crash-safely) before this returns; `false` if the key
    /// was already indexed.
    pub fn create_payload_index(&self, key: &str) -> Result<bool> {
        check_payload_key(key)?;
        self.check_writable()?;
        let mut st = self.write_state();
        let mut keys = st.pidx.keys();
        if keys.iter().any(|k| k == key) {
            return Ok(false);
        }
        keys.push(key.to_string());
        keys.sort();
        let mut schema = self.schema.clone();
        schema.payload_indexes = keys;
        schema.save(&self.dir)?;
        if let Some(r) = self.replica.get() {
            r.upload_schema(&self.dir)?;
        }
        let State { pidx, payloads, .. } = &mut *st;
        pidx.add_key(key, payloads);
        Ok(true)
    }

    /// Stops indexing payload key `key` (recorded in `schema.json`); `false` if it was not indexed.
    pub fn delete_payload_index(&self, key: &str) -> Result<bool> {
        self.check_writable()?;
        let mut st = self.write_state();
        let mut keys = st.pidx.keys();
        let before = keys.len();
        keys.retain(|k| k != key);
        if keys.len() == before {
            return Ok(false);
        }
        let mut schema = self.schema.clone();
        schema.payload_indexes = keys;
        schema.save(&self.dir)?;
        if let Some(r) = self.replica.get() {
            r.upload_schema(&self.dir)?;
        }
        st.pidx.remove_key(key);
        Ok(true)
    }

    /// Forces every acknowledged write to stable storage (a collection with `fsync: false`
    /// acknowledges writes once the OS has them; call this before a clean shutdown).
    pub fn flush(&self) -> Result<()> {
        self.wal.lock().unwrap_or_else(PoisonError::into_inner).sync()
    }
}

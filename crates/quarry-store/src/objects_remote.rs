//! Object storage through the `object_store` crate (feature `object-store`): S3 and
//! S3-compatible stores, and an in-memory store for tests. Each call runs on a small private
//! tokio runtime, so the engine's synchronous code can call it from any thread (never from
//! inside an async task: the server runs engine work on its blocking pool).

use crate::objects::{check_key, Objects};
use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use quarry_core::{Error, Result};
use std::ops::Range;
use std::sync::Arc;

/// A store reached through `object_store` (see the module docs).
pub struct RemoteObjects {
    store: Arc<dyn ObjectStore>,
    /// Key prefix inside the bucket (empty or ending in `/`).
    prefix: String,
    url: String,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for RemoteObjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteObjects").field("url", &self.url).finish()
    }
}

fn remote(url: &str, what: &str, e: object_store::Error) -> Error {
    Error::Io {
        action: "accessing object storage",
        path: format!("{url} ({what})").into(),
        source: std::io::Error::other(e.to_string()),
    }
}

impl RemoteObjects {
    /// Opens `s3://bucket[/prefix]` (settings from the `AWS_*` environment variables) or
    /// `memory://` (an empty in-memory store, for tests).
    pub fn open(url: &str) -> Result<RemoteObjects> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("quarry-objects")
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the object-storage runtime", url, e))?;
        let (store, prefix): (Arc<dyn ObjectStore>, String) = if url == "memory://" {
            (Arc::new(object_store::memory::InMemory::new()), String::new())
        } else if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::InvalidArgument(format!("{url}: no bucket named")));
            }
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| Error::InvalidArgument(format!("{url}: {e}")))?;
            let prefix = prefix.trim_matches('/');
            if !prefix.is_empty() {
                check_key(prefix)?;
            }
            (Arc::new(s3), if prefix.is_empty() { String::new() } else { format!("{prefix}/") })
        } else {
            return Err(Error::InvalidArgument(format!(
                "{url}: object storage URLs are s3://bucket[/prefix] or memory://"
            )));
        };
        Ok(RemoteObjects { store, prefix, url: url.to_string(), rt })
    }

    fn path(&self, key: &str) -> Result<ObjPath> {
        check_key(key)?;
        Ok(ObjPath::from(format!("{}{key}", self.prefix)))
    }
}

impl Objects for RemoteObjects {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(key)?;
        self.rt.block_on(async {
            match self.store.get(&path).await {
                Ok(r) => r.bytes().await.map(|b| Some(b.to_vec())).map_err(|e| remote(&self.url, key, e)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(remote(&self.url, key, e)),
            }
        })
    }

    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let path = self.path(key)?;
        if range.end < range.start {
            return Err(Error::InvalidArgument(format!("{key}: byte range {range:?} is reversed")));
        }
        let want = range.end - range.start;
        let got = self
            .rt
            .block_on(self.store.get_range(&path, range.clone()))
            .map_err(|e| remote(&self.url, key, e))?;
        if got.len() as u64 != want {
            return Err(Error::Io {
                action: "reading a byte range of",
                path: format!("{} ({key})", self.url).into(),
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("{} bytes of {want} for {range:?}", got.len()),
                ),
            });
        }
        Ok(got.to_vec())
    }

    fn get_ranges(&self, key: &str, ranges: &[Range<u64>]) -> Result<Vec<Vec<u8>>> {
        let path = self.path(key)?;
        if let Some(r) = ranges.iter().find(|r| r.end < r.start) {
            return Err(Error::InvalidArgument(format!("{key}: byte range {r:?} is reversed")));
        }
        // One GET per non-empty range, all in flight together: the batch costs one round trip.
        let got = self
            .rt
            .block_on(futures::future::try_join_all(ranges.iter().map(|r| {
                let path = path.clone();
                let r = r.clone();
                async move {
                    if r.is_empty() {
                        Ok(Vec::new())
                    } else {
                        self.store.get_range(&path, r).await.map(|b| b.to_vec())
                    }
                }
            })))
            .map_err(|e| remote(&self.url, key, e))?;
        got.into_iter()
            .zip(ranges)
            .map(|(b, r)| {
                if b.len() as u64 == r.end - r.start {
                    Ok(b)
                } else {
                    Err(Error::Io {
                        action: "reading a byte range of",
                        path: format!("{} ({key})", self.url).into(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("{} bytes of {} for {r:?}", b.len(), r.end - r.start),
                        ),
                    })
                }
            })
            .collect()
    }

    fn size(&self, key: &str) -> Result<Option<u64>> {
        let path = self.path(key)?;
        match self.rt.block_on(self.store.head(&path)) {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(remote(&self.url, key, e)),
        }
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(key)?;
        self.rt
            .block_on(self.store.put(&path, PutPayload::from(bytes.to_vec())))
            .map(|_| ())
            .map_err(|e| remote(&self.url, key, e))
    }

    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<bool> {
        let path = self.path(key)?;
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.rt.block_on(self.store.put_opts(&path, PutPayload::from(bytes.to_vec()), opts)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(remote(&self.url, key, e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        // List the folder that holds the prefix, then keep the keys that start with it.
        let full = format!("{}{prefix}", self.prefix);
        let dir = full.rsplit_once('/').map_or("", |(d, _)| d);
        let list_path = if dir.is_empty() { None } else { Some(ObjPath::from(dir)) };
        let metas: Vec<object_store::ObjectMeta> = self
            .rt
            .block_on(self.store.list(list_path.as_ref()).try_collect())
            .map_err(|e| remote(&self.url, prefix, e))?;
        let mut keys: Vec<String> = metas
            .into_iter()
            .filter_map(|m| m.location.as_ref().strip_prefix(&self.prefix).map(str::to_string))
            .filter(|k| k.starts_with(prefix))
            .collect();
        keys.sort();
        Ok(keys)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match self.rt.block_on(self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(remote(&self.url, key, e)),
        }
    }

    fn location(&self) -> String {
        self.url.clone()
    }
}

//! Where the bytes of chart documents live: content-addressed by their
//! SHA-256, in the data directory by default or in an S3-compatible object
//! store when configured (`object_store`, ADR 0013). The event holds the
//! hash, so the chain covers the bytes without carrying them.
//!
//! The bytes are stored (and, on disk, synced) before the event is
//! appended: a crash in between leaves an unreferenced object, never an
//! event whose bytes are missing. An object is read back only if its hash
//! still matches.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The document store.
#[derive(Clone)]
pub struct Documents {
    store: Arc<dyn ObjectStore>,
    /// Set for the local store: the files to sync after a write.
    local: Option<Arc<LocalFileSystem>>,
    /// The largest document accepted, in bytes.
    pub max_bytes: usize,
}

impl std::fmt::Debug for Documents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Documents({})", self.store)
    }
}

/// The lower-case hex SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn key(sha: &str) -> Path {
    Path::from(format!("sha256/{}/{sha}", &sha[..2]))
}

impl Documents {
    /// `location` is `s3://bucket[/prefix]` (credentials, region and an
    /// endpoint for S3-compatible stores from the usual `AWS_*` variables)
    /// or a directory, created if missing.
    pub fn open(location: &str, max_bytes: usize) -> anyhow::Result<Self> {
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .with_context(|| format!("the document store {location}"))?;
            let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
            };
            return Ok(Self {
                store,
                local: None,
                max_bytes,
            });
        }
        let dir = PathBuf::from(location);
        let made = !dir.exists();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the document directory {}", dir.display()))?;
        // Clinical documents are the owner's to read: a directory this run
        // made is 0700 (the files under it get the default mode, so nobody
        // else may reach them); one the operator named is theirs to set.
        #[cfg(unix)]
        if made {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("making {} private", dir.display()))?;
        }
        let local = Arc::new(
            LocalFileSystem::new_with_prefix(&dir)
                .with_context(|| format!("the document directory {}", dir.display()))?,
        );
        Ok(Self {
            store: local.clone(),
            local: Some(local),
            max_bytes,
        })
    }

    /// Stores `bytes` under their hash (idempotent) and returns the hash,
    /// once durable.
    pub async fn put(&self, bytes: Bytes) -> Result<String, ApiError> {
        let sha = sha256(&bytes);
        let path = key(&sha);
        self.store
            .put(&path, bytes.into())
            .await
            .map_err(unavailable)?;
        if let Some(local) = &self.local {
            let file = local.path_to_filesystem(&path).map_err(unavailable)?;
            tokio::task::spawn_blocking(move || sync(&file))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?
                .map_err(|e| {
                    unavailable(object_store::Error::Generic {
                        store: "local",
                        source: Box::new(e),
                    })
                })?;
        }
        Ok(sha)
    }

    /// The bytes stored under `sha`, checked against it.
    pub async fn get(&self, sha: &str) -> Result<Bytes, ApiError> {
        if sha.len() != 64 {
            return Err(ApiError::Internal(
                "a document hash of the wrong length".into(),
            ));
        }
        let got = self.store.get(&key(sha)).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => {
                tracing::error!("a document's bytes are missing from the document store");
                ApiError::Unavailable {
                    code: "document_missing",
                    detail: "the document's bytes are missing from the document store".into(),
                }
            }
            other => unavailable(other),
        })?;
        let bytes = got.bytes().await.map_err(unavailable)?;
        if sha256(&bytes) != sha {
            tracing::error!("a document's bytes no longer match their hash");
            return Err(ApiError::Unavailable {
                code: "document_damaged",
                detail: "the document's stored bytes no longer match the hash on the log".into(),
            });
        }
        Ok(bytes)
    }
}

/// Flushes a written file and its directory to disk.
fn sync(file: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(file)?.sync_all()?;
    if let Some(dir) = file.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn unavailable(e: object_store::Error) -> ApiError {
    tracing::warn!(error = %e, "document store");
    ApiError::Unavailable {
        code: "document_store_unavailable",
        detail: "the document store did not answer; retry shortly".into(),
    }
}

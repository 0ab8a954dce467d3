//! Signed checkpoints: a statement "the log's event at position P carries
//! hash H", made at time T and signed with an Ed25519 key held outside the
//! database (ADR 0009). Whoever can rewrite the database but does not hold
//! the key cannot make a log that agrees with an older checkpoint.

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::verify::Anchor;

/// The key file kept in the data directory when no key is configured.
pub const KEY_FILE: &str = "checkpoint.key";
/// What a checkpoint file says it is.
pub const FORMAT: &str = "anamnesis.checkpoint.v1";

/// Why a key or a checkpoint could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{what}: {cause}")]
    Key { what: String, cause: String },
    #[error("{path}: {cause}")]
    File { path: PathBuf, cause: String },
    #[error("{path} is not a checkpoint: {cause}")]
    Malformed { path: PathBuf, cause: String },
    #[error(
        "{path} was signed by another key (public key {found}; expected {expected}): \
         pass the key that signed it with --public-key"
    )]
    OtherKey {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{path}: the signature does not verify: the checkpoint was altered or forged")]
    BadSignature { path: PathBuf },
}

/// The Ed25519 key that signs checkpoints. Its `Debug` shows only the
/// public half.
#[derive(Clone)]
pub struct CheckpointKey(SigningKey);

impl fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CheckpointKey")
            .field(&self.public().to_hex())
            .finish()
    }
}

impl CheckpointKey {
    /// From a 32-byte seed written as 64 hex digits (surrounding white space
    /// ignored), as `--signing-key` and the key file hold it.
    pub fn from_hex(text: &str) -> Result<Self, CheckpointError> {
        let seed = decode32(text.trim()).map_err(|cause| CheckpointError::Key {
            what: "the checkpoint signing key".into(),
            cause: format!("{cause} (expected a 32-byte seed as 64 hex digits)"),
        })?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// The key in `dir/checkpoint.key`, generated there (readable by the
    /// owner only) on first use.
    pub fn from_data_dir(dir: &Path) -> Result<Self, CheckpointError> {
        use std::io::Write;
        let path = dir.join(KEY_FILE);
        let failed = |cause: std::io::Error| CheckpointError::File {
            path: path.clone(),
            cause: cause.to_string(),
        };
        if !path.exists() {
            std::fs::create_dir_all(dir).map_err(failed)?;
            let seed: [u8; 32] = rand::random();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(&path) {
                Ok(mut f) => f
                    .write_all(hex::encode(seed).as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(failed)?,
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(failed(e)),
            }
        }
        Self::from_key_file(&path)
    }

    /// The key in an existing key file, if there is one: verification never
    /// makes up a key it would then fail to match.
    pub fn existing_in(dir: &Path) -> Result<Option<Self>, CheckpointError> {
        let path = dir.join(KEY_FILE);
        if path.exists() {
            Self::from_key_file(&path).map(Some)
        } else {
            Ok(None)
        }
    }

    fn from_key_file(path: &Path) -> Result<Self, CheckpointError> {
        let text = std::fs::read_to_string(path).map_err(|e| CheckpointError::File {
            path: path.to_owned(),
            cause: e.to_string(),
        })?;
        Self::from_hex(&text).map_err(|e| CheckpointError::Key {
            what: format!("the key in {}", path.display()),
            cause: e.to_string(),
        })
    }

    /// The public half, which checks the signatures.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// A checkpoint of `anchor`, made `at`.
    pub fn sign(&self, anchor: &Anchor, at: DateTime<Utc>) -> Checkpoint {
        let hash = hex::encode(&anchor.hash);
        let time = at.to_rfc3339_opts(SecondsFormat::Micros, true);
        let signature = self.0.sign(&message(anchor.position, &hash, &time));
        Checkpoint {
            format: FORMAT.to_owned(),
            position: anchor.position,
            hash,
            time,
            public_key: self.public().to_hex(),
            signature: hex::encode(signature.to_bytes()),
        }
    }
}

/// The key that checks checkpoint signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// From 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, CheckpointError> {
        let invalid = |cause: String| CheckpointError::Key {
            what: "the public key".into(),
            cause,
        };
        let bytes = decode32(text.trim()).map_err(|c| invalid(c.to_owned()))?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|e| invalid(e.to_string()))
    }

    /// As 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }
}

/// A signed statement: the event at `position` carries `hash`, as seen at
/// `time`. Written as JSON; the signature covers the format, position, hash
/// and time, exactly as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: String,
    pub position: i64,
    /// The event's hash, 64 hex digits.
    pub hash: String,
    /// When it was taken, RFC 3339 in UTC.
    pub time: String,
    /// Who signed (informative: a checkpoint is checked against the key the
    /// verifier trusts, never against the one it names).
    pub public_key: String,
    /// Ed25519 signature, hex.
    pub signature: String,
}

/// The bytes a checkpoint signature covers.
fn message(position: i64, hash: &str, time: &str) -> Vec<u8> {
    format!("{FORMAT}\nposition {position}\nhash {hash}\ntime {time}\n").into_bytes()
}

fn decode32(text: &str) -> Result<[u8; 32], &'static str> {
    let bytes = hex::decode(text).map_err(|_| "not hexadecimal")?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| "not 32 bytes")
}

impl Checkpoint {
    /// What this checkpoint vouches for, once its signature verifies with
    /// `trusted`. `path` names it in errors.
    pub fn verify(&self, trusted: &PublicKey, path: &Path) -> Result<Anchor, CheckpointError> {
        let malformed = |cause: &str| CheckpointError::Malformed {
            path: path.to_owned(),
            cause: cause.to_owned(),
        };
        if self.format != FORMAT {
            return Err(malformed("unknown format"));
        }
        if self.position < 1 {
            return Err(malformed("position must be 1 or more"));
        }
        let hash = decode32(&self.hash).map_err(malformed)?;
        DateTime::parse_from_rfc3339(&self.time).map_err(|_| malformed("time is not RFC 3339"))?;
        if !self.public_key.eq_ignore_ascii_case(&trusted.to_hex()) {
            return Err(CheckpointError::OtherKey {
                path: path.to_owned(),
                found: self.public_key.clone(),
                expected: trusted.to_hex(),
            });
        }
        let signature = hex::decode(&self.signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
            .map(|b| Signature::from_bytes(&b))
            .ok_or_else(|| malformed("the signature is not 64 bytes of hex"))?;
        trusted
            .0
            .verify(&message(self.position, &self.hash, &self.time), &signature)
            .map_err(|_| CheckpointError::BadSignature {
                path: path.to_owned(),
            })?;
        Ok(Anchor {
            position: self.position,
            hash: hash.to_vec(),
        })
    }

    /// Reads a checkpoint file.
    pub fn read(path: &Path) -> Result<Self, CheckpointError> {
        let text = std::fs::read_to_string(path).map_err(|e| CheckpointError::File {
            path: path.to_owned(),
            cause: e.to_string(),
        })?;
        serde_json::from_str(&text).map_err(|e| CheckpointError::Malformed {
            path: path.to_owned(),
            cause: anamnesis_commands::log::describe_json_error(&e),
        })
    }

    /// Writes it to `path` whole or not at all (a temporary file, synced,
    /// then renamed).
    pub fn write(&self, path: &Path) -> Result<(), CheckpointError> {
        use std::io::Write;
        let failed = |e: std::io::Error| CheckpointError::File {
            path: path.to_owned(),
            cause: e.to_string(),
        };
        let mut text = serde_json::to_string_pretty(self).map_err(|e| CheckpointError::File {
            path: path.to_owned(),
            cause: e.to_string(),
        })?;
        text.push('\n');
        let partial = path.with_extension("partial");
        let mut file = std::fs::File::create(&partial).map_err(failed)?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(failed)?;
        std::fs::rename(&partial, path).map_err(failed)
    }

    /// Writes it into `dir` as `checkpoint-<position>.json` (the position
    /// zero-padded, so names sort by position) and returns the path.
    pub fn write_in(&self, dir: &Path) -> Result<PathBuf, CheckpointError> {
        std::fs::create_dir_all(dir).map_err(|e| CheckpointError::File {
            path: dir.to_owned(),
            cause: e.to_string(),
        })?;
        let path = dir.join(file_name(self.position));
        self.write(&path)?;
        Ok(path)
    }
}

fn file_name(position: i64) -> String {
    format!("checkpoint-{position:020}.json")
}

/// The checkpoint with the highest position in `dir`, verified with
/// `trusted`; `None` when there is none. A newest checkpoint that does not
/// verify is an error, not a reason to fall back to an older one.
pub fn newest_in(
    dir: &Path,
    trusted: &PublicKey,
) -> Result<Option<(PathBuf, Anchor)>, CheckpointError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CheckpointError::File {
                path: dir.to_owned(),
                cause: e.to_string(),
            })
        }
    };
    let mut newest: Option<(i64, PathBuf)> = None;
    for entry in entries {
        let entry = entry.map_err(|e| CheckpointError::File {
            path: dir.to_owned(),
            cause: e.to_string(),
        })?;
        let name = entry.file_name();
        let Some(position) = name
            .to_str()
            .and_then(|n| n.strip_prefix("checkpoint-"))
            .and_then(|n| n.strip_suffix(".json"))
            .and_then(|n| n.parse::<i64>().ok())
        else {
            continue;
        };
        if newest.as_ref().is_none_or(|(p, _)| position > *p) {
            newest = Some((position, entry.path()));
        }
    }
    let Some((position, path)) = newest else {
        return Ok(None);
    };
    let anchor = Checkpoint::read(&path)?.verify(trusted, &path)?;
    if anchor.position != position {
        return Err(CheckpointError::Malformed {
            path,
            cause: format!("its name says position {position}, its content another"),
        });
    }
    Ok(Some((path, anchor)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn anchor() -> Anchor {
        Anchor {
            position: 42,
            hash: vec![7; 32],
        }
    }

    #[test]
    fn a_signed_checkpoint_verifies_with_its_key_and_no_other() {
        let key = CheckpointKey::from_hex(&"11".repeat(32)).unwrap();
        let other = CheckpointKey::from_hex(&"22".repeat(32)).unwrap();
        let cp = key.sign(&anchor(), Utc::now());
        let path = Path::new("cp.json");
        assert_eq!(cp.verify(&key.public(), path).unwrap(), anchor());
        assert!(matches!(
            cp.verify(&other.public(), path),
            Err(CheckpointError::OtherKey { .. })
        ));
    }

    #[test]
    fn an_edited_checkpoint_does_not_verify() {
        let key = CheckpointKey::from_hex(&"11".repeat(32)).unwrap();
        let path = Path::new("cp.json");
        let mut moved = key.sign(&anchor(), Utc::now());
        moved.position = 41;
        assert!(matches!(
            moved.verify(&key.public(), path),
            Err(CheckpointError::BadSignature { .. })
        ));
        let mut rehashed = key.sign(&anchor(), Utc::now());
        rehashed.hash = hex::encode([8u8; 32]);
        assert!(matches!(
            rehashed.verify(&key.public(), path),
            Err(CheckpointError::BadSignature { .. })
        ));
    }

    #[test]
    fn a_key_is_64_hex_digits() {
        assert!(CheckpointKey::from_hex("abc").is_err());
        assert!(CheckpointKey::from_hex(&"zz".repeat(32)).is_err());
        assert!(CheckpointKey::from_hex(&format!(" {}\n", "ab".repeat(32))).is_ok());
    }

    #[test]
    fn the_newest_checkpoint_in_a_directory_is_found_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let key = CheckpointKey::from_data_dir(dir.path()).unwrap();
        let again = CheckpointKey::from_data_dir(dir.path()).unwrap();
        assert_eq!(key.public(), again.public(), "the key file is reused");
        let cps = dir.path().join("checkpoints");
        assert!(newest_in(&cps, &key.public()).unwrap().is_none());
        for position in [9, 10, 100] {
            let a = Anchor {
                position,
                hash: vec![1; 32],
            };
            key.sign(&a, Utc::now()).write_in(&cps).unwrap();
        }
        let (_, newest) = newest_in(&cps, &key.public()).unwrap().unwrap();
        assert_eq!(newest.position, 100);
    }
}

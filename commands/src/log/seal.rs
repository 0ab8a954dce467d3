//! Per-patient encryption of event payloads (docs/adr/0024-encryption.md).
//!
//! Each patient has a data key; the payload of every event about them is
//! stored sealed with it (XChaCha20-Poly1305), and the data key is kept,
//! wrapped under the master key, in the mutable `patient_keys` table. The
//! chain covers the sealed bytes, so verification needs no key. Erasure
//! destroys the wrapped key in the transaction that appends the erasure
//! event: from then on the patient's payloads read as erased, everywhere.
//!
//! Metadata stays in the clear (positions, types, actor, patient id, times):
//! routing, audit and history need it, and it holds no clinical content.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{AppendRequest, StoreError};
pub use anamnesis_domain::codec::{ERASED_PAYLOAD, SEALED_PREFIX};
use anamnesis_domain::subject::{CLEAR_TYPES, ERASURE_EVENT};

const NONCE_LEN: usize = 24;
const PAYLOAD_AAD: &[u8] = b"anamnesis.payload.v1";
const KEY_AAD: &[u8] = b"anamnesis.data-key.v1";

/// The key that wraps every patient's data key (`--master-key`). Its
/// `Debug` shows only its id.
#[derive(Clone)]
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
    id: Vec<u8>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", hex::encode(&self.id))
    }
}

impl MasterKey {
    /// From 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() != 32 {
            return Err(format!(
                "a master key is 32 bytes (64 hex digits), not {}",
                bytes.len()
            ));
        }
        let mut id = Sha256::new();
        id.update(b"anamnesis.master-key.id");
        id.update(bytes);
        Ok(Self {
            cipher: XChaCha20Poly1305::new_from_slice(bytes)
                .map_err(|_| "a master key is 32 bytes".to_owned())?,
            id: id.finalize()[..8].to_vec(),
        })
    }

    /// From 64 hex digits (surrounding white space ignored).
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let bytes = hex::decode(text.trim())
            .map_err(|_| "a master key is 64 hex digits (32 bytes)".to_owned())?;
        Self::from_bytes(&bytes)
    }

    /// A new random key, as 64 hex digits.
    pub fn generate_hex() -> String {
        hex::encode(XChaCha20Poly1305::generate_key(&mut OsRng))
    }

    /// A short, non-secret name of the key, stored with every data key it
    /// wraps: a server started with another master key says so instead of
    /// reading the log as damaged.
    pub fn id(&self) -> &[u8] {
        &self.id
    }

    fn wrap(&self, patient: Uuid, key: &[u8]) -> Result<Vec<u8>, StoreError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = [KEY_AAD, patient.as_bytes()].concat();
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: key,
                    aad: &aad,
                },
            )
            .map_err(|_| StoreError::Keys("a data key could not be wrapped".into()))?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    fn unwrap(&self, patient: Uuid, wrapped: &[u8]) -> Result<DataKey, StoreError> {
        let damaged = || {
            StoreError::Keys(format!(
                "the data key of patient {patient} does not open with the master key: \
                 it was altered"
            ))
        };
        if wrapped.len() <= NONCE_LEN {
            return Err(damaged());
        }
        let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
        let aad = [KEY_AAD, patient.as_bytes()].concat();
        let key = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| damaged())?;
        DataKey::from_bytes(&key).ok_or_else(damaged)
    }
}

/// What the log does with patients' payloads: the master key (none: sealed
/// payloads cannot be read, and none are written) and whether new events
/// are sealed (`--encrypt-payloads`, on by default; off only to measure
/// what it costs).
#[derive(Clone, Default, Debug)]
pub struct Keyring {
    master: Option<Arc<MasterKey>>,
    seal: bool,
}

impl Keyring {
    /// No master key: nothing sealed is written or read.
    pub fn none() -> Self {
        Self::default()
    }

    /// A master key; new events about a patient are sealed when `seal`.
    pub fn new(master: MasterKey, seal: bool) -> Self {
        Self {
            master: Some(Arc::new(master)),
            seal,
        }
    }

    /// Whether new events about a patient are written sealed.
    pub fn seals(&self) -> bool {
        self.seal && self.master.is_some()
    }

    fn master(&self) -> Result<&MasterKey, StoreError> {
        self.master.as_deref().ok_or_else(|| {
            StoreError::Keys(
                "the log holds encrypted payloads and no master key is configured \
                 (--master-key / ANAMNESIS_MASTER_KEY)"
                    .into(),
            )
        })
    }
}

/// One patient's data key.
#[derive(Clone)]
pub(crate) struct DataKey(XChaCha20Poly1305);

impl DataKey {
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        XChaCha20Poly1305::new_from_slice(bytes).ok().map(Self)
    }

    /// `payload` sealed for `patient`'s event `event_id`: `{"$sealed":"v1.…"}`.
    pub(crate) fn seal(
        &self,
        patient: Uuid,
        event_id: Uuid,
        payload: &str,
    ) -> Result<String, StoreError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = [PAYLOAD_AAD, patient.as_bytes(), event_id.as_bytes()].concat();
        let sealed = self
            .0
            .encrypt(
                &nonce,
                Payload {
                    msg: payload.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| StoreError::Keys("a payload could not be encrypted".into()))?;
        let text = BASE64.encode([nonce.as_slice(), &sealed].concat());
        Ok(format!("{SEALED_PREFIX}{text}\"}}"))
    }

    /// The plaintext of a sealed payload, or why it does not open (without
    /// anything of its content).
    fn open(&self, patient: Uuid, event_id: Uuid, payload: &str) -> Result<String, &'static str> {
        let text = payload
            .strip_prefix(SEALED_PREFIX)
            .and_then(|t| t.strip_suffix("\"}"))
            .ok_or("an encrypted payload of an unknown form")?;
        let bytes = BASE64
            .decode(text)
            .map_err(|_| "an encrypted payload that is not base64")?;
        if bytes.len() <= NONCE_LEN {
            return Err("an encrypted payload cut short");
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let aad = [PAYLOAD_AAD, patient.as_bytes(), event_id.as_bytes()].concat();
        let plain = self
            .0
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| "an encrypted payload that does not open with its patient's key")?;
        String::from_utf8(plain).map_err(|_| "an encrypted payload that is not text")
    }
}

/// Whether a stored payload is sealed.
pub fn is_sealed(payload: &str) -> bool {
    payload.starts_with(SEALED_PREFIX)
}

/// A row of `patient_keys`: patient, master key id, wrapped key (none once
/// erased).
pub(crate) type KeyRow = (Uuid, Vec<u8>, Option<Vec<u8>>);

/// A patient's key as a batch or a read finds it.
#[derive(Clone)]
pub(crate) enum KeyState {
    Live(DataKey),
    Erased,
}

/// The keys of the patients one append batch writes about: those found,
/// and those made for it (written with its events, if any of them commits).
pub(crate) struct BatchKeys {
    pub states: HashMap<Uuid, KeyState>,
    /// Wrapped keys made for this batch, not yet stored.
    pub made: HashMap<Uuid, Vec<u8>>,
    /// The master key's id (none without a master key).
    pub master_id: Vec<u8>,
    /// Whether this batch seals what it writes about patients.
    pub seal: bool,
}

impl BatchKeys {
    /// Every patient a batch appends about (sealed or not: an erased
    /// patient takes no new events but access records and nothing else).
    pub fn patients_of(units: &[&[AppendRequest]]) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = units
            .iter()
            .flat_map(|u| u.iter())
            .filter_map(|r| r.patient_id)
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// The states of the stored keys, and a new key for every patient the
    /// batch would seal for and who has none.
    pub fn prepare(
        keyring: &Keyring,
        units: &[&[AppendRequest]],
        stored: Vec<KeyRow>,
    ) -> Result<Self, StoreError> {
        let mut states = states_of(keyring, stored)?;
        let mut made = HashMap::new();
        let master_id = keyring
            .master
            .as_deref()
            .map(|m| m.id.clone())
            .unwrap_or_default();
        if keyring.seals() {
            let master = keyring.master()?;
            for r in units.iter().flat_map(|u| u.iter()) {
                let Some(patient) = r.patient_id.filter(|_| sealed_request(r)) else {
                    continue;
                };
                if states.contains_key(&patient) {
                    continue;
                }
                let raw = XChaCha20Poly1305::generate_key(&mut OsRng);
                let key = DataKey::from_bytes(&raw)
                    .ok_or_else(|| StoreError::Keys("a data key could not be made".into()))?;
                made.insert(patient, master.wrap(patient, &raw)?);
                states.insert(patient, KeyState::Live(key));
            }
        }
        Ok(Self {
            states,
            made,
            master_id,
            seal: keyring.seals(),
        })
    }
}

/// Whether a request's events are sealed when the log seals: every event
/// about a patient, but the access records (who read what: no clinical
/// content, and kept after an erasure) and the erasure itself.
pub(crate) fn sealed_request(r: &AppendRequest) -> bool {
    r.patient_id.is_some() && !CLEAR_TYPES.contains(&r.aggregate_type.as_str()) && !erases(r)
}

/// Whether a request erases its patient.
pub(crate) fn erases(r: &AppendRequest) -> bool {
    r.events.iter().any(|e| e.event_type == ERASURE_EVENT)
}

/// Whether a request may append about a patient already erased: only an
/// access record.
pub(crate) fn allowed_after_erasure(r: &AppendRequest) -> bool {
    CLEAR_TYPES.contains(&r.aggregate_type.as_str())
}

fn states_of(
    keyring: &Keyring,
    stored: Vec<KeyRow>,
) -> Result<HashMap<Uuid, KeyState>, StoreError> {
    let mut states = HashMap::with_capacity(stored.len());
    for (patient, master_id, wrapped) in stored {
        let state = match wrapped {
            None => KeyState::Erased,
            Some(wrapped) => {
                let master = keyring.master()?;
                if master.id() != master_id.as_slice() {
                    return Err(StoreError::Keys(format!(
                        "the data keys were made with master key {}, and this process has \
                         master key {}: start it with the clinic's master key \
                         (--master-key / ANAMNESIS_MASTER_KEY)",
                        hex::encode(&master_id),
                        hex::encode(master.id())
                    )));
                }
                KeyState::Live(master.unwrap(patient, &wrapped)?)
            }
        };
        states.insert(patient, state);
    }
    Ok(states)
}

/// The patients whose keys a read needs: those of its sealed payloads.
pub(crate) fn sealed_patients(events: &[super::StoredEvent]) -> Result<Vec<Uuid>, StoreError> {
    let mut ids = HashSet::new();
    for e in events.iter().filter(|e| is_sealed(&e.payload)) {
        let patient = e.patient_id.ok_or_else(|| StoreError::Corrupt {
            position: e.global_position,
            detail: "an encrypted payload names no patient".into(),
        })?;
        ids.insert(patient);
    }
    let mut ids: Vec<Uuid> = ids.into_iter().collect();
    ids.sort();
    Ok(ids)
}

/// Opens the sealed payloads of `events` in place with the keys found for
/// them: an erased patient's payload becomes [`ERASED_PAYLOAD`]; a payload
/// whose patient has no key, or that does not open, is damage.
pub(crate) fn open_all(
    keyring: &Keyring,
    events: &mut [super::StoredEvent],
    stored: Vec<KeyRow>,
) -> Result<(), StoreError> {
    let states = states_of(keyring, stored)?;
    for e in events.iter_mut().filter(|e| is_sealed(&e.payload)) {
        let position = e.global_position;
        let patient = e.patient_id.ok_or_else(|| StoreError::Corrupt {
            position,
            detail: "an encrypted payload names no patient".into(),
        })?;
        e.payload = match states.get(&patient) {
            Some(KeyState::Erased) => ERASED_PAYLOAD.to_owned(),
            Some(KeyState::Live(key)) => {
                key.open(patient, e.event_id, &e.payload)
                    .map_err(|detail| StoreError::Corrupt {
                        position,
                        detail: detail.into(),
                    })?
            }
            None => {
                return Err(StoreError::Corrupt {
                    position,
                    detail: "an encrypted payload whose patient has no data key".into(),
                })
            }
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_payload_opens_only_for_its_patient_and_event() {
        let raw = XChaCha20Poly1305::generate_key(&mut OsRng);
        let key = DataKey::from_bytes(&raw).expect("key");
        let (patient, event) = (Uuid::now_v7(), Uuid::now_v7());
        let sealed = key
            .seal(patient, event, r#"{"name":"Ada"}"#)
            .expect("sealed");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("Ada"));
        assert!(serde_json::from_str::<serde_json::Value>(&sealed).is_ok());
        assert_eq!(
            key.open(patient, event, &sealed).expect("opens"),
            r#"{"name":"Ada"}"#
        );
        assert!(key.open(Uuid::now_v7(), event, &sealed).is_err());
        assert!(key.open(patient, Uuid::now_v7(), &sealed).is_err());
        let flipped = sealed.replacen("v1.", "v1.A", 1);
        assert!(key.open(patient, event, &flipped).is_err());
    }

    #[test]
    fn a_data_key_unwraps_only_with_its_master_key_and_patient() {
        let master = MasterKey::from_hex(&MasterKey::generate_hex()).expect("master");
        let other = MasterKey::from_hex(&MasterKey::generate_hex()).expect("master");
        let patient = Uuid::now_v7();
        let wrapped = master.wrap(patient, &[7u8; 32]).expect("wrapped");
        assert!(master.unwrap(patient, &wrapped).is_ok());
        assert!(master.unwrap(Uuid::now_v7(), &wrapped).is_err());
        assert!(other.unwrap(patient, &wrapped).is_err());
        assert_ne!(master.id(), other.id());
        assert!(format!("{master:?}").starts_with("MasterKey("));
        assert!(MasterKey::from_hex("abcd").is_err());
    }
}

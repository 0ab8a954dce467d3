//! The clinical-record routes of the endpoint × role table: the records in
//! and out of each clinician's care, and a request per row that succeeds
//! when the caller may make it.

use serde_json::{json, Value};

use anamnesis_tests::access::Row;

use super::World;

/// A note with an assessment.
pub fn note(n: usize) -> Value {
    json!({"kind": "note", "subjective": format!("visit {n}"), "assessment": "well"})
}

/// Vital signs taken an hour ago.
pub fn vitals() -> Value {
    let taken = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    json!({"kind": "vitals", "taken_at": taken, "heart_rate_bpm": 72,
           "systolic_mmhg": 120, "diastolic_mmhg": 80})
}

/// What a request for a chart route needs besides its path and JSON body.
pub enum Prepared {
    Json(String, Option<Value>),
    /// A document upload: path, bytes and their media type.
    Bytes(String, Vec<u8>, &'static str),
}

impl World {
    /// Puts the doctor and the nurse on the own record's care team, and
    /// sets up the records in the doctor's care only and behind the glass.
    pub(super) async fn open_chart(&mut self) -> anyhow::Result<()> {
        for role in ["doctor", "nurse"] {
            let user_id = super::user_id_of(&self.account(role).access)?;
            let path = format!("/v1/patients/{}/care-team", self.own_id);
            let body = json!({"user_id": user_id, "reason": "primary care"});
            self.setup("staff", "POST", &path, Some(body)).await?;
        }
        self.doctors_id = self.new_patient().await?;
        self.glass_id = self
            .as_role(
                "staff",
                "POST",
                "/v1/patients",
                Some(anamnesis_tests::fixtures::patient("Glass")),
            )
            .await?;
        let path = format!("/v1/patients/{}/break-glass", self.glass_id);
        self.setup(
            "doctor",
            "POST",
            &path,
            Some(json!({"reason": "unconscious in the emergency department"})),
        )
        .await?;
        Ok(())
    }

    /// An entry written as `role` on `patient`; signed when `sign` (a note).
    async fn entry(
        &mut self,
        role: &str,
        patient: &str,
        body: Value,
        sign: bool,
    ) -> anyhow::Result<String> {
        let path = format!("/v1/patients/{patient}/chart");
        let id = self.as_role(role, "POST", &path, Some(body)).await?;
        if sign {
            self.setup(role, "POST", &format!("/v1/chart/{id}/sign"), None)
                .await?;
        }
        Ok(id)
    }

    /// A signed note on `patient`, made once per record and kept.
    async fn signed_note(&mut self, patient: &str) -> anyhow::Result<String> {
        if let Some((_, id)) = self.notes.iter().find(|(p, _)| p == patient) {
            return Ok(id.clone());
        }
        let n = self.unique();
        let id = self.entry("doctor", patient, note(n), true).await?;
        self.readable(&id).await?;
        self.notes.push((patient.to_owned(), id.clone()));
        Ok(id)
    }

    /// Waits until the chart read model holds entry `id` (kept entries are
    /// read by every role right after they are made).
    async fn readable(&self, id: &str) -> anyhow::Result<()> {
        let token = self.account("compliance").access.clone();
        let head = [("X-Min-Position", self.s.event_count().await?.to_string())];
        let r = self
            .s
            .call("GET", &format!("/v1/chart/{id}"), Some(&token), None, &head)
            .await?;
        anyhow::ensure!(r.status == 200, "reading entry {id}: {r:?}");
        Ok(())
    }

    /// A fresh nurse account; returns its user id.
    async fn new_nurse(&mut self) -> anyhow::Result<String> {
        let n = self.unique();
        let admin = self.account("admin").access.clone();
        super::create_user(&self.s, &admin, &format!("carer{n}"), "nurse").await
    }

    /// The request for a clinical-record row on `patient`, or `None` for
    /// another domain's route.
    pub(super) async fn chart_request(
        &mut self,
        row: &Row,
        patient: &str,
    ) -> anyhow::Result<Option<Prepared>> {
        let n = self.unique();
        let json = |path: String, body: Option<Value>| Ok(Some(Prepared::Json(path, body)));
        match (row.route, row.variant) {
            ("POST /v1/patients/{id}/chart", "note") => {
                json(format!("/v1/patients/{patient}/chart"), Some(note(n)))
            }
            ("POST /v1/patients/{id}/chart", _) => {
                json(format!("/v1/patients/{patient}/chart"), Some(vitals()))
            }
            ("POST /v1/patients/{id}/chart/documents", _) => Ok(Some(Prepared::Bytes(
                format!("/v1/patients/{patient}/chart/documents?title=Letter%20{n}"),
                format!("%PDF-1.4 letter {n}").into_bytes(),
                "application/pdf",
            ))),
            ("GET /v1/patients/{id}/chart", _) => {
                json(format!("/v1/patients/{patient}/chart?limit=5"), None)
            }
            ("GET /v1/chart/{entry_id}", _) => {
                let id = self.signed_note(patient).await?;
                json(format!("/v1/chart/{id}"), None)
            }
            ("GET /v1/chart/{entry_id}/versions", _) => {
                let id = self.signed_note(patient).await?;
                json(format!("/v1/chart/{id}/versions"), None)
            }
            ("GET /v1/chart/{entry_id}/content", _) => {
                let id = match &self.document {
                    Some(id) => id.clone(),
                    None => {
                        let path = format!("/v1/patients/{patient}/chart/documents?title=Scan");
                        let token = self.account("doctor").access.clone();
                        let r = self
                            .s
                            .raw(
                                "POST",
                                &path,
                                Some(&token),
                                "image/png",
                                vec![0x89, b'P', b'N', b'G'],
                            )
                            .await?;
                        anyhow::ensure!(r.status == 201, "uploading a document: {r:?}");
                        let id = r.body["id"].as_str().unwrap_or_default().to_owned();
                        self.readable(&id).await?;
                        self.document = Some(id.clone());
                        id
                    }
                };
                json(format!("/v1/chart/{id}/content"), None)
            }
            ("PUT /v1/chart/{entry_id}", _) => {
                let id = self.entry("doctor", patient, note(n), false).await?;
                json(format!("/v1/chart/{id}"), Some(note(n + 1)))
            }
            ("POST /v1/chart/{entry_id}/sign", _) => {
                let id = self.entry("doctor", patient, note(n), false).await?;
                json(format!("/v1/chart/{id}/sign"), None)
            }
            ("POST /v1/chart/{entry_id}/amend", "note") => {
                let id = self.entry("doctor", patient, note(n), true).await?;
                json(
                    format!("/v1/chart/{id}/amend"),
                    Some(json!({"reason": "addendum", "entry": note(n + 1)})),
                )
            }
            ("POST /v1/chart/{entry_id}/amend", _) => {
                let id = self.entry("nurse", patient, vitals(), false).await?;
                json(
                    format!("/v1/chart/{id}/amend"),
                    Some(json!({"reason": "wrong cuff size", "entry": vitals()})),
                )
            }
            ("POST /v1/chart/{entry_id}/entered-in-error", _) => {
                let id = self.entry("doctor", patient, note(n), true).await?;
                json(
                    format!("/v1/chart/{id}/entered-in-error"),
                    Some(json!({"reason": "wrong patient"})),
                )
            }
            ("GET /v1/patients/{id}/care-team", _) => {
                json(format!("/v1/patients/{patient}/care-team"), None)
            }
            ("POST /v1/patients/{id}/care-team", _) => {
                let user_id = self.new_nurse().await?;
                json(
                    format!("/v1/patients/{patient}/care-team"),
                    Some(json!({"user_id": user_id, "reason": "night shift"})),
                )
            }
            ("POST /v1/patients/{id}/care-team/{user_id}/removal", _) => {
                let user_id = self.new_nurse().await?;
                let path = format!("/v1/patients/{patient}/care-team");
                let body = json!({"user_id": user_id, "reason": "night shift"});
                self.setup("staff", "POST", &path, Some(body)).await?;
                json(
                    format!("/v1/patients/{patient}/care-team/{user_id}/removal"),
                    Some(json!({"reason": "shift over"})),
                )
            }
            ("POST /v1/patients/{id}/break-glass", _) => json(
                format!("/v1/patients/{patient}/break-glass"),
                Some(json!({"reason": "unconscious in the emergency department"})),
            ),
            ("GET /v1/break-glass", _) => json("/v1/break-glass".to_owned(), None),
            _ => Ok(None),
        }
    }
}

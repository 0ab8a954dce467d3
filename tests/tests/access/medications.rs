//! The prescription routes of the endpoint × role table: a request per row
//! that succeeds when the caller may make it. Each command acts on a
//! medication of its own (an order takes one dose change, one stop, one
//! waiting refill); reads use one kept per record.

use serde_json::{json, Value};

use anamnesis_tests::access::Row;

use super::World;

/// An order for a drug no other order of the record holds.
pub fn order(n: usize, refills: u32) -> Value {
    json!({"order": {
        "medication": {"name": anamnesis_tests::fixtures::drug_name("Testa", n as u64)},
        "dose": {"amount": 250, "unit": "mg"},
        "route": "oral",
        "frequency": {"kind": "times_a_day", "times": ["08:00", "20:00"]},
        "starts_at": (chrono::Utc::now() - chrono::Duration::hours(2)).to_rfc3339(),
        "duration_days": 7,
        "refills": refills
    }})
}

impl World {
    /// A fresh medication on `patient`, prescribed by the doctor.
    async fn medication(&mut self, patient: &str, refills: u32) -> anyhow::Result<String> {
        let n = self.unique();
        let path = format!("/v1/patients/{patient}/medications");
        self.as_role("doctor", "POST", &path, Some(order(n, refills)))
            .await
    }

    /// A medication on `patient` made once per record and kept, readable.
    async fn kept_medication(&mut self, patient: &str) -> anyhow::Result<String> {
        if let Some((_, id)) = self.medications.iter().find(|(p, _)| p == patient) {
            return Ok(id.clone());
        }
        let id = self.medication(patient, 0).await?;
        self.medication_view(&id).await?;
        self.medications.push((patient.to_owned(), id.clone()));
        Ok(id)
    }

    /// Medication `id` as compliance reads it once the read model holds it.
    async fn medication_view(&self, id: &str) -> anyhow::Result<Value> {
        let token = self.account("compliance").access.clone();
        let head = [("X-Min-Position", self.s.event_count().await?.to_string())];
        let path = format!("/v1/medications/{id}");
        let r = self.s.call("GET", &path, Some(&token), None, &head).await?;
        anyhow::ensure!(r.status == 200, "reading medication {id}: {r:?}");
        Ok(r.body)
    }

    /// The request for a prescription row on `patient`, or `None` for
    /// another domain's route.
    pub(super) async fn medication_request(
        &mut self,
        row: &Row,
        patient: &str,
    ) -> anyhow::Result<Option<(String, Option<Value>)>> {
        let n = self.unique();
        Ok(Some(match row.route {
            "POST /v1/patients/{id}/medications" => (
                format!("/v1/patients/{patient}/medications"),
                Some(order(n, 0)),
            ),
            "GET /v1/patients/{id}/medications" => {
                (format!("/v1/patients/{patient}/medications"), None)
            }
            "GET /v1/patients/{id}/doses" => (format!("/v1/patients/{patient}/doses"), None),
            "GET /v1/medications/{medication_id}" => {
                let id = self.kept_medication(patient).await?;
                (format!("/v1/medications/{id}"), None)
            }
            "GET /v1/medications/{medication_id}/history" => {
                let id = self.kept_medication(patient).await?;
                (format!("/v1/medications/{id}/history"), None)
            }
            "POST /v1/medications/{medication_id}/dose" => {
                let id = self.medication(patient, 0).await?;
                (
                    format!("/v1/medications/{id}/dose"),
                    Some(json!({"dose": {"amount": 500, "unit": "mg"}, "reason": "no effect"})),
                )
            }
            "POST /v1/medications/{medication_id}/stop" => {
                let id = self.medication(patient, 0).await?;
                (
                    format!("/v1/medications/{id}/stop"),
                    Some(json!({"outcome": "discontinued", "reason": "rash"})),
                )
            }
            "POST /v1/medications/{medication_id}/refill-requests" => {
                let id = self.medication(patient, 1).await?;
                (
                    format!("/v1/medications/{id}/refill-requests"),
                    Some(json!({"note": "running low"})),
                )
            }
            "POST /v1/medications/{medication_id}/refill-decision" => {
                let id = self.medication(patient, 1).await?;
                let path = format!("/v1/medications/{id}/refill-requests");
                self.setup("patient", "POST", &path, Some(json!({})))
                    .await?;
                let view = self.medication_view(&id).await?;
                let request = view["medication"]["pending_refill"].clone();
                anyhow::ensure!(request.is_string(), "no waiting refill: {view}");
                (
                    format!("/v1/medications/{id}/refill-decision"),
                    Some(json!({"request_id": request, "approve": true})),
                )
            }
            "POST /v1/medications/{medication_id}/administrations" => {
                let id = self.kept_medication(patient).await?;
                (
                    format!("/v1/medications/{id}/administrations"),
                    Some(json!({"outcome": "given", "at": chrono::Utc::now().to_rfc3339()})),
                )
            }
            _ => return Ok(None),
        }))
    }
}

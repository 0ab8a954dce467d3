//! The messaging routes of the endpoint × role table: a thread on the
//! patient account's own record between the patient, the doctor and the
//! front desk (the nurse is on the care team but takes no part), and a
//! request per row that succeeds when the caller may make it.

use serde_json::{json, Value};

use anamnesis_tests::access::Row;

use super::World;

impl World {
    /// The thread the reading and writing rows act on, started once by the
    /// front desk on `patient` with the doctor.
    async fn thread(&mut self, patient: &str) -> anyhow::Result<String> {
        if let Some(id) = &self.thread {
            return Ok(id.clone());
        }
        let doctor = super::user_id_of(&self.account("doctor").access)?;
        let body = json!({"patient_id": patient, "subject": "Your results",
                          "body": "Your results are in.", "participants": [doctor]});
        let id = self
            .as_role("staff", "POST", "/v1/threads", Some(body))
            .await?;
        self.thread = Some(id.clone());
        Ok(id)
    }

    /// The request for a messaging row on `patient`, or `None` for another
    /// domain's route.
    pub(super) async fn messaging_request(
        &mut self,
        row: &Row,
        patient: &str,
    ) -> anyhow::Result<Option<(String, Option<Value>)>> {
        let n = self.unique();
        Ok(Some(match row.route {
            "POST /v1/threads" => {
                // The front desk takes part, so that whoever starts it (the
                // patient too) has someone to write to.
                let desk = super::user_id_of(&self.account("staff").access)?;
                (
                    "/v1/threads".to_owned(),
                    Some(
                        json!({"patient_id": patient, "subject": format!("Question {n}"),
                                "body": "Can I take ibuprofen?", "participants": [desk]}),
                    ),
                )
            }
            "GET /v1/threads/{id}" => {
                let id = self.thread(patient).await?;
                (format!("/v1/threads/{id}"), None)
            }
            "POST /v1/threads/{id}/messages" => {
                let id = self.thread(patient).await?;
                (
                    format!("/v1/threads/{id}/messages"),
                    Some(json!({"body": format!("Message {n}\nwith a second line")})),
                )
            }
            "POST /v1/threads/{id}/participants" => {
                let id = self.thread(patient).await?;
                // A nurse new to the care team, for each call.
                let admin = self.account("admin").access.clone();
                let name = format!("thread.nurse{n}");
                let nurse = super::create_user(&self.s, &admin, &name, "nurse").await?;
                let path = format!("/v1/patients/{patient}/care-team");
                let body = json!({"user_id": nurse, "reason": "night shift"});
                self.setup("staff", "POST", &path, Some(body)).await?;
                (
                    format!("/v1/threads/{id}/participants"),
                    Some(json!({"user_id": nurse})),
                )
            }
            "POST /v1/threads/{id}/read" => {
                let id = self.thread(patient).await?;
                (format!("/v1/threads/{id}/read"), Some(json!({"up_to": 1})))
            }
            "POST /v1/threads/{id}/archive" => {
                let id = self.thread(patient).await?;
                (
                    format!("/v1/threads/{id}/archive"),
                    Some(json!({"archived": true})),
                )
            }
            "GET /v1/me/threads" => ("/v1/me/threads".to_owned(), None),
            _ => return Ok(None),
        }))
    }
}

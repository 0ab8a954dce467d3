//! The multi-factor routes of the endpoint × role table (ADR 0025): each
//! role's own account starts an enrolment, confirms one and turns one off;
//! the second login step answers with recovery codes of an account enrolled
//! for it; an admin resets a fresh account's enrolment. Codes are computed
//! here from the `otpauth://` URI the server gives.

use serde_json::{json, Value};
use totp_rs::TOTP;

use anamnesis_tests::access::Row;
use anamnesis_tests::fixtures::PASSWORD;

use super::World;

/// An account enrolled for the second login step, and its unused recovery codes.
#[derive(Default)]
pub struct Enrolled {
    username: String,
    recovery: Vec<String>,
}

/// The step of now: waits out the last two seconds of a step, so that a
/// code of the step before is still accepted when the request lands.
async fn current_step() -> u64 {
    loop {
        let now = chrono::Utc::now().timestamp();
        if now % 30 < 28 {
            return now as u64 / 30;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

impl World {
    /// Starts an enrolment as the holder of `token`; its authenticator.
    async fn start_enrolment(&self, token: &str) -> anyhow::Result<TOTP> {
        let r = self
            .s
            .call("POST", "/v1/me/mfa/totp", Some(token), None, &[])
            .await?;
        anyhow::ensure!(r.status == 200, "starting an enrolment: {r:?}");
        let uri = r.body["otpauth_uri"].as_str().unwrap_or_default();
        TOTP::from_url(uri).map_err(|e| anyhow::anyhow!("{uri}: {e:?}"))
    }

    /// Confirms an enrolment with the code of `step`; its reply.
    async fn confirm(&self, token: &str, totp: &TOTP, step: u64) -> anyhow::Result<Value> {
        let body = json!({"code": totp.generate(step * 30)});
        let r = self
            .s
            .call(
                "POST",
                "/v1/me/mfa/totp/confirm",
                Some(token),
                Some(body),
                &[],
            )
            .await?;
        anyhow::ensure!(r.status == 200, "confirming an enrolment: {r:?}");
        Ok(r.body)
    }

    /// A fresh nurse account, signed in: its name and access token.
    async fn fresh_account(&mut self) -> anyhow::Result<(String, String)> {
        let name = format!("second{}", self.unique());
        let admin = self.account("admin").access.clone();
        super::create_user(&self.s, &admin, &name, "nurse").await?;
        let (access, _) = super::login(&self.s, &name, PASSWORD).await?;
        Ok((name, access))
    }

    /// A challenge of the account enrolled for the second step, and a
    /// recovery code to answer it with (enrolling one when none is left).
    async fn recovery_answer(&mut self) -> anyhow::Result<Value> {
        if self.mfa.recovery.is_empty() {
            let (username, access) = self.fresh_account().await?;
            let totp = self.start_enrolment(&access).await?;
            let confirmed = self.confirm(&access, &totp, current_step().await).await?;
            let codes = confirmed["recovery_codes"].as_array().cloned();
            self.mfa = Enrolled {
                username,
                recovery: codes
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect(),
            };
        }
        let body = json!({"username": self.mfa.username, "password": PASSWORD});
        let r = self
            .s
            .call("POST", "/v1/auth/login", None, Some(body), &[])
            .await?;
        anyhow::ensure!(r.body["mfa_required"] == true, "a challenge: {r:?}");
        let code = self.mfa.recovery.pop().unwrap_or_default();
        Ok(json!({"challenge": r.body["challenge"], "recovery_code": code}))
    }

    /// The request for a multi-factor row as `role`, or `None` for another
    /// domain's route.
    pub(super) async fn mfa_request(
        &mut self,
        row: &Row,
        role: Option<&str>,
    ) -> anyhow::Result<Option<(String, Option<Value>)>> {
        let token = role.map(|r| self.account(r).access.clone());
        let path = row.route.split_once(' ').map_or("", |(_, p)| p).to_owned();
        Ok(Some(match row.route {
            "POST /v1/auth/login/mfa" => (path, Some(self.recovery_answer().await?)),
            "POST /v1/me/mfa/totp" => (path, None),
            "POST /v1/me/mfa/totp/disable" => {
                let step = current_step().await;
                let code = match &token {
                    // Enrolled with the code of the step before, turned
                    // off with this step's.
                    Some(token) => {
                        let totp = self.start_enrolment(token).await?;
                        self.confirm(token, &totp, step - 1).await?;
                        totp.generate(step * 30)
                    }
                    None => "123456".to_owned(),
                };
                (path, Some(json!({"code": code})))
            }
            "POST /v1/me/mfa/totp/confirm" => {
                // The step after now: newer than the one that turned the
                // account's last enrolment off.
                let step = current_step().await + 1;
                let code = match &token {
                    Some(token) => self.start_enrolment(token).await?.generate(step * 30),
                    None => "123456".to_owned(),
                };
                (path, Some(json!({"code": code})))
            }
            "POST /v1/users/{username}/mfa/reset" => {
                let (username, access) = self.fresh_account().await?;
                self.start_enrolment(&access).await?;
                (
                    format!("/v1/users/{username}/mfa/reset"),
                    Some(json!({"reason": "lost phone"})),
                )
            }
            _ => return Ok(None),
        }))
    }
}

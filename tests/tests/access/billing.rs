//! The billing routes of the endpoint × role table: a listed code, a
//! coverage and an issued bill (with a payment) on the own and the other
//! record, and a request per row that succeeds when the caller may make it
//! (a fresh draft, line, coverage or claim where the call uses one up).

use serde_json::{json, Value};

use anamnesis_tests::access::Row;
use anamnesis_tests::fixtures::at;

use super::World;

/// The code every bill line uses, at 100.00.
const CODE: &str = "ACC-1";

/// What the billing rows act on.
#[derive(Default)]
pub struct Ledger {
    /// The coverage of the own and the other record.
    coverage: (String, String),
    /// An issued bill of 1,000,000 minor units on each.
    issued: (String, String),
    /// A draft bill on the own record.
    draft: String,
}

impl World {
    /// Lists the code, records coverage and bills both records; waits
    /// until the read model shows them.
    pub(super) async fn open_billing(&mut self) -> anyhow::Result<()> {
        let price = json!({"description": "consultation", "unit_price": 10_000});
        self.setup(
            "admin",
            "PUT",
            &format!("/v1/billing/price-list/{CODE}"),
            Some(price),
        )
        .await?;
        let (own, other) = (self.own_id.clone(), self.other_id.clone());
        self.ledger.coverage = (self.cover(&own).await?, self.cover(&other).await?);
        self.ledger.issued = (self.issued(&own).await?, self.issued(&other).await?);
        self.ledger.draft = self.draft(&own).await?;
        // A payment on the own bill, for the refunds.
        let path = format!("/v1/bills/{}/payments", self.ledger.issued.0);
        let paid = self
            .setup(
                "staff",
                "POST",
                &path,
                Some(json!({"amount": 100_000, "method": "cash"})),
            )
            .await?;
        let staff = self.account("staff").access.clone();
        let path = format!("/v1/bills/{}", self.ledger.issued.1);
        let r = self
            .s
            .call("GET", &path, Some(&staff), None, &at(&paid))
            .await?;
        anyhow::ensure!(r.status == 200, "reading the other bill: {r:?}");
        Ok(())
    }

    async fn cover(&mut self, patient: &str) -> anyhow::Result<String> {
        let body = json!({"payer": "Acme Health", "member_id": "M-1", "plan": "Gold",
                          "valid_from": "2000-01-01", "rank": "primary"});
        let path = format!("/v1/patients/{patient}/coverage");
        self.as_role("staff", "POST", &path, Some(body)).await
    }

    async fn draft(&mut self, patient: &str) -> anyhow::Result<String> {
        self.as_role(
            "staff",
            "POST",
            "/v1/bills",
            Some(json!({"patient_id": patient})),
        )
        .await
    }

    async fn line(&mut self, bill: &str, quantity: i64) -> anyhow::Result<String> {
        let path = format!("/v1/bills/{bill}/lines");
        let body = json!({"code": CODE, "quantity": quantity});
        self.as_role("staff", "POST", &path, Some(body)).await
    }

    async fn issued(&mut self, patient: &str) -> anyhow::Result<String> {
        let bill = self.draft(patient).await?;
        self.line(&bill, 100).await?;
        self.setup("staff", "POST", &format!("/v1/bills/{bill}/issue"), None)
            .await?;
        Ok(bill)
    }

    /// A claim of 1.00 on an own issued bill of its own (one claim per
    /// coverage and bill), rejected when `reject`: the bill and the claim.
    async fn claim(&mut self, reject: bool) -> anyhow::Result<(String, String)> {
        let own = self.own_id.clone();
        let bill = self.issued(&own).await?;
        let body = json!({"coverage_id": self.ledger.coverage.0, "amount": 100});
        let claim = self
            .as_role(
                "staff",
                "POST",
                &format!("/v1/bills/{bill}/claims"),
                Some(body),
            )
            .await?;
        if reject {
            let path = format!("/v1/bills/{bill}/claims/{claim}/response");
            let body = json!({"outcome": "rejected", "reason_codes": ["CO-16"]});
            self.setup("staff", "POST", &path, Some(body)).await?;
        }
        Ok((bill, claim))
    }

    /// The request for a billing row, if `row` is one.
    pub(super) async fn billing_request(
        &mut self,
        row: &Row,
        patient: &str,
    ) -> anyhow::Result<Option<(String, Option<Value>)>> {
        let n = self.unique();
        let own = patient == self.own_id;
        let issued = if own {
            self.ledger.issued.0.clone()
        } else {
            self.ledger.issued.1.clone()
        };
        let reason = || Some(json!({"reason": "entered for the wrong patient"}));
        Ok(Some(match row.route {
            "GET /v1/billing/price-list" => ("/v1/billing/price-list".to_owned(), None),
            "PUT /v1/billing/price-list/{code}" => (
                format!("/v1/billing/price-list/SVC-{n}"),
                Some(json!({"description": "a service", "unit_price": 2_500})),
            ),
            "POST /v1/billing/price-list/{code}/retire" => {
                let path = format!("/v1/billing/price-list/OLD-{n}");
                let body = json!({"description": "retiring", "unit_price": 1});
                self.setup("admin", "PUT", &path, Some(body)).await?;
                (format!("{path}/retire"), None)
            }
            "GET /v1/patients/{id}/coverage" => (format!("/v1/patients/{patient}/coverage"), None),
            "POST /v1/patients/{id}/coverage" => {
                // One day each, so that no two overlap.
                let day = chrono::NaiveDate::from_ymd_opt(1990, 1, 1)
                    .unwrap_or_default()
                    .checked_add_days(chrono::Days::new(n as u64))
                    .unwrap_or_default()
                    .to_string();
                (
                    format!("/v1/patients/{patient}/coverage"),
                    Some(
                        json!({"payer": "Beta Mutual", "member_id": format!("B-{n}"),
                                "plan": "Basic", "valid_from": day, "valid_to": day,
                                "rank": "secondary"}),
                    ),
                )
            }
            "POST /v1/patients/{id}/coverage/{coverage_id}/end" => {
                let day = format!("19{:02}-06-01", n % 90 + 10);
                let body = json!({"payer": "Gamma", "member_id": "G", "plan": "P",
                                  "valid_from": day, "valid_to": day, "rank": "secondary"});
                let path = format!("/v1/patients/{patient}/coverage");
                let coverage = self.as_role("staff", "POST", &path, Some(body)).await?;
                (format!("{path}/{coverage}/end"), reason())
            }
            "POST /v1/bills" => ("/v1/bills".to_owned(), Some(json!({"patient_id": patient}))),
            "GET /v1/bills" => ("/v1/bills?status=issued".to_owned(), None),
            "GET /v1/bills/{id}" => (format!("/v1/bills/{issued}"), None),
            "POST /v1/bills/{id}/lines" => (
                format!("/v1/bills/{}/lines", self.ledger.draft),
                Some(json!({"code": CODE, "quantity": 1, "unit_price": 5_000})),
            ),
            "DELETE /v1/bills/{id}/lines/{line_id}" => {
                let bill = self.ledger.draft.clone();
                let line = self.line(&bill, 1).await?;
                (format!("/v1/bills/{bill}/lines/{line}"), None)
            }
            "POST /v1/bills/{id}/issue" => {
                let bill = self.draft(patient).await?;
                self.line(&bill, 1).await?;
                (format!("/v1/bills/{bill}/issue"), None)
            }
            "POST /v1/bills/{id}/void" => {
                let bill = self.draft(patient).await?;
                (format!("/v1/bills/{bill}/void"), reason())
            }
            "POST /v1/bills/{id}/claims" => {
                // A bill of its own: one claim per coverage and bill.
                let bill = self.issued(patient).await?;
                let coverage = if own {
                    self.ledger.coverage.0.clone()
                } else {
                    self.ledger.coverage.1.clone()
                };
                (
                    format!("/v1/bills/{bill}/claims"),
                    Some(json!({"coverage_id": coverage, "amount": 100})),
                )
            }
            "POST /v1/bills/{id}/claims/{claim_id}/response" => {
                let (bill, claim) = self.claim(false).await?;
                (
                    format!("/v1/bills/{bill}/claims/{claim}/response"),
                    Some(json!({"outcome": "accepted"})),
                )
            }
            "POST /v1/bills/{id}/claims/{claim_id}/resubmit" => {
                let (bill, claim) = self.claim(true).await?;
                (
                    format!("/v1/bills/{bill}/claims/{claim}/resubmit"),
                    Some(json!({"amount": 100})),
                )
            }
            "POST /v1/bills/{id}/claims/{claim_id}/withdraw" => {
                let (bill, claim) = self.claim(true).await?;
                (
                    format!("/v1/bills/{bill}/claims/{claim}/withdraw"),
                    reason(),
                )
            }
            "POST /v1/bills/{id}/payments" => (
                format!("/v1/bills/{issued}/payments"),
                Some(json!({"amount": 1, "method": "card"})),
            ),
            "POST /v1/bills/{id}/payments/{payment_id}/settlement" => {
                // A payment the patient starts on her own bill, 1 cent.
                let path = format!("/v1/bills/{issued}/payments");
                let body = json!({"amount": 1, "method": "card"});
                let payment = self.as_role("patient", "POST", &path, Some(body)).await?;
                (
                    format!("/v1/bills/{issued}/payments/{payment}/settlement"),
                    Some(json!({"arrived": true})),
                )
            }
            "POST /v1/bills/{id}/adjustments" => (
                format!("/v1/bills/{issued}/adjustments"),
                Some(json!({"kind": "adjustment", "amount": 1, "reason": "courtesy"})),
            ),
            "POST /v1/bills/{id}/refunds" => (
                format!("/v1/bills/{issued}/refunds"),
                Some(json!({"amount": 1, "reason": "overpaid"})),
            ),
            "GET /v1/patients/{id}/bills" => (format!("/v1/patients/{patient}/bills"), None),
            "GET /v1/billing/aging" => ("/v1/billing/aging".to_owned(), None),
            _ => return Ok(None),
        }))
    }
}

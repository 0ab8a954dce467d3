//! The checks of the analytics scenario: the analyst API's numbers,
//! suppression in JSON and CSV, and no value of a patient in any answer or
//! any row of the analytics tables.

use anamnesis_commands::Db;
use serde_json::{json, Value};

use super::{Seeded, PATIENTS};
use crate::server::{Reply, TestServer};

/// GETs an analytics answer as `token` once every event so far is in it.
pub async fn get(s: &TestServer, token: &str, path: &str) -> anyhow::Result<Reply> {
    let head = s.event_count().await?;
    s.call(
        "GET",
        path,
        Some(token),
        None,
        &[("X-Min-Position", head.to_string())],
    )
    .await
}

/// The answer's row for `key`.
fn row<'a>(r: &'a Reply, key: &str) -> anyhow::Result<&'a Value> {
    r.body["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|row| row["key"] == key)
        .ok_or_else(|| anyhow::anyhow!("no row {key} in {}", r.body))
}

/// Holds `row`'s cells to `expected`: a number is a shown value, `null` a
/// suppressed cell, `"undefined"` a rate with nothing to divide by.
fn cells(row: &Value, expected: &[(&str, Value)]) -> anyhow::Result<()> {
    for (name, want) in expected {
        let cell = &row[*name];
        match want {
            Value::Null => anyhow::ensure!(
                cell["value"].is_null() && cell["suppressed"] == true,
                "{name} should be suppressed in {row}"
            ),
            Value::String(_) => anyhow::ensure!(
                cell["value"].is_null() && cell["suppressed"] == false,
                "{name} should be undefined in {row}"
            ),
            _ => {
                let (got, want) = (cell["value"].as_f64(), want.as_f64());
                anyhow::ensure!(
                    cell["suppressed"] == false
                        && got.zip(want).is_some_and(|(g, w)| (g - w).abs() < 1e-9),
                    "{name}: want {want:?} in {row}"
                );
            }
        }
    }
    Ok(())
}

/// The analyst API's numbers, suppression, CSV and silence about patients.
pub async fn check(s: &TestServer, seeded: &Seeded) -> anyhow::Result<String> {
    let t = &seeded.analyst;
    let (from, to) = (seeded.today, seeded.next_day);
    let mut answers = String::new();
    let n = Value::Null;

    // Appointments by local day.
    let path = format!("/v1/analytics/appointments?from={from}&to={to}&group_by=day");
    let by_day = get(s, t, &path).await?;
    anyhow::ensure!(by_day.status == 200, "{by_day:?}");
    answers.push_str(&by_day.body.to_string());
    let first = row(&by_day, &seeded.day.to_string())?;
    cells(
        first,
        &[
            ("patients", json!(10)),
            ("appointments", json!(10)),
            ("completed", json!(5)),
            ("cancelled", json!(0)),
            ("late_cancelled", json!(0)),
            ("no_show", json!(5)),
            ("open", json!(0)),
            ("completion_rate", json!(0.5)),
            ("cancellation_rate", json!(0.0)),
            ("late_cancellation_rate", json!(0.0)),
            ("no_show_rate", json!(0.5)),
        ],
    )?;
    let lead = first["avg_lead_days"]["value"].as_f64().unwrap_or(-1.0);
    anyhow::ensure!(
        (lead - seeded.lead_days).abs() < 0.01,
        "mean lead {lead} days, measured {}",
        seeded.lead_days
    );
    // One cancellation among six patients: it, the total it is part of,
    // and every rate over it are suppressed; the five completed are not.
    let second = row(&by_day, &seeded.next_day.to_string())?;
    cells(
        second,
        &[
            ("patients", json!(6)),
            ("completed", json!(5)),
            ("cancelled", n.clone()),
            ("appointments", n.clone()),
            ("late_cancelled", n.clone()),
            ("no_show", json!(0)),
            ("completion_rate", n.clone()),
            ("no_show_rate", n.clone()),
        ],
    )?;
    // The day of the late cancellation: one patient, nothing shown of her.
    if seeded.late_day != seeded.day && seeded.late_day != seeded.next_day {
        let late = row(&by_day, &seeded.late_day.to_string())?;
        cells(
            late,
            &[
                ("patients", n.clone()),
                ("appointments", n.clone()),
                ("cancelled", n.clone()),
                ("late_cancelled", n.clone()),
                ("avg_lead_days", n.clone()),
            ],
        )?;
    }

    // By provider and by specialty.
    for (group, a, b) in [
        (
            "provider",
            seeded.provider_a.as_str(),
            seeded.provider_b.as_str(),
        ),
        ("specialty", "cardiology", "dermatology"),
    ] {
        let path = format!("/v1/analytics/appointments?from={from}&to={to}&group_by={group}");
        let r = get(s, t, &path).await?;
        anyhow::ensure!(r.status == 200, "{r:?}");
        answers.push_str(&r.body.to_string());
        cells(
            row(&r, a)?,
            &[("appointments", json!(10)), ("no_show_rate", json!(0.5))],
        )?;
        cells(
            row(&r, b)?,
            &[
                ("patients", json!(7)),
                ("completed", json!(5)),
                ("cancelled", n.clone()),
                ("late_cancelled", n.clone()),
                ("appointments", n.clone()),
                ("cancellation_rate", n.clone()),
            ],
        )?;
        anyhow::ensure!(
            row(&r, b)?["avg_lead_days"]["value"].is_number(),
            "seven patients' mean lead is shown"
        );
    }

    // Living patients by age band, sex and region: the tenth (male, 50-64)
    // died, the twelfth moved from EC1 to SW1.
    for (group, shown, hidden, count) in [
        ("age_band", "50-64", "18-34", 9),
        ("sex", "female", "male", 9),
        ("region", "SW1", "EC1", 10),
    ] {
        let r = get(s, t, &format!("/v1/analytics/patients?group_by={group}")).await?;
        anyhow::ensure!(r.status == 200, "{r:?}");
        answers.push_str(&r.body.to_string());
        cells(row(&r, shown)?, &[("patients", json!(count))])?;
        cells(row(&r, hidden)?, &[("patients", n.clone())])?;
        anyhow::ensure!(
            r.body["rows"].as_array().map(Vec::len) == Some(2),
            "{}",
            r.body
        );
    }

    // Prescriptions by class.
    let r = get(
        s,
        t,
        &format!(
            "/v1/analytics/prescriptions?from={}&to={}",
            seeded.today, seeded.today
        ),
    )
    .await?;
    anyhow::ensure!(r.status == 200, "{r:?}");
    answers.push_str(&r.body.to_string());
    cells(
        row(&r, "nsaids")?,
        &[
            ("patients", json!(5)),
            ("prescriptions", json!(5)),
            ("active", json!(5)),
            ("discontinued", json!(0)),
        ],
    )?;
    cells(
        row(&r, "penicillins")?,
        &[
            ("patients", json!(5)),
            ("active", n.clone()),
            ("discontinued", n.clone()),
            ("prescriptions", n.clone()),
        ],
    )?;
    cells(
        row(&r, "other")?,
        &[("patients", n.clone()), ("prescriptions", n.clone())],
    )?;

    // Billing by month and by payer.
    let month = format!("{}", seeded.today.format("%Y-%m"));
    let path = format!(
        "/v1/analytics/billing?from={}&to={}&group_by=month",
        seeded.today, seeded.today
    );
    let r = get(s, t, &path).await?;
    anyhow::ensure!(r.status == 200, "{r:?}");
    answers.push_str(&r.body.to_string());
    cells(
        row(&r, &month)?,
        &[
            ("patients", json!(12)),
            ("bills", json!(12)),
            ("billed", json!(144_000)),
            ("patient_paid", json!(12_000)),
            ("adjusted", json!(0)),
            ("receivable", json!(84_000)),
            ("claimed", json!(115_200)),
            ("payer_paid", json!(48_000)),
            ("approved", json!(5)),
            ("denied", json!(5)),
            ("pending", n.clone()),
            ("pending_amount", n.clone()),
            ("claims", n.clone()),
            ("approval_rate", json!(0.5)),
            ("denial_rate", json!(0.5)),
        ],
    )?;
    let path = format!(
        "/v1/analytics/billing?from={}&to={}&group_by=payer",
        seeded.today, seeded.today
    );
    let r = get(s, t, &path).await?;
    anyhow::ensure!(r.status == 200, "{r:?}");
    answers.push_str(&r.body.to_string());
    cells(
        row(&r, "Acme Health")?,
        &[
            ("patients", json!(10)),
            ("claims", json!(10)),
            ("claimed", json!(96_000)),
            ("payer_paid", json!(48_000)),
            ("approval_rate", json!(0.5)),
            ("pending", json!(0)),
        ],
    )?;
    let beta = row(&r, "Beta Mutual")?;
    cells(
        beta,
        &[
            ("patients", n.clone()),
            ("claims", n.clone()),
            ("claimed", n.clone()),
            ("pending", n.clone()),
            ("approval_rate", json!("undefined")),
        ],
    )?;
    anyhow::ensure!(beta.get("billed").is_none(), "by payer, no bill columns");

    // CSV: an empty field, and the suppressed column naming it.
    let csv_path = format!("/v1/analytics/appointments?from={from}&to={to}");
    let (status, kind, bytes) = s
        .get_bytes(&csv_path, Some(t), &[("Accept", "text/csv".to_owned())])
        .await?;
    anyhow::ensure!(
        status == 200 && kind.starts_with("text/csv"),
        "{status} {kind}"
    );
    let text = String::from_utf8(bytes)?;
    answers.push_str(&text);
    let mut lines = text.lines();
    anyhow::ensure!(
        lines.next()
            == Some(
                "day,patients,appointments,completed,cancelled,late_cancelled,no_show,open,\
                 completion_rate,cancellation_rate,late_cancellation_rate,no_show_rate,\
                 avg_lead_days,suppressed"
            ),
        "{text}"
    );
    let second = lines
        .find(|l| l.starts_with(&seeded.next_day.to_string()))
        .ok_or_else(|| anyhow::anyhow!("no row for the second day in {text}"))?;
    let fields: Vec<&str> = second.split(',').collect();
    anyhow::ensure!(
        fields[1] == "6" && fields[2].is_empty() && fields[3] == "5" && fields[4].is_empty(),
        "{second}"
    );
    anyhow::ensure!(
        fields[13].split(';').any(|c| c == "appointments")
            && fields[13].split(';').any(|c| c == "cancelled")
            && !fields[13].split(';').any(|c| c == "completed"),
        "{second}"
    );
    let (status, _, bytes) = s
        .get_bytes(
            "/v1/analytics/patients?group_by=sex&format=csv",
            Some(t),
            &[],
        )
        .await?;
    let text = String::from_utf8(bytes)?;
    anyhow::ensure!(
        status == 200 && text == "sex,patients,suppressed\nfemale,9,\nmale,,patients\n",
        "{text}"
    );
    answers.push_str(&text);

    // Nothing of any patient in any answer: no value, no id.
    for secret in seeded.secrets.iter().chain(&seeded.patients) {
        anyhow::ensure!(
            !answers.contains(secret.as_str()),
            "{secret:?} in an analytics answer"
        );
    }
    Ok(answers)
}

/// Every row of every analytics table, as sorted text.
pub async fn dump(s: &TestServer) -> anyhow::Result<Vec<String>> {
    let tables = [
        "analytics_patients",
        "analytics_providers",
        "analytics_appointments",
        "analytics_prescriptions",
        "analytics_bills",
        "analytics_claims",
    ];
    let mut out = Vec::new();
    for table in tables {
        let mut rows: Vec<String> = match &s.db.db {
            Db::Postgres(p) => {
                sqlx::query_scalar(&format!("SELECT row_to_json(t)::text FROM {table} t"))
                    .fetch_all(p)
                    .await?
            }
            Db::Sqlite(p) => {
                let columns: Vec<String> =
                    sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
                        .fetch_all(p)
                        .await?;
                sqlx::query_scalar(&format!(
                    "SELECT json_array({}) FROM {table}",
                    columns.join(", ")
                ))
                .fetch_all(p)
                .await?
            }
        };
        rows.sort();
        out.extend(rows.into_iter().map(|r| format!("{table} {r}")));
    }
    Ok(out)
}

/// No value of a patient in any row of the analytics tables.
pub async fn check_tables(s: &TestServer, seeded: &Seeded) -> anyhow::Result<()> {
    let rows = dump(s).await?;
    anyhow::ensure!(
        rows.iter()
            .filter(|r| r.starts_with("analytics_patients "))
            .count()
            == PATIENTS,
        "every patient is in the lookup"
    );
    for r in &rows {
        for secret in &seeded.secrets {
            anyhow::ensure!(!r.contains(secret.as_str()), "{secret:?} in {r}");
        }
    }
    Ok(())
}

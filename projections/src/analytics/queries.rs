//! The analyst's questions, as SQL over the analytics tables, with
//! small-cell suppression (ADR 0021): every count, sum and rate is a cell
//! that says how many distinct patients are behind it; one behind 1 to 4
//! patients is suppressed (no value, `suppressed: true`), and so is any
//! rate computed from a suppressed cell. Zero is shown: it tells of no one.
//! No answer carries an id of a patient.

use chrono::NaiveDate;
use serde::Serialize;

use anamnesis_commands::Db;

use super::AGE_BANDS;
use crate::billing::date_of;

/// The fewest distinct patients a shown cell may count.
pub const THRESHOLD: i64 = 5;

/// A count or a sum: its value, unless the patients behind it are too few.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Count {
    /// Absent when suppressed.
    pub value: Option<i64>,
    /// Whether 1 to 4 distinct patients are behind it.
    pub suppressed: bool,
}

impl Count {
    /// `value`, made from `patients` distinct patients.
    pub fn of(value: i64, patients: i64) -> Self {
        let suppressed = patients > 0 && patients < THRESHOLD;
        Self {
            value: (!suppressed).then_some(value),
            suppressed,
        }
    }
}

/// A ratio of two cells (or an average over one): suppressed when either
/// is; absent, but not suppressed, when its denominator is zero.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Rate {
    /// Rounded to four decimals; absent when suppressed or undefined.
    pub value: Option<f64>,
    pub suppressed: bool,
}

impl Rate {
    /// `numerator / denominator`, each a shown or suppressed cell.
    pub fn of(numerator: Count, denominator: Count) -> Self {
        Self::scaled(numerator, denominator, 1.0)
    }

    /// `numerator / denominator / scale`.
    pub fn scaled(numerator: Count, denominator: Count, scale: f64) -> Self {
        if numerator.suppressed || denominator.suppressed {
            return Self {
                value: None,
                suppressed: true,
            };
        }
        let value = match (numerator.value, denominator.value) {
            (Some(n), Some(d)) if d != 0 => {
                Some((n as f64 / d as f64 / scale * 10_000.0).round() / 10_000.0)
            }
            _ => None,
        };
        Self {
            value,
            suppressed: false,
        }
    }
}

/// Complementary suppression within a row: a total whose parts are shown
/// beside it is suppressed when any part is (else that part would be the
/// total less the others), or when the part not shown (`hidden`: the
/// distinct patients of what the shown parts leave out) is a small cell.
pub fn total_of(total: Count, parts: &[Count], hidden: i64) -> Count {
    let small = |n: i64| n > 0 && n < THRESHOLD;
    if total.suppressed || small(hidden) || parts.iter().any(|p| p.suppressed) {
        Count {
            value: None,
            suppressed: true,
        }
    } else {
        total
    }
}

/// [`Rate::of`] over a denominator that is the sum of `parts`: suppressed
/// when any part is, since the rate and its numerator give the
/// denominator, and with it the sum of the other parts.
pub fn rate_over(numerator: Count, denominator: Count, parts: &[Count]) -> Rate {
    if parts.iter().any(|p| p.suppressed) {
        return Rate {
            value: None,
            suppressed: true,
        };
    }
    Rate::of(numerator, denominator)
}

/// Runs `sql` binding `params` (integers) and decodes each row as `T`.
pub(super) async fn rows<T>(db: &Db, sql: &str, params: &[i64]) -> Result<Vec<T>, sqlx::Error>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + Send
        + Unpin,
{
    Ok(match db {
        Db::Postgres(p) => {
            let mut q = sqlx::query_as(sql);
            for v in params {
                q = q.bind(*v);
            }
            q.fetch_all(p).await?
        }
        Db::Sqlite(p) => {
            let mut q = sqlx::query_as(sql);
            for v in params {
                q = q.bind(*v);
            }
            q.fetch_all(p).await?
        }
    })
}

/// One measure: its name, which rows it takes, and what it adds up of them.
pub(super) type Measure<'a> = (&'a str, &'a str, &'a str);

/// `SELECT key, <name>, <name>_patients, … FROM <table> WHERE <filter>
/// GROUP BY key` for each measure (`name`, `when`, `what`): the sum of
/// `what` over the rows where `when` holds, and the distinct patients
/// behind it (those with such a row where `what` is not zero). The rows
/// are folded per patient first, so each group costs one pass instead of
/// a distinct count per measure.
pub(super) fn grouped(key: &str, table: &str, filter: &str, measures: &[Measure]) -> String {
    let inner: Vec<String> = measures
        .iter()
        .map(|(name, when, what)| {
            format!(
                "SUM(CASE WHEN {when} THEN {what} ELSE 0 END) AS {name}, \
                 SUM(CASE WHEN {when} AND {what} <> 0 THEN 1 ELSE 0 END) AS {name}_rows"
            )
        })
        .collect();
    let outer: Vec<String> = measures
        .iter()
        .map(|(name, _, _)| {
            format!(
                "CAST(SUM({name}) AS BIGINT) AS {name}, \
                 CAST(SUM(CASE WHEN {name}_rows > 0 THEN 1 ELSE 0 END) AS BIGINT) AS {name}_patients"
            )
        })
        .collect();
    format!(
        "SELECT key, {} FROM (SELECT {key} AS key, patient_id, {} FROM {table} WHERE {filter} \
         GROUP BY {key}, patient_id) per_patient GROUP BY key",
        outer.join(", "),
        inner.join(", ")
    )
}

// --- appointments --------------------------------------------------------------

/// How appointments are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppointmentGroup {
    /// The local day of the start.
    Day,
    Provider,
    Specialty,
}

#[derive(sqlx::FromRow)]
struct AppointmentSums {
    key: String,
    appointments: i64,
    appointments_patients: i64,
    completed: i64,
    completed_patients: i64,
    cancelled: i64,
    cancelled_patients: i64,
    late: i64,
    late_patients: i64,
    on_time_patients: i64,
    no_show: i64,
    no_show_patients: i64,
    open: i64,
    open_patients: i64,
    decided: i64,
    decided_patients: i64,
    lead: i64,
}

/// Appointments in one group.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AppointmentRow {
    /// The group: a local date (`YYYY-MM-DD`), a provider id, or a specialty.
    pub key: String,
    /// Distinct patients with an appointment in the group.
    pub patients: Count,
    /// Appointments starting in the range, whatever became of them.
    pub appointments: Count,
    pub completed: Count,
    /// Cancelled, late or not.
    pub cancelled: Count,
    /// Cancelled less than 24 hours before the start.
    pub late_cancelled: Count,
    pub no_show: Count,
    /// Still booked, checked in or in progress.
    pub open: Count,
    /// Completed / (completed + cancelled + no-show).
    pub completion_rate: Rate,
    /// Cancelled / (completed + cancelled + no-show).
    pub cancellation_rate: Rate,
    /// Late cancellations / (completed + cancelled + no-show).
    pub late_cancellation_rate: Rate,
    /// No-shows / (completed + cancelled + no-show).
    pub no_show_rate: Rate,
    /// Mean days from booking to the (current) start.
    pub avg_lead_days: Rate,
}

/// Appointments whose start falls on local days `from` to `to` (inclusive),
/// grouped.
pub async fn appointments(
    db: &Db,
    from: NaiveDate,
    to: NaiveDate,
    group: AppointmentGroup,
) -> Result<Vec<AppointmentRow>, sqlx::Error> {
    let key = match group {
        AppointmentGroup::Day => "CAST(day AS TEXT)",
        AppointmentGroup::Provider => "provider_id",
        AppointmentGroup::Specialty => "specialty",
    };
    let sql = grouped(
        key,
        "analytics_appointments",
        "day BETWEEN $1 AND $2",
        &[
            ("appointments", "1 = 1", "1"),
            ("completed", "status = 'completed'", "1"),
            ("cancelled", "status = 'cancelled'", "1"),
            ("late", "status = 'cancelled' AND late = 1", "1"),
            ("on_time", "status = 'cancelled' AND late = 0", "1"),
            ("no_show", "status = 'no_show'", "1"),
            (
                "open",
                "status IN ('booked', 'checked_in', 'in_progress')",
                "1",
            ),
            (
                "decided",
                "status IN ('completed', 'cancelled', 'no_show')",
                "1",
            ),
            ("lead", "1 = 1", "starts_at - booked_at"),
        ],
    );
    let sums: Vec<AppointmentSums> = rows(
        db,
        &sql,
        &[
            crate::billing::day_number(from),
            crate::billing::day_number(to),
        ],
    )
    .await?;
    let mut out = Vec::with_capacity(sums.len());
    for s in sums {
        let key = match group {
            AppointmentGroup::Day => {
                let n: i64 = s.key.parse().map_err(|_| sqlx::Error::ColumnDecode {
                    index: "key".into(),
                    source: "a day that is no number".into(),
                })?;
                date_of(n)?.to_string()
            }
            _ => s.key,
        };
        let all = Count::of(s.appointments, s.appointments_patients);
        let decided = Count::of(s.decided, s.decided_patients);
        let completed = Count::of(s.completed, s.completed_patients);
        let cancelled = Count::of(s.cancelled, s.cancelled_patients);
        let no_show = Count::of(s.no_show, s.no_show_patients);
        let open = Count::of(s.open, s.open_patients);
        // Cancelled = late + on time; on time is not shown, so late is
        // hidden when on time is a small cell.
        let late = total_of(Count::of(s.late, s.late_patients), &[], s.on_time_patients);
        let parts = [completed, cancelled, no_show];
        out.push(AppointmentRow {
            key,
            patients: Count::of(s.appointments_patients, s.appointments_patients),
            appointments: total_of(all, &[completed, cancelled, no_show, open], 0),
            completed,
            cancelled,
            late_cancelled: late,
            no_show,
            open,
            completion_rate: rate_over(completed, decided, &parts),
            cancellation_rate: rate_over(cancelled, decided, &parts),
            late_cancellation_rate: rate_over(late, decided, &parts),
            no_show_rate: rate_over(no_show, decided, &parts),
            avg_lead_days: Rate::scaled(Count::of(s.lead, s.appointments_patients), all, 86_400.0),
        });
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

// --- patients ----------------------------------------------------------------

/// How patients are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatientGroup {
    AgeBand,
    Sex,
    Region,
}

#[derive(sqlx::FromRow)]
struct PatientSums {
    key: String,
    patients: i64,
}

/// Living patients in one group.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PatientRow {
    /// An age band (at the patient's latest demographics), a sex, or a region.
    pub key: String,
    pub patients: Count,
}

/// Living patients on record, grouped; age bands youngest first.
pub async fn patients(db: &Db, group: PatientGroup) -> Result<Vec<PatientRow>, sqlx::Error> {
    let key = match group {
        PatientGroup::AgeBand => "age_band",
        PatientGroup::Sex => "sex",
        PatientGroup::Region => "region",
    };
    let sql = format!(
        "SELECT {key} AS key, CAST(COUNT(*) AS BIGINT) AS patients FROM analytics_patients \
         WHERE deceased = 0 GROUP BY {key}"
    );
    let sums: Vec<PatientSums> = rows(db, &sql, &[]).await?;
    let mut out: Vec<PatientRow> = sums
        .into_iter()
        .map(|s| PatientRow {
            key: s.key,
            patients: Count::of(s.patients, s.patients),
        })
        .collect();
    let rank = |k: &str| AGE_BANDS.iter().position(|b| *b == k).unwrap_or(usize::MAX);
    match group {
        PatientGroup::AgeBand => out.sort_by_key(|r| rank(&r.key)),
        _ => out.sort_by(|a, b| a.key.cmp(&b.key)),
    }
    Ok(out)
}

// --- prescriptions ------------------------------------------------------------

#[derive(sqlx::FromRow)]
struct PrescriptionSums {
    key: String,
    prescriptions: i64,
    prescriptions_patients: i64,
    active: i64,
    active_patients: i64,
    discontinued: i64,
    discontinued_patients: i64,
    completed: i64,
    completed_patients: i64,
}

/// Prescriptions of one drug class.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PrescriptionRow {
    /// A class of the built-in drug-class table, or `other`.
    pub key: String,
    pub patients: Count,
    /// Prescribed on a local day in the range.
    pub prescriptions: Count,
    /// Of those, still active.
    pub active: Count,
    /// Of those, discontinued (stopped before their course ended).
    pub discontinued: Count,
    /// Of those, completed (their course ran out).
    pub completed: Count,
}

/// Prescriptions written on local days `from` to `to`, by drug class.
pub async fn prescriptions(
    db: &Db,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<PrescriptionRow>, sqlx::Error> {
    let sql = grouped(
        "drug_class",
        "analytics_prescriptions",
        "day BETWEEN $1 AND $2",
        &[
            ("prescriptions", "1 = 1", "1"),
            ("active", "status = 'active'", "1"),
            ("discontinued", "status = 'discontinued'", "1"),
            ("completed", "status = 'completed'", "1"),
        ],
    );
    let sums: Vec<PrescriptionSums> = rows(
        db,
        &sql,
        &[
            crate::billing::day_number(from),
            crate::billing::day_number(to),
        ],
    )
    .await?;
    let mut sums = sums;
    sums.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(sums
        .into_iter()
        .map(|s| {
            let active = Count::of(s.active, s.active_patients);
            let discontinued = Count::of(s.discontinued, s.discontinued_patients);
            let completed = Count::of(s.completed, s.completed_patients);
            PrescriptionRow {
                key: s.key,
                patients: Count::of(s.prescriptions_patients, s.prescriptions_patients),
                prescriptions: total_of(
                    Count::of(s.prescriptions, s.prescriptions_patients),
                    &[active, discontinued, completed],
                    0,
                ),
                active,
                discontinued,
                completed,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_total_is_hidden_when_one_of_its_parts_is() {
        let shown = Count::of(6, 6);
        let small = Count::of(2, 2);
        assert!(total_of(Count::of(8, 8), &[shown, small], 0).suppressed);
        assert_eq!(total_of(Count::of(8, 8), &[shown], 0).value, Some(8));
        // What the shown parts leave out is a small cell: the total goes.
        assert!(total_of(Count::of(8, 8), &[shown], 2).suppressed);
        let rate = rate_over(shown, Count::of(8, 8), &[shown, small]);
        assert!(rate.suppressed);
    }

    #[test]
    fn a_cell_of_one_to_four_patients_is_suppressed_and_zero_is_not() {
        assert_eq!(Count::of(7, 4).value, None);
        assert!(Count::of(7, 4).suppressed);
        assert_eq!(Count::of(7, 5).value, Some(7));
        assert_eq!(Count::of(0, 0).value, Some(0));
        assert!(!Count::of(0, 0).suppressed);
    }

    #[test]
    fn a_rate_from_a_suppressed_cell_is_suppressed() {
        let shown = Count::of(3, 5);
        let hidden = Count::of(1, 1);
        assert!(Rate::of(hidden, Count::of(10, 8)).suppressed);
        assert!(Rate::of(shown, hidden).suppressed);
        assert_eq!(Rate::of(shown, Count::of(9, 9)).value, Some(0.3333));
        let undefined = Rate::of(Count::of(0, 0), Count::of(0, 0));
        assert_eq!((undefined.value, undefined.suppressed), (None, false));
    }
}

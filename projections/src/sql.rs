//! Multi-row writes for projectors, on either backend.
//!
//! A projector folds a batch into a few statements (one multi-row `INSERT`,
//! one `DELETE … IN (…)`, one `UPDATE … FROM` a `VALUES` list) instead of a
//! round trip per event. Values are typed so that Postgres sees the column's
//! type; the SQL text (`$n` parameters) is the same on both backends.

use chrono::{DateTime, NaiveDate, Utc};

use crate::runner::Tx;

/// One bound value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(Option<String>),
    Int(Option<i64>),
    Date(Option<NaiveDate>),
    Time(Option<DateTime<Utc>>),
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(Some(v))
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(Some(v.to_owned()))
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        Value::Text(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(Some(v))
    }
}
impl From<NaiveDate> for Value {
    fn from(v: NaiveDate) -> Self {
        Value::Date(Some(v))
    }
}
impl From<Option<NaiveDate>> for Value {
    fn from(v: Option<NaiveDate>) -> Self {
        Value::Date(v)
    }
}
impl From<DateTime<Utc>> for Value {
    fn from(v: DateTime<Utc>) -> Self {
        Value::Time(Some(v))
    }
}

/// Rows per statement: well under both backends' parameter limits
/// (65,535 on Postgres, 32,766 on SQLite) for any read-model width.
const ROWS_PER_STATEMENT: usize = 400;

macro_rules! bind_all {
    ($query:expr, $params:expr) => {{
        let mut q = $query;
        for p in $params {
            q = match p {
                Value::Text(v) => q.bind(v.as_deref()),
                Value::Int(v) => q.bind(*v),
                Value::Date(v) => q.bind(*v),
                Value::Time(v) => q.bind(*v),
            };
        }
        q
    }};
}

/// Runs `sql` with `params` in the batch's transaction; returns rows affected.
pub async fn execute(tx: &mut Tx, sql: &str, params: &[Value]) -> Result<u64, sqlx::Error> {
    Ok(match tx {
        Tx::Postgres(c) => bind_all!(sqlx::query(sql), params)
            .execute(&mut **c)
            .await?
            .rows_affected(),
        Tx::Sqlite(c) => bind_all!(sqlx::query(sql), params)
            .execute(&mut **c)
            .await?
            .rows_affected(),
    })
}

/// Runs `sql` (ending in `RETURNING <one text column>`) with `params`;
/// returns the column's values.
pub async fn returning(
    tx: &mut Tx,
    sql: &str,
    params: &[Value],
) -> Result<Vec<String>, sqlx::Error> {
    match tx {
        Tx::Postgres(c) => {
            bind_all!(sqlx::query_scalar(sql), params)
                .fetch_all(&mut **c)
                .await
        }
        Tx::Sqlite(c) => {
            bind_all!(sqlx::query_scalar(sql), params)
                .fetch_all(&mut **c)
                .await
        }
    }
}

/// `(…), (…)` placeholders for `rows` rows of `width` values.
fn tuples(rows: usize, width: usize) -> String {
    let mut out = String::with_capacity(rows * width * 5);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..width {
            if c > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("${}", r * width + c + 1));
        }
        out.push(')');
    }
    out
}

/// `INSERT INTO <into> VALUES (…), (…) <tail>` for every row, in as few
/// statements as the parameter limits allow. `into` is `table (columns)`;
/// `tail` is an `ON CONFLICT …` clause or empty. Returns rows affected.
pub async fn insert_rows(
    tx: &mut Tx,
    into: &str,
    tail: &str,
    rows: &[Vec<Value>],
) -> Result<u64, sqlx::Error> {
    let mut affected = 0;
    for (sql, params) in inserts(into, tail, rows) {
        affected += execute(tx, &sql, &params).await?;
    }
    Ok(affected)
}

/// [`insert_rows`] with a `tail` ending in `RETURNING <one text column>`:
/// the values of the rows written.
pub async fn insert_rows_returning(
    tx: &mut Tx,
    into: &str,
    tail: &str,
    rows: &[Vec<Value>],
) -> Result<Vec<String>, sqlx::Error> {
    let mut written = Vec::new();
    for (sql, params) in inserts(into, tail, rows) {
        written.extend(returning(tx, &sql, &params).await?);
    }
    Ok(written)
}

fn inserts(into: &str, tail: &str, rows: &[Vec<Value>]) -> Vec<(String, Vec<Value>)> {
    rows.chunks(ROWS_PER_STATEMENT)
        .map(|chunk| {
            let width = chunk[0].len();
            let sql = format!(
                "INSERT INTO {into} VALUES {} {tail}",
                tuples(chunk.len(), width)
            );
            (sql, chunk.iter().flatten().cloned().collect())
        })
        .collect()
}

/// `WITH v(<columns>) AS (VALUES (…), (…)) <statement>`: a statement (an
/// `UPDATE … FROM v`, a `DELETE … WHERE … IN (SELECT … FROM v)`) over a
/// list of rows, in as few statements as the parameter limits allow.
pub async fn with_values(
    tx: &mut Tx,
    columns: &str,
    rows: &[Vec<Value>],
    statement: &str,
) -> Result<u64, sqlx::Error> {
    let mut affected = 0;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let width = chunk[0].len();
        let sql = format!(
            "WITH v({columns}) AS (VALUES {}) {statement}",
            tuples(chunk.len(), width)
        );
        let params: Vec<Value> = chunk.iter().flatten().cloned().collect();
        affected += execute(tx, &sql, &params).await?;
    }
    Ok(affected)
}

/// `$1, $2, …` for an `IN (…)` list of `n` values.
pub fn list(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_number_parameters_row_by_row() {
        assert_eq!(tuples(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(list(3), "$1, $2, $3");
    }
}

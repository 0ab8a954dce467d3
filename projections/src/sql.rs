//! Multi-row writes for projectors, on either backend.
//!
//! A projector folds a batch into a few statements (one multi-row `INSERT`,
//! one `DELETE … IN (…)`, one `UPDATE … FROM` a `VALUES` list) instead of a
//! round trip per event. Values are typed so that Postgres sees the column's
//! type; on Postgres the rows travel as one array per column.

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

/// Rows per SQLite statement: well under its parameter limit (32,766) for
/// any read-model width.
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

/// Runs each statement with `$1` bound to `patient`'s id (as text, the
/// read models' id type), in order: how a projector erases a patient.
pub async fn erase_patient(
    tx: &mut Tx,
    statements: &[&str],
    patient: uuid::Uuid,
) -> Result<(), sqlx::Error> {
    let id = Value::from(patient.to_string());
    for sql in statements {
        execute(tx, sql, std::slice::from_ref(&id)).await?;
    }
    Ok(())
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

/// `INSERT INTO <into> … <tail>` for every row, in as few statements as
/// the parameter limits allow. `into` is `table (columns)`; `tail` is an
/// `ON CONFLICT …` clause or empty. Returns rows affected.
///
/// On Postgres the rows go as one array per column (`SELECT * FROM
/// UNNEST($1::text[], …)`): the statement text does not depend on the
/// number of rows, so it is prepared once, not per batch. SQLite (in
/// process, cheap to prepare) gets a `VALUES` list.
pub async fn insert_rows(
    tx: &mut Tx,
    into: &str,
    tail: &str,
    rows: &[Vec<Value>],
) -> Result<u64, sqlx::Error> {
    let mut affected = 0;
    for chunk in chunks(tx, rows) {
        let sql = format!("INSERT INTO {into} {} {tail}", rows_source(tx, chunk));
        affected += run(tx, &sql, chunk).await?;
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
    for chunk in chunks(tx, rows) {
        let sql = format!("INSERT INTO {into} {} {tail}", rows_source(tx, chunk));
        written.extend(texts(tx, &sql, chunk).await?);
    }
    Ok(written)
}

/// The rows of one `INSERT`, gathered from the events of a batch and
/// written in one statement when the run ends: before the projector runs
/// any statement that reads or writes the run's table (so the order of
/// writes to it is the events' order; statements on other tables may run
/// while the run grows, and each caller says which end it), and at the
/// batch's end. With a key column, every row must be
/// new: a key already in the table, or twice in the run, stops the
/// projector at the position of the event that made it again.
pub struct Run {
    into: &'static str,
    tail: &'static str,
    key: Option<&'static str>,
    duplicate: &'static str,
    rows: Vec<Vec<Value>>,
    /// Each row's key (when checked) and the position that made it.
    made: Vec<(String, i64)>,
}

impl Run {
    /// A run of `INSERT INTO <into> … <tail>` (`tail` an `ON CONFLICT`
    /// clause or empty) whose rows are not checked.
    pub fn unchecked(into: &'static str, tail: &'static str) -> Self {
        Self {
            into,
            tail,
            key: None,
            duplicate: "",
            rows: Vec::new(),
            made: Vec::new(),
        }
    }

    /// A run of `INSERT INTO <into> …` where each row is new by `key` (a
    /// text column); `duplicate` says what a row already there means.
    pub fn new_rows(into: &'static str, key: &'static str, duplicate: &'static str) -> Self {
        Self {
            key: Some(key),
            duplicate,
            ..Self::unchecked(into, "")
        }
    }

    /// Adds a row made by the event at `position`, keyed `key` (ignored
    /// when unchecked).
    pub fn push(&mut self, key: String, position: i64, row: Vec<Value>) {
        if self.key.is_some() {
            self.made.push((key, position));
        }
        self.rows.push(row);
    }

    /// Writes the rows gathered so far, if any; the run is empty after.
    pub async fn flush(&mut self, tx: &mut Tx) -> Result<(), crate::runner::ProjectionError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.rows);
        let made = std::mem::take(&mut self.made);
        let Some(key) = self.key else {
            insert_rows(tx, self.into, self.tail, &rows).await?;
            return Ok(());
        };
        let tail = format!("ON CONFLICT ({key}) DO NOTHING RETURNING {key}");
        let mut written: std::collections::HashSet<String> =
            insert_rows_returning(tx, self.into, &tail, &rows)
                .await?
                .into_iter()
                .collect();
        // The first row not written, or written for an earlier event of the
        // run, names the event.
        for (key, position) in made {
            if !written.remove(&key) {
                return Err(crate::runner::ProjectionError::Event {
                    position,
                    detail: self.duplicate.to_owned(),
                });
            }
        }
        Ok(())
    }
}

/// `WITH v(<columns>) AS (<rows>) <statement>`: a statement (an `UPDATE …
/// FROM v`, a `DELETE … WHERE … IN (SELECT … FROM v)`) over a list of rows.
pub async fn with_values(
    tx: &mut Tx,
    columns: &str,
    rows: &[Vec<Value>],
    statement: &str,
) -> Result<u64, sqlx::Error> {
    let mut affected = 0;
    for chunk in chunks(tx, rows) {
        let sql = format!(
            "WITH v({columns}) AS ({}) {statement}",
            rows_source(tx, chunk)
        );
        affected += run(tx, &sql, chunk).await?;
    }
    Ok(affected)
}

/// `WITH v(<columns>) AS (<rows>) <query>`, a query returning one text
/// column (a batch's rows read back by key: `SELECT … FROM t JOIN v …`):
/// its values.
pub async fn select_with_values(
    tx: &mut Tx,
    columns: &str,
    rows: &[Vec<Value>],
    query: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let mut found = Vec::new();
    for chunk in chunks(tx, rows) {
        let sql = format!("WITH v({columns}) AS ({}) {query}", rows_source(tx, chunk));
        found.extend(texts(tx, &sql, chunk).await?);
    }
    Ok(found)
}

/// The rows of `query` (over `WITH v(<key>)`, one per key) returning one
/// text column `<key> <rest>`, as a map from key to rest. A row of another
/// shape is damage, named at `position` (the batch's first event): never
/// a row dropped, which would read a stored record as missing.
pub async fn select_by_key(
    tx: &mut Tx,
    key: &str,
    keys: &[Vec<Value>],
    query: &str,
    position: i64,
) -> Result<std::collections::BTreeMap<String, String>, crate::runner::ProjectionError> {
    let mut found = std::collections::BTreeMap::new();
    for row in select_with_values(tx, key, keys, query).await? {
        let Some((k, rest)) = row.split_once(' ') else {
            return Err(crate::runner::ProjectionError::Event {
                position,
                detail: format!("a stored row without its {key}"),
            });
        };
        found.insert(k.to_owned(), rest.to_owned());
    }
    Ok(found)
}

/// Runs a statement made by [`rows_source`] over `rows`, returning one text
/// column.
async fn texts(tx: &mut Tx, sql: &str, rows: &[Vec<Value>]) -> Result<Vec<String>, sqlx::Error> {
    check_shape(rows)?;
    match tx {
        Tx::Postgres(c) => {
            bind_columns(sqlx::query_scalar(sql), rows)
                .fetch_all(&mut **c)
                .await
        }
        Tx::Sqlite(_) => returning(tx, sql, &rows.concat()).await,
    }
}

/// All rows at once on Postgres (arrays have no parameter limit); slices
/// within SQLite's parameter limit there.
fn chunks<'a>(tx: &Tx, rows: &'a [Vec<Value>]) -> Vec<&'a [Vec<Value>]> {
    if rows.is_empty() {
        return Vec::new();
    }
    match tx {
        Tx::Postgres(_) => vec![rows],
        Tx::Sqlite(_) => rows.chunks(ROWS_PER_STATEMENT).collect(),
    }
}

/// The rows as a query: `SELECT * FROM UNNEST(…)` or `VALUES (…), (…)`.
fn rows_source(tx: &Tx, rows: &[Vec<Value>]) -> String {
    let first = &rows[0];
    match tx {
        Tx::Postgres(_) => {
            let arrays: Vec<String> = first
                .iter()
                .enumerate()
                .map(|(i, v)| format!("${}::{}[]", i + 1, pg_type(v)))
                .collect();
            format!("SELECT * FROM UNNEST({})", arrays.join(", "))
        }
        Tx::Sqlite(_) => format!("VALUES {}", tuples(rows.len(), first.len())),
    }
}

fn pg_type(v: &Value) -> &'static str {
    match v {
        Value::Text(_) => "text",
        Value::Int(_) => "int8",
        Value::Date(_) => "date",
        Value::Time(_) => "timestamptz",
    }
}

/// Every row has the first row's width and kinds of value: a column is
/// bound as one typed array, so a cell of another kind would otherwise
/// become NULL without a word.
fn check_shape(rows: &[Vec<Value>]) -> Result<(), sqlx::Error> {
    let first = &rows[0];
    let same = rows.iter().all(|r| {
        r.len() == first.len()
            && r.iter()
                .zip(first)
                .all(|(a, b)| std::mem::discriminant(a) == std::mem::discriminant(b))
    });
    if same {
        Ok(())
    } else {
        Err(sqlx::Error::Encode(
            "rows of one statement differ in width or column types".into(),
        ))
    }
}

/// Runs a statement made by [`rows_source`] over `rows`.
async fn run(tx: &mut Tx, sql: &str, rows: &[Vec<Value>]) -> Result<u64, sqlx::Error> {
    check_shape(rows)?;
    match tx {
        Tx::Postgres(c) => Ok(bind_columns(sqlx::query(sql), rows)
            .execute(&mut **c)
            .await?
            .rows_affected()),
        Tx::Sqlite(_) => execute(tx, sql, &rows.concat()).await,
    }
}

/// Binds `rows` column by column, one typed array per column (Postgres).
fn bind_columns<'q, Q: BindArrays<'q>>(mut query: Q, rows: &[Vec<Value>]) -> Q {
    for column in 0..rows[0].len() {
        let cells = rows.iter().map(|r| r.get(column));
        query = match rows[0][column] {
            Value::Text(_) => query.bind_texts(
                cells
                    .map(|c| match c {
                        Some(Value::Text(t)) => t.clone(),
                        _ => None,
                    })
                    .collect(),
            ),
            Value::Int(_) => query.bind_ints(
                cells
                    .map(|c| match c {
                        Some(Value::Int(i)) => *i,
                        _ => None,
                    })
                    .collect(),
            ),
            Value::Date(_) => query.bind_dates(
                cells
                    .map(|c| match c {
                        Some(Value::Date(d)) => *d,
                        _ => None,
                    })
                    .collect(),
            ),
            Value::Time(_) => query.bind_times(
                cells
                    .map(|c| match c {
                        Some(Value::Time(t)) => *t,
                        _ => None,
                    })
                    .collect(),
            ),
        };
    }
    query
}

/// The Postgres query kinds [`bind_columns`] binds arrays to.
trait BindArrays<'q>: Sized {
    fn bind_texts(self, v: Vec<Option<String>>) -> Self;
    fn bind_ints(self, v: Vec<Option<i64>>) -> Self;
    fn bind_dates(self, v: Vec<Option<NaiveDate>>) -> Self;
    fn bind_times(self, v: Vec<Option<DateTime<Utc>>>) -> Self;
}

/// The same four binds for each Postgres query kind.
macro_rules! bind_arrays {
    ($($kind:ty),*) => {$(
        impl<'q> BindArrays<'q> for $kind {
            fn bind_texts(self, v: Vec<Option<String>>) -> Self {
                self.bind(v)
            }
            fn bind_ints(self, v: Vec<Option<i64>>) -> Self {
                self.bind(v)
            }
            fn bind_dates(self, v: Vec<Option<NaiveDate>>) -> Self {
                self.bind(v)
            }
            fn bind_times(self, v: Vec<Option<DateTime<Utc>>>) -> Self {
                self.bind(v)
            }
        }
    )*};
}

bind_arrays!(
    sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    sqlx::query::QueryScalar<'q, sqlx::Postgres, String, sqlx::postgres::PgArguments>
);

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
    fn rows_of_mixed_kinds_are_refused() {
        let rows = vec![vec![Value::from(1_i64)], vec![Value::from("one")]];
        assert!(check_shape(&rows).is_err());
        assert!(check_shape(&rows[..1]).is_ok());
    }

    #[test]
    fn tuples_number_parameters_row_by_row() {
        assert_eq!(tuples(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(list(3), "$1, $2, $3");
    }
}

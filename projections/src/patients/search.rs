//! Patient search by name prefix, birth date and identifier, one page at a time.
//!
//! A search without a name pages in patient id (registration) order. A name
//! search pages alphabetically, in two phases: the patients whose family name
//! has the prefix, by `(family_key, patient_id)`, then those whose given name
//! has it and family name does not, by `(given_key, patient_id)`. Each phase
//! is one query that `patients_by_family` or `patients_by_given` answers in
//! order, stopping at the page's end: a page costs its size, not the number of
//! matches (ADR 0002).

use std::fmt;

use anamnesis_commands::Db;
use chrono::NaiveDate;
use uuid::Uuid;

use super::{views, PatientRow, PatientView, COLUMNS};

/// Search filters; all given ones must match.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// Prefix of the family or given name, any case.
    pub name: Option<String>,
    pub birth_date: Option<NaiveDate>,
    /// An identifier's value (MRN, insurance number).
    pub identifier: Option<String>,
    /// Where the previous page ended.
    pub after: Option<Resume>,
    pub limit: i64,
}

/// Where the next page of a search starts: the phase and the last patient
/// shown, never a name (names are patient data; a cursor travels in URLs and
/// logs). The key to resume after is looked up from that patient's row.
///
/// As a `next_cursor` it reads `<id>` for a search without a name, `f.<id>`
/// or `g.<id>` for a name search, in its family or given name phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// After this patient, in id order.
    Id(Uuid),
    /// After this patient among the family name matches.
    Family(Uuid),
    /// After this patient among the given-name-only matches.
    Given(Uuid),
}

impl Resume {
    /// Reads a cursor for a search with a name (`named`) or without one:
    /// None unless it is a cursor such a search gives.
    pub fn parse(token: &str, named: bool) -> Option<Self> {
        let resume = match token.split_once('.') {
            None => Resume::Id(Uuid::parse_str(token).ok()?),
            Some(("f", id)) => Resume::Family(Uuid::parse_str(id).ok()?),
            Some(("g", id)) => Resume::Given(Uuid::parse_str(id).ok()?),
            Some(_) => return None,
        };
        (matches!(resume, Resume::Id(_)) != named).then_some(resume)
    }
}

impl fmt::Display for Resume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resume::Id(id) => write!(f, "{id}"),
            Resume::Family(id) => write!(f, "f.{id}"),
            Resume::Given(id) => write!(f, "g.{id}"),
        }
    }
}

/// The phase a row was found in, as the cursor after it: `Resume::Id`,
/// `Resume::Family` or `Resume::Given`.
type Phase = fn(Uuid) -> Resume;

/// One page of matching patients, and where the next page starts if more
/// follow.
pub async fn search(
    db: &Db,
    s: &Search,
) -> Result<(Vec<PatientView>, Option<Resume>), sqlx::Error> {
    // One row past the page says whether more follow.
    let wanted = s.limit + 1;
    // Each row with how a cursor after it reads (its phase).
    let mut rows: Vec<(PatientRow, Phase)> = Vec::new();
    match &s.name {
        None => {
            let after = match s.after {
                Some(Resume::Id(id)) => Some(id),
                // Not a cursor this search gives (`Resume::parse` refuses it).
                Some(_) => return Ok((Vec::new(), None)),
                None => None,
            };
            let page = Filtered::new(s).by_id(after).fetch(db, wanted).await?;
            rows.extend(page.into_iter().map(|r| (r, Resume::Id as Phase)));
        }
        Some(name) => {
            let prefix = name.trim().to_lowercase();
            // Where the family phase resumes; None: it is over (the
            // cursor is in the given name phase).
            let family_after = match s.after {
                None => Some(None),
                Some(Resume::Family(id)) => Some(Some(id)),
                Some(Resume::Given(_)) => None,
                Some(Resume::Id(_)) => return Ok((Vec::new(), None)),
            };
            if let Some(after) = family_after {
                let page = Filtered::new(s)
                    .by_family(&prefix, after)
                    .fetch(db, wanted)
                    .await?;
                rows.extend(page.into_iter().map(|r| (r, Resume::Family as Phase)));
            }
            let left = wanted - rows.len() as i64;
            if left > 0 {
                let after = match s.after {
                    Some(Resume::Given(id)) => Some(id),
                    _ => None,
                };
                let page = Filtered::new(s)
                    .by_given(&prefix, after)
                    .fetch(db, left)
                    .await?;
                rows.extend(page.into_iter().map(|r| (r, Resume::Given as Phase)));
            }
        }
    }
    let more = rows.len() as i64 > s.limit;
    rows.truncate(usize::try_from(s.limit).unwrap_or(0));
    let next = match rows.last() {
        Some((row, resume)) if more => {
            let id = Uuid::parse_str(&row.patient_id).map_err(|e| sqlx::Error::ColumnDecode {
                index: "patient_id".into(),
                source: e.into(),
            })?;
            Some(resume(id))
        }
        _ => None,
    };
    let page = rows.into_iter().map(|(row, _)| row).collect();
    Ok((views(db, page).await?, next))
}

enum Param {
    Text(String),
    Date(NaiveDate),
}

/// A query on `patients` with a search's filters other than the name, to
/// which a phase adds its own clauses and order.
struct Filtered {
    clauses: Vec<String>,
    params: Vec<Param>,
    order: String,
}

impl Filtered {
    fn new(s: &Search) -> Self {
        let mut q = Filtered {
            clauses: vec!["version > 0".to_owned()],
            params: Vec::new(),
            order: "patient_id".to_owned(),
        };
        if let Some(date) = s.birth_date {
            let n = q.param(Param::Date(date));
            q.clauses.push(format!("birth_date = ${n}"));
        }
        if let Some(identifier) = &s.identifier {
            let n = q.param(Param::Text(identifier.trim().to_owned()));
            q.clauses.push(format!(
                "patient_id IN (SELECT patient_id FROM patient_identifiers WHERE value = ${n})"
            ));
        }
        q
    }

    /// Pushes a parameter and returns its `$n` number.
    fn param(&mut self, p: Param) -> usize {
        self.params.push(p);
        self.params.len()
    }

    /// Every patient, in id order, after `after`.
    fn by_id(mut self, after: Option<Uuid>) -> Self {
        if let Some(after) = after {
            let n = self.param(Param::Text(after.to_string()));
            self.clauses.push(format!("patient_id > ${n}"));
        }
        self
    }

    /// The patients whose family name has `prefix`, in `(family_key,
    /// patient_id)` order, after patient `after`.
    fn by_family(mut self, prefix: &str, after: Option<Uuid>) -> Self {
        let (low, high) = self.prefix_range(prefix);
        self.by_key("family_key", (low, high), after)
    }

    /// The patients whose given name has `prefix` and family name does not,
    /// in `(given_key, patient_id)` order, after patient `after`.
    fn by_given(mut self, prefix: &str, after: Option<Uuid>) -> Self {
        let (low, high) = self.prefix_range(prefix);
        self.clauses.push(format!(
            "NOT (family_key >= ${low} AND family_key < ${high})"
        ));
        self.by_key("given_key", (low, high), after)
    }

    /// The parameters bounding the keys that start with `prefix`. Keys are
    /// lowercase and compared byte-wise (COLLATE "C" on Postgres, BINARY on
    /// SQLite).
    fn prefix_range(&mut self, prefix: &str) -> (usize, usize) {
        let low = self.param(Param::Text(prefix.to_owned()));
        let high = self.param(Param::Text(format!("{prefix}\u{10FFFF}")));
        (low, high)
    }

    /// Rows whose `key` lies in the range `$low..$high`, in `(key,
    /// patient_id)` order, after patient `after`. The cursor holds no name:
    /// the key to resume at is read from the patient's row, by a subquery
    /// run once. If that row is gone (erased since) or its key has left the
    /// range (renamed), the phase has nothing more to give.
    fn by_key(mut self, key: &str, (low, high): (usize, usize), after: Option<Uuid>) -> Self {
        match after {
            None => self
                .clauses
                .push(format!("{key} >= ${low} AND {key} < ${high}")),
            Some(after) => {
                let n = self.param(Param::Text(after.to_string()));
                // The row value is where the index scan starts, and implies
                // `key >= $low` (checked on the cursor's key): SQLite takes
                // a plain `key >= $low` beside it as the start instead, and
                // would read every earlier match of the phase again.
                self.clauses.push(format!(
                    "{key} < ${high} AND ({key}, patient_id) > \
                     ((SELECT {key} FROM patients WHERE patient_id = ${n} AND {key} >= ${low}), ${n})"
                ));
            }
        }
        self.order = format!("{key}, patient_id");
        self
    }

    async fn fetch(&self, db: &Db, limit: i64) -> Result<Vec<PatientRow>, sqlx::Error> {
        let sql = format!(
            "SELECT {COLUMNS} FROM patients WHERE {} ORDER BY {} LIMIT {limit}",
            self.clauses.join(" AND "),
            self.order,
        );
        on_pool!(db, |p| {
            let mut q = sqlx::query_as(&sql);
            for param in &self.params {
                q = match param {
                    Param::Text(t) => q.bind(t.as_str()),
                    Param::Date(d) => q.bind(*d),
                };
            }
            q.fetch_all(p).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0190a6e2-6c1e-7bd4-9a0e-3f4b5c6d7e8f";

    #[test]
    fn a_cursor_reads_back_as_it_was_written() {
        let id = Uuid::parse_str(ID).unwrap();
        for (resume, named) in [
            (Resume::Id(id), false),
            (Resume::Family(id), true),
            (Resume::Given(id), true),
        ] {
            assert_eq!(Resume::parse(&resume.to_string(), named), Some(resume));
        }
        assert_eq!(Resume::Family(id).to_string(), format!("f.{ID}"));
    }

    #[test]
    fn a_cursor_of_the_other_kind_of_search_is_refused() {
        assert_eq!(Resume::parse(ID, true), None);
        assert_eq!(Resume::parse(&format!("f.{ID}"), false), None);
        assert_eq!(Resume::parse(&format!("g.{ID}"), false), None);
    }

    #[test]
    fn a_malformed_cursor_is_refused() {
        let tokens = [
            "",
            "f.",
            "f.smith",
            "smith",
            &format!("x.{ID}"),
            &format!("F.{ID}"),
        ];
        for token in tokens {
            assert_eq!(Resume::parse(token, true), None, "{token}");
            assert_eq!(Resume::parse(token, false), None, "{token}");
        }
    }
}

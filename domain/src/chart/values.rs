//! What a chart entry says, by kind. Each kind is parsed once here: text
//! through the one text rule, measurements against plausibility ranges,
//! codes against their system's shape, clinical times not in the future.
//! Units are fixed per field and named in it (`temperature_c`, `weight_kg`).

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::{text, text_opt, ChartError};

/// The kinds of chart entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Note,
    Vitals,
    Lab,
    Diagnosis,
    Procedure,
    Immunization,
    Document,
}

impl Kind {
    /// Every kind, for filters and tables.
    pub const ALL: [Kind; 7] = [
        Kind::Note,
        Kind::Vitals,
        Kind::Lab,
        Kind::Diagnosis,
        Kind::Procedure,
        Kind::Immunization,
        Kind::Document,
    ];

    /// The stored and shown spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Note => "note",
            Kind::Vitals => "vitals",
            Kind::Lab => "lab",
            Kind::Diagnosis => "diagnosis",
            Kind::Procedure => "procedure",
            Kind::Immunization => "immunization",
            Kind::Document => "document",
        }
    }

    /// From the stored spelling.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// An entry's content, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EntryBody {
    Note(Note),
    Vitals(Vitals),
    Lab(LabResult),
    Diagnosis(Diagnosis),
    Procedure(Procedure),
    Immunization(Immunization),
    Document(Document),
}

/// An encounter note, SOAP: at least one section written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Note {
    pub subjective: Option<String>,
    pub objective: Option<String>,
    pub assessment: Option<String>,
    pub plan: Option<String>,
    /// The appointment this note is of, where there was one.
    pub appointment_id: Option<Uuid>,
}

/// Vital signs in fixed units; at least one measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Vitals {
    /// When they were taken.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub taken_at: DateTime<Utc>,
    /// mmHg, 40–300; with `diastolic_mmhg`.
    pub systolic_mmhg: Option<i64>,
    /// mmHg, 20–200, below systolic.
    pub diastolic_mmhg: Option<i64>,
    /// Beats per minute, 20–300.
    pub heart_rate_bpm: Option<i64>,
    /// °C, 25–45.
    pub temperature_c: Option<f64>,
    /// Breaths per minute, 4–80.
    pub respiratory_rate: Option<i64>,
    /// Percent, 50–100.
    pub spo2_percent: Option<i64>,
    /// kg, 0.2–500.
    pub weight_kg: Option<f64>,
    /// cm, 20–272.
    pub height_cm: Option<f64>,
}

impl Vitals {
    /// Body-mass index (kg/m², one decimal), when weight and height are both given.
    pub fn bmi(&self) -> Option<f64> {
        let (w, h) = (self.weight_kg?, self.height_cm?);
        let m = h / 100.0;
        Some((w / (m * m) * 10.0).round() / 10.0)
    }
}

/// How a lab result reads against its reference range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Interpretation {
    Normal,
    Abnormal,
    Critical,
}

/// A lab result's value: a number or text ("positive").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum LabValue {
    Number(f64),
    Text(String),
}

/// One lab result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LabResult {
    pub test: String,
    /// LOINC code, e.g. `2823-3` (potassium).
    pub loinc: Option<String>,
    pub value: LabValue,
    pub unit: Option<String>,
    /// As printed by the lab, e.g. `3.5-5.1`.
    pub reference_range: Option<String>,
    pub interpretation: Interpretation,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub specimen_at: DateTime<Utc>,
}

impl LabResult {
    /// Whether this result needs someone now.
    pub fn is_critical(&self) -> bool {
        self.interpretation == Interpretation::Critical
    }
}

/// Whether a diagnosis still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DiagnosisStatus {
    Active,
    Resolved,
}

/// A diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Diagnosis {
    pub description: String,
    /// ICD-10 code, e.g. `E11.9`.
    pub icd10: Option<String>,
    pub status: DiagnosisStatus,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Date))]
    pub onset: Option<NaiveDate>,
}

/// A procedure performed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Procedure {
    pub description: String,
    /// A procedure code (CPT, SNOMED CT, ...).
    pub code: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub performed_at: DateTime<Utc>,
}

/// A vaccine given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Immunization {
    pub vaccine: String,
    pub lot: String,
    /// e.g. `0.5 mL`, `dose 2 of 3`.
    pub dose: String,
    /// e.g. `left deltoid`.
    pub site: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub given_at: DateTime<Utc>,
}

/// A document: its bytes are stored apart, content-addressed; the entry
/// (and so the chain) holds their SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub title: String,
    /// e.g. `application/pdf`.
    pub media_type: String,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
    pub size_bytes: i64,
}

impl EntryBody {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            EntryBody::Note(_) => Kind::Note,
            EntryBody::Vitals(_) => Kind::Vitals,
            EntryBody::Lab(_) => Kind::Lab,
            EntryBody::Diagnosis(_) => Kind::Diagnosis,
            EntryBody::Procedure(_) => Kind::Procedure,
            EntryBody::Immunization(_) => Kind::Immunization,
            EntryBody::Document(_) => Kind::Document,
        }
    }

    /// Whether it is a critical lab result.
    pub fn is_critical(&self) -> bool {
        matches!(self, EntryBody::Lab(l) if l.is_critical())
    }

    /// The entry's clinical time, where its kind has one (else the time it
    /// was written is used).
    pub fn clinical_time(&self) -> Option<DateTime<Utc>> {
        match self {
            EntryBody::Vitals(v) => Some(v.taken_at),
            EntryBody::Lab(l) => Some(l.specimen_at),
            EntryBody::Procedure(p) => Some(p.performed_at),
            EntryBody::Immunization(i) => Some(i.given_at),
            EntryBody::Note(_) | EntryBody::Diagnosis(_) | EntryBody::Document(_) => None,
        }
    }

    /// A one-line title for the timeline.
    pub fn title(&self) -> String {
        match self {
            EntryBody::Note(n) => n
                .assessment
                .as_deref()
                .or(n.subjective.as_deref())
                .or(n.plan.as_deref())
                .or(n.objective.as_deref())
                .map(|s| first_line(s, 80))
                .unwrap_or_default(),
            EntryBody::Vitals(_) => "Vital signs".to_owned(),
            EntryBody::Lab(l) => l.test.clone(),
            EntryBody::Diagnosis(d) => d.description.clone(),
            EntryBody::Procedure(p) => p.description.clone(),
            EntryBody::Immunization(i) => i.vaccine.clone(),
            EntryBody::Document(d) => d.title.clone(),
        }
    }

    /// Every word a free-text search should find.
    pub fn search_text(&self) -> String {
        let parts: Vec<&str> = match self {
            EntryBody::Note(n) => [&n.subjective, &n.objective, &n.assessment, &n.plan]
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect(),
            EntryBody::Vitals(_) => vec!["vital signs"],
            EntryBody::Lab(l) => {
                let mut v = vec![l.test.as_str()];
                v.extend(l.loinc.as_deref());
                if let LabValue::Text(t) = &l.value {
                    v.push(t);
                }
                v
            }
            EntryBody::Diagnosis(d) => [Some(&d.description), d.icd10.as_ref()]
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect(),
            EntryBody::Procedure(p) => [Some(&p.description), p.code.as_ref()]
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect(),
            EntryBody::Immunization(i) => vec![i.vaccine.as_str(), i.lot.as_str()],
            EntryBody::Document(d) => vec![d.title.as_str()],
        };
        parts.join("\n")
    }

    /// The body as the domain accepts it, or the first rule it breaks.
    /// `now` bounds clinical times (a few minutes of clock skew allowed).
    pub fn parse(self, now: DateTime<Utc>) -> Result<EntryBody, ChartError> {
        let time = |field: &'static str, t: DateTime<Utc>| clinical_time(field, t, now);
        Ok(match self {
            EntryBody::Note(n) => {
                let section = |f, v| text_opt(f, v, 20_000);
                let note = Note {
                    subjective: section("subjective", n.subjective)?,
                    objective: section("objective", n.objective)?,
                    assessment: section("assessment", n.assessment)?,
                    plan: section("plan", n.plan)?,
                    appointment_id: n.appointment_id,
                };
                if [
                    &note.subjective,
                    &note.objective,
                    &note.assessment,
                    &note.plan,
                ]
                .iter()
                .all(|s| s.is_none())
                {
                    return Err(ChartError::EmptyNote);
                }
                EntryBody::Note(note)
            }
            EntryBody::Vitals(v) => EntryBody::Vitals(vitals(v, now)?),
            EntryBody::Lab(l) => {
                let value = match l.value {
                    LabValue::Number(x) if x.is_finite() => LabValue::Number(x),
                    LabValue::Number(_) => return Err(ChartError::NotANumber("value")),
                    LabValue::Text(t) => LabValue::Text(text("value", &t, 200)?),
                };
                EntryBody::Lab(LabResult {
                    test: text("test", &l.test, 200)?,
                    loinc: l.loinc.map(|c| loinc(&c)).transpose()?,
                    value,
                    unit: text_opt("unit", l.unit, 40)?,
                    reference_range: text_opt("reference_range", l.reference_range, 100)?,
                    interpretation: l.interpretation,
                    specimen_at: time("specimen_at", l.specimen_at)?,
                })
            }
            EntryBody::Diagnosis(d) => {
                if let Some(onset) = d.onset {
                    if onset > now.date_naive() || onset < earliest().date_naive() {
                        return Err(ChartError::ImplausibleTime("onset"));
                    }
                }
                EntryBody::Diagnosis(Diagnosis {
                    description: text("description", &d.description, 500)?,
                    icd10: d.icd10.map(|c| icd10(&c)).transpose()?,
                    status: d.status,
                    onset: d.onset,
                })
            }
            EntryBody::Procedure(p) => EntryBody::Procedure(Procedure {
                description: text("description", &p.description, 500)?,
                code: text_opt("code", p.code, 40)?,
                performed_at: time("performed_at", p.performed_at)?,
            }),
            EntryBody::Immunization(i) => EntryBody::Immunization(Immunization {
                vaccine: text("vaccine", &i.vaccine, 200)?,
                lot: text("lot", &i.lot, 60)?,
                dose: text("dose", &i.dose, 60)?,
                site: text("site", &i.site, 100)?,
                given_at: time("given_at", i.given_at)?,
            }),
            EntryBody::Document(d) => EntryBody::Document(document(d)?),
        })
    }
}

/// A document's description, checked.
pub fn document(d: Document) -> Result<Document, ChartError> {
    let media_type = text("media_type", &d.media_type, 100)?;
    let ok_media = media_type.split_once('/').is_some_and(|(a, b)| {
        !a.is_empty() && !b.is_empty() && !media_type.contains(char::is_whitespace)
    });
    if !ok_media {
        return Err(ChartError::InvalidCode("media_type"));
    }
    let hex = d.sha256.len() == 64
        && d.sha256
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    if !hex {
        return Err(ChartError::InvalidCode("sha256"));
    }
    if d.size_bytes < 0 {
        return Err(ChartError::NotANumber("size_bytes"));
    }
    Ok(Document {
        title: text("title", &d.title, 200)?,
        media_type,
        sha256: d.sha256,
        size_bytes: d.size_bytes,
    })
}

fn first_line(s: &str, max: usize) -> String {
    s.lines().next().unwrap_or("").chars().take(max).collect()
}

fn earliest() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(1900, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Clock skew allowed between a device and the server.
fn skew() -> Duration {
    Duration::minutes(5)
}

fn clinical_time(
    field: &'static str,
    t: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, ChartError> {
    if t > now + skew() || t < earliest() {
        return Err(ChartError::ImplausibleTime(field));
    }
    Ok(t)
}

fn range<T: PartialOrd + Copy>(
    field: &'static str,
    v: Option<T>,
    (lo, hi): (T, T),
    (min, max): (&'static str, &'static str),
) -> Result<Option<T>, ChartError> {
    match v {
        Some(x) if !(lo..=hi).contains(&x) => Err(ChartError::Implausible { field, min, max }),
        other => Ok(other),
    }
}

fn finite(field: &'static str, v: Option<f64>) -> Result<Option<f64>, ChartError> {
    match v {
        Some(x) if !x.is_finite() => Err(ChartError::NotANumber(field)),
        other => Ok(other),
    }
}

fn vitals(v: Vitals, now: DateTime<Utc>) -> Result<Vitals, ChartError> {
    let out = Vitals {
        taken_at: clinical_time("taken_at", v.taken_at, now)?,
        systolic_mmhg: range("systolic_mmhg", v.systolic_mmhg, (40, 300), ("40", "300"))?,
        diastolic_mmhg: range("diastolic_mmhg", v.diastolic_mmhg, (20, 200), ("20", "200"))?,
        heart_rate_bpm: range("heart_rate_bpm", v.heart_rate_bpm, (20, 300), ("20", "300"))?,
        temperature_c: range(
            "temperature_c",
            finite("temperature_c", v.temperature_c)?,
            (25.0, 45.0),
            ("25", "45"),
        )?,
        respiratory_rate: range("respiratory_rate", v.respiratory_rate, (4, 80), ("4", "80"))?,
        spo2_percent: range("spo2_percent", v.spo2_percent, (50, 100), ("50", "100"))?,
        weight_kg: range(
            "weight_kg",
            finite("weight_kg", v.weight_kg)?,
            (0.2, 500.0),
            ("0.2", "500"),
        )?,
        height_cm: range(
            "height_cm",
            finite("height_cm", v.height_cm)?,
            (20.0, 272.0),
            ("20", "272"),
        )?,
    };
    match (out.systolic_mmhg, out.diastolic_mmhg) {
        (None, None) => {}
        (Some(s), Some(d)) if s > d => {}
        _ => return Err(ChartError::BloodPressure),
    }
    let measured = out.systolic_mmhg.is_some()
        || out.heart_rate_bpm.is_some()
        || out.temperature_c.is_some()
        || out.respiratory_rate.is_some()
        || out.spo2_percent.is_some()
        || out.weight_kg.is_some()
        || out.height_cm.is_some();
    if !measured {
        return Err(ChartError::NoMeasurement);
    }
    Ok(out)
}

/// LOINC: up to seven digits, a hyphen, one check digit (mod 10 is not checked).
fn loinc(code: &str) -> Result<String, ChartError> {
    let code = code.trim();
    let ok = code.split_once('-').is_some_and(|(num, check)| {
        (1..=7).contains(&num.len())
            && num.chars().all(|c| c.is_ascii_digit())
            && check.len() == 1
            && check.chars().all(|c| c.is_ascii_digit())
    });
    if !ok {
        return Err(ChartError::InvalidCode("loinc"));
    }
    Ok(code.to_owned())
}

/// ICD-10: a letter, two digits or a digit and a letter, then optionally a
/// dot and up to four letters or digits (`E11.9`, `U07.1`, `S72.001A`).
fn icd10(code: &str) -> Result<String, ChartError> {
    let code = code.trim().to_ascii_uppercase();
    let (head, tail) = match code.split_once('.') {
        Some((h, t)) => (h, Some(t)),
        None => (code.as_str(), None),
    };
    let h: Vec<char> = head.chars().collect();
    let head_ok = h.len() == 3
        && h[0].is_ascii_uppercase()
        && h[1].is_ascii_digit()
        && h[2].is_ascii_alphanumeric();
    let tail_ok = tail
        .is_none_or(|t| (1..=4).contains(&t.len()) && t.chars().all(|c| c.is_ascii_alphanumeric()));
    if !(head_ok && tail_ok) {
        return Err(ChartError::InvalidCode("icd10"));
    }
    Ok(code)
}

//! What the synthetic clinic holds, decided before anything is written and
//! from nothing but the seed, the sizes and today's date: the same arguments
//! on the same day plan the same clinic, whatever order the writes land in.
//! Each piece draws from its own generator (the seed and the piece's name
//! and numbers), so a patient's record does not depend on how many others
//! were drawn before it.

use chrono::{Datelike, Duration, NaiveDate, NaiveTime, Weekday};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use anamnesis_domain::patient::{AddressInput, DemographicsInput, Sex};
use anamnesis_domain::schedule::{AvailabilityInput, Day, DayHours, Interval};

use super::names;

/// A generator for one piece of the clinic: `label` and `numbers` name it.
pub fn rng(seed: u64, label: &str, numbers: &[u64]) -> ChaCha8Rng {
    let mut h = Sha256::new();
    h.update(seed.to_be_bytes());
    h.update(label.as_bytes());
    for n in numbers {
        h.update(n.to_be_bytes());
    }
    ChaCha8Rng::from_seed(h.finalize().into())
}

/// The sizes and the day the clinic is planned around.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub seed: u64,
    pub patients: usize,
    pub providers: usize,
    /// Days of history before today.
    pub days: i64,
    /// Days of bookings after today.
    pub ahead: i64,
    pub today: NaiveDate,
}

impl Sizes {
    /// The first day of history.
    pub fn first_day(&self) -> NaiveDate {
        self.today - Duration::days(self.days)
    }

    /// The last day with bookings.
    pub fn last_day(&self) -> NaiveDate {
        self.today + Duration::days(self.ahead)
    }
}

/// Login names carry the seed, so that two seeds never collide.
pub fn username(seed: u64, what: &str, n: usize) -> String {
    format!("seed{seed}-{what}-{n:03}")
}

/// Doctor or nurse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clinician {
    Doctor,
    Nurse,
}

/// One provider: their account, profile and week.
#[derive(Debug, Clone)]
pub struct ProviderPlan {
    pub index: usize,
    pub kind: Clinician,
    pub username: String,
    pub display_name: String,
    pub specialty: &'static str,
    pub minutes: i64,
    pub hours: Vec<(Day, Vec<(NaiveTime, NaiveTime)>)>,
    /// Whole days off (inclusive), if any in the window.
    pub time_off: Option<(NaiveDate, NaiveDate)>,
}

impl ProviderPlan {
    pub fn availability(&self) -> AvailabilityInput {
        AvailabilityInput {
            hours: self
                .hours
                .iter()
                .map(|(day, intervals)| DayHours {
                    day: *day,
                    intervals: intervals
                        .iter()
                        .map(|(start, end)| Interval {
                            start: *start,
                            end: *end,
                        })
                        .collect(),
                })
                .collect(),
            slot_minutes: self.minutes,
            effective_from: None,
            effective_to: None,
        }
    }

    /// The local start times of the slots of `date` (none off work).
    pub fn slots(&self, date: NaiveDate) -> Vec<NaiveTime> {
        let day = Day::of(date);
        let mut out = Vec::new();
        for (d, intervals) in &self.hours {
            if *d != day {
                continue;
            }
            for (start, end) in intervals {
                let mut t = *start;
                while t + Duration::minutes(self.minutes) <= *end {
                    out.push(t);
                    t += Duration::minutes(self.minutes);
                }
            }
        }
        out
    }
}

fn time(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN)
}

/// The providers: about two doctors to a nurse, the first a doctor.
pub fn providers(sizes: &Sizes) -> Vec<ProviderPlan> {
    (0..sizes.providers)
        .map(|i| {
            let mut r = rng(sizes.seed, "provider", &[i as u64]);
            let kind = if i % 3 == 2 {
                Clinician::Nurse
            } else {
                Clinician::Doctor
            };
            let (specialty, minutes) = match kind {
                Clinician::Doctor => names::DOCTOR_SPECIALTIES[i % names::DOCTOR_SPECIALTIES.len()],
                Clinician::Nurse => names::NURSE_SPECIALTIES[i % names::NURSE_SPECIALTIES.len()],
            };
            let family = pick(&mut r, names::FAMILY);
            let given = if r.gen_bool(0.5) {
                pick(&mut r, names::GIVEN_FEMALE)
            } else {
                pick(&mut r, names::GIVEN_MALE)
            };
            let (display_name, user) = match kind {
                Clinician::Doctor => (format!("Dr {given} {family}"), "dr"),
                Clinician::Nurse => (format!("{given} {family}, RN"), "nurse"),
            };
            let morning_start = if r.gen_bool(0.5) {
                time(8, 30)
            } else {
                time(9, 0)
            };
            let workday = vec![(morning_start, time(12, 0)), (time(13, 0), time(17, 0))];
            let mut hours: Vec<(Day, Vec<(NaiveTime, NaiveTime)>)> = [
                Day::Monday,
                Day::Tuesday,
                Day::Wednesday,
                Day::Thursday,
                Day::Friday,
            ]
            .into_iter()
            // One provider in four has Wednesday afternoons off.
            .map(|d| {
                if d == Day::Wednesday && i % 4 == 3 {
                    (d, vec![workday[0]])
                } else {
                    (d, workday.clone())
                }
            })
            .collect();
            if i % 5 == 1 {
                hours.push((Day::Saturday, vec![(time(9, 0), time(12, 0))]));
            }
            // Half of them take a few days off somewhere in the window.
            let span = (sizes.days + sizes.ahead).max(1);
            let time_off = r.gen_bool(0.5).then(|| {
                let from = sizes.first_day() + Duration::days(r.gen_range(0..span));
                (from, from + Duration::days(r.gen_range(1..5)))
            });
            ProviderPlan {
                index: i,
                kind,
                username: username(sizes.seed, user, i + 1),
                display_name,
                specialty,
                minutes,
                hours,
                time_off,
            }
        })
        .collect()
}

/// The clinic's holidays in the window: a few fixed dates, and a training
/// day in the weeks ahead.
pub fn holidays(sizes: &Sizes) -> Vec<(NaiveDate, &'static str)> {
    let mut out = Vec::new();
    for year in [sizes.first_day().year(), sizes.last_day().year()] {
        for (month, day, name) in [
            (1, 1, "New Year's Day"),
            (5, 1, "Labour Day"),
            (7, 4, "Independence Day"),
            (12, 25, "Christmas Day"),
            (12, 26, "Boxing Day"),
        ] {
            if let Some(d) = NaiveDate::from_ymd_opt(year, month, day) {
                if d >= sizes.first_day()
                    && d <= sizes.last_day()
                    && !out.iter().any(|(o, _)| *o == d)
                {
                    out.push((d, name));
                }
            }
        }
    }
    if sizes.ahead >= 7 {
        let mut d = sizes.today + Duration::days(sizes.ahead / 2);
        while matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
            d += Duration::days(1);
        }
        if !out.iter().any(|(o, _)| *o == d) {
            out.push((d, "Staff training day"));
        }
    }
    out.sort();
    out
}

pub fn pick<T: Copy>(r: &mut ChaCha8Rng, list: &[T]) -> T {
    list[r.gen_range(0..list.len())]
}

/// One patient, as drawn.
#[derive(Debug, Clone)]
pub struct PatientPlan {
    pub index: usize,
    pub demographics: DemographicsInput,
    /// Signed up on the portal (with an account) rather than at the desk.
    pub portal: bool,
    pub username: String,
    pub provider: usize,
    pub allergies: Vec<(&'static str, &'static str, u8)>,
    pub conditions: Vec<(&'static str, &'static str, NaiveDate)>,
    pub coverage: Option<(&'static str, &'static str, String)>,
    /// A thread with their provider (portal patients only).
    pub thread: Option<(&'static str, &'static str, &'static str)>,
}

/// Patient `i`: everyone's provider is one of the panel of `providers`.
pub fn patient(sizes: &Sizes, i: usize) -> PatientPlan {
    let mut r = rng(sizes.seed, "patient", &[i as u64]);
    let female = r.gen_bool(0.52);
    let given = if female {
        pick(&mut r, names::GIVEN_FEMALE)
    } else {
        pick(&mut r, names::GIVEN_MALE)
    };
    let family = pick(&mut r, names::FAMILY);
    // Ages 0 to 95, weighted towards adults.
    let age_days = if r.gen_bool(0.15) {
        r.gen_range(30..18 * 365)
    } else {
        r.gen_range(18 * 365..95 * 365)
    };
    let birth_date = sizes.today - Duration::days(age_days);
    let (city, region, postal) = pick(&mut r, names::CITIES);
    let street = pick(&mut r, names::STREETS);
    let number: u32 = r.gen_range(1..300);
    let local = format!(
        "{}.{}{}",
        given.to_lowercase(),
        family.to_lowercase().replace(' ', ""),
        i
    );
    let demographics = DemographicsInput {
        family_name: family.to_owned(),
        given_name: given.to_owned(),
        birth_date,
        sex: Some(if female { Sex::Female } else { Sex::Male }),
        phone: Some(format!(
            "+1 555 {:04} {:04}",
            r.gen_range(0..10_000),
            i % 10_000
        )),
        email: Some(format!("{local}@example.org")),
        address: Some(AddressInput {
            line: format!("{number} {street}"),
            city: city.to_owned(),
            postal_code: format!("{postal}{:03}", r.gen_range(0..1000)),
            region: Some(region.to_owned()),
            country: "US".to_owned(),
        }),
        identifiers: vec![("mrn".to_owned(), format!("S{}-{:07}", sizes.seed, i + 1))],
    };
    let portal = r.gen_bool(0.7);
    let provider = i % sizes.providers.max(1);
    let mut allergies = Vec::new();
    let mut pool = names::ALLERGIES.to_vec();
    pool.shuffle(&mut r);
    let n_allergies = [0, 0, 0, 1, 1, 2][r.gen_range(0..6)];
    for (substance, reaction) in pool.into_iter().take(n_allergies) {
        allergies.push((substance, reaction, r.gen_range(0..4)));
    }
    let mut conditions = Vec::new();
    let mut pool = names::CONDITIONS.to_vec();
    pool.shuffle(&mut r);
    let n_conditions = if age_days > 40 * 365 {
        r.gen_range(0..4)
    } else {
        r.gen_range(0..2)
    };
    for (code, description) in pool.into_iter().take(n_conditions) {
        let onset = birth_date + Duration::days(r.gen_range(0..age_days.max(1)));
        conditions.push((code, description, onset.min(sizes.today)));
    }
    let coverage = r.gen_bool(0.8).then(|| {
        let (payer, plan) = pick(&mut r, names::PAYERS);
        (
            payer,
            plan,
            format!("M{:09}", r.gen_range(0..1_000_000_000u64)),
        )
    });
    let thread = (portal && r.gen_bool(0.3)).then(|| pick(&mut r, names::THREADS));
    PatientPlan {
        index: i,
        demographics,
        portal,
        username: format!("seed{}-patient-{:06}", sizes.seed, i + 1),
        provider,
        allergies,
        conditions,
        coverage,
        thread,
    }
}

/// How a visit turns out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Cancelled,
    NoShow,
    /// Ahead of today: booked only.
    Booked,
}

/// One appointment of the schedule.
#[derive(Debug, Clone, Copy)]
pub struct Visit {
    pub patient: usize,
    pub provider: usize,
    pub date: NaiveDate,
    pub start: NaiveTime,
    pub outcome: Outcome,
    /// Its number among all visits of its provider: names its generator.
    pub number: usize,
}

/// Every visit of provider `p` with the patients of their panel: each
/// patient seen at least once in the past (the visit they registered at)
/// and more often the longer the history, each booked at most once ahead;
/// slots on working days outside holidays and time off, never two in one;
/// with how many visits found no free slot (a panel too large for its
/// provider's hours).
/// Of the past visits, one in ten is cancelled and one in twenty a no-show,
/// spread evenly through the schedule.
pub fn schedule(
    sizes: &Sizes,
    provider: &ProviderPlan,
    holidays: &[(NaiveDate, &'static str)],
) -> (Vec<Visit>, usize) {
    let mut r = rng(sizes.seed, "schedule", &[provider.index as u64]);
    let open = |d: NaiveDate| {
        !holidays.iter().any(|(h, _)| *h == d)
            && !provider
                .time_off
                .is_some_and(|(from, to)| from <= d && d <= to)
    };
    // Every free slot of the window, taken at random: a full calendar
    // costs nothing more to fill than an empty one.
    let free = |days: &mut dyn Iterator<Item = NaiveDate>| -> Vec<(NaiveDate, NaiveTime)> {
        days.filter(|d| open(*d))
            .flat_map(|d| provider.slots(d).into_iter().map(move |t| (d, t)))
            .collect()
    };
    let mut past = free(&mut (0..sizes.days).map(|k| sizes.first_day() + Duration::days(k)));
    let mut future = free(&mut (1..=sizes.ahead).map(|k| sizes.today + Duration::days(k)));
    let mut visits = Vec::new();
    let mut unplaced = 0;
    let panel = (provider.index..sizes.patients).step_by(sizes.providers.max(1));
    let mut place =
        |r: &mut ChaCha8Rng, slots: &mut Vec<(NaiveDate, NaiveTime)>, patient, outcome| {
            if slots.is_empty() {
                unplaced += 1;
                return;
            }
            let (date, start) = slots.swap_remove(r.gen_range(0..slots.len()));
            visits.push(Visit {
                patient,
                provider: provider.index,
                date,
                start,
                outcome,
                number: 0,
            });
        };
    let extra_rate = sizes.days as f64 / 60.0;
    for patient in panel {
        let extra = extra_rate.floor() as usize + usize::from(r.gen_bool(extra_rate.fract()));
        for _ in 0..1 + extra {
            place(&mut r, &mut past, patient, Outcome::Completed);
        }
        if r.gen_bool((sizes.ahead as f64 / 45.0).min(1.0)) {
            place(&mut r, &mut future, patient, Outcome::Booked);
        }
    }
    let mut past_visits: Vec<usize> = (0..visits.len())
        .filter(|i| visits[*i].outcome == Outcome::Completed)
        .collect();
    past_visits.shuffle(&mut r);
    for (k, i) in past_visits.into_iter().enumerate() {
        visits[i].outcome = match k % 20 {
            0 | 10 => Outcome::Cancelled,
            5 => Outcome::NoShow,
            _ => Outcome::Completed,
        };
    }
    for (n, v) in visits.iter_mut().enumerate() {
        v.number = n;
    }
    (visits, unplaced)
}

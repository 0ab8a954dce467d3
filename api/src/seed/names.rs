//! The built-in word lists of the synthetic clinic: small, fixed, and
//! obviously invented, so that a seeded database is reproducible offline and
//! nobody mistakes it for real people.

use anamnesis_domain::medication::{DoseUnit, Route};

pub const GIVEN_FEMALE: &[&str] = &[
    "Amelia", "Beatriz", "Chloe", "Dalia", "Elena", "Fatima", "Grace", "Hana", "Ines", "Julia",
    "Keiko", "Lena", "Maya", "Nadia", "Olivia", "Priya", "Rosa", "Sofia", "Tamar", "Uma", "Vera",
    "Wanda", "Yara", "Zoe", "Alice", "Clara", "Emma", "Irene", "Lucia", "Marta",
];

pub const GIVEN_MALE: &[&str] = &[
    "Aaron", "Bruno", "Carlos", "Daniel", "Emil", "Felix", "Gabriel", "Hugo", "Ivan", "Jonas",
    "Kenji", "Luis", "Marco", "Nikolai", "Omar", "Pablo", "Rafael", "Samuel", "Tomas", "Victor",
    "William", "Yusuf", "Adam", "Bernard", "David", "Erik", "Henrik", "Leo", "Mateo", "Oscar",
];

pub const FAMILY: &[&str] = &[
    "Abara",
    "Bergstrom",
    "Castellano",
    "Dubois",
    "Eriksen",
    "Ferreira",
    "Gallagher",
    "Haddad",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quintero",
    "Rossi",
    "Santos",
    "Takahashi",
    "Umarov",
    "Van Dijk",
    "Weber",
    "Xu",
    "Yilmaz",
    "Zimmermann",
    "Almeida",
    "Brennan",
    "Costa",
    "Delgado",
    "Esposito",
    "Fischer",
    "Gomez",
    "Hoffmann",
    "Iqbal",
    "Jovanovic",
    "Kim",
    "Larsen",
    "Mendes",
    "Novak",
    "Oliveira",
    "Park",
    "Reyes",
    "Schmidt",
    "Torres",
    "Ueda",
    "Vargas",
    "Walsh",
    "Young",
    "Zhang",
];

pub const STREETS: &[&str] = &[
    "Maple Street",
    "Harbor Road",
    "Station Avenue",
    "Mill Lane",
    "Orchard Way",
    "Church Street",
    "Park Road",
    "River Walk",
    "Hill Crescent",
    "Market Square",
    "Elm Grove",
    "Lake Drive",
];

/// (city, region, postal code prefix)
pub const CITIES: &[(&str, &str, &str)] = &[
    ("Springfield", "North", "10"),
    ("Riverton", "North", "11"),
    ("Lakeside", "East", "20"),
    ("Brookfield", "East", "21"),
    ("Fairview", "South", "30"),
    ("Greenville", "South", "31"),
    ("Oakridge", "West", "40"),
    ("Westport", "West", "41"),
];

/// (specialty, default minutes)
pub const DOCTOR_SPECIALTIES: &[(&str, i64)] = &[
    ("family medicine", 20),
    ("internal medicine", 30),
    ("pediatrics", 20),
    ("cardiology", 30),
    ("dermatology", 15),
    ("family medicine", 15),
];

pub const NURSE_SPECIALTIES: &[(&str, i64)] = &[
    ("practice nursing", 15),
    ("diabetes care", 30),
    ("wound care", 20),
];

/// (substance, reaction)
pub const ALLERGIES: &[(&str, &str)] = &[
    ("penicillin", "hives"),
    ("sulfa drugs", "rash"),
    ("peanuts", "swelling of the lips"),
    ("latex", "contact dermatitis"),
    ("shellfish", "vomiting"),
    ("ibuprofen", "wheezing"),
    ("bee venom", "anaphylaxis"),
    ("codeine", "nausea"),
];

/// (ICD-10 code, description)
pub const CONDITIONS: &[(&str, &str)] = &[
    ("I10", "Essential hypertension"),
    ("E11.9", "Type 2 diabetes mellitus without complications"),
    ("J45.909", "Asthma, uncomplicated"),
    ("E78.5", "Hyperlipidemia"),
    ("M54.5", "Low back pain"),
    ("F41.1", "Generalized anxiety disorder"),
    ("E03.9", "Hypothyroidism"),
    ("K21.9", "Gastro-oesophageal reflux disease"),
    ("J30.9", "Allergic rhinitis"),
    ("M17.9", "Osteoarthritis of the knee"),
];

/// Reasons for a visit, and the assessment a completed one ends with.
pub const VISITS: &[(&str, &str)] = &[
    (
        "Annual check-up",
        "Healthy adult; routine screening up to date",
    ),
    (
        "Blood pressure follow-up",
        "Blood pressure controlled on current treatment",
    ),
    ("Persistent cough", "Viral upper respiratory infection"),
    ("Back pain", "Mechanical low back pain"),
    ("Diabetes review", "Type 2 diabetes, stable"),
    ("Skin rash", "Contact dermatitis"),
    ("Sore throat", "Acute pharyngitis"),
    ("Medication review", "Medications reconciled"),
    ("Headaches", "Tension-type headache"),
    ("Vaccination", "Vaccination given, no immediate reaction"),
    ("Fatigue", "Fatigue; blood tests ordered"),
    ("Knee pain", "Osteoarthritis of the knee"),
];

/// (drug, amount, unit, route, days; 0: ongoing)
pub const DRUGS: &[(&str, f64, DoseUnit, Route, u32)] = &[
    (
        "lisinopril 10 mg tablet",
        1.0,
        DoseUnit::Tablet,
        Route::Oral,
        0,
    ),
    (
        "metformin 500 mg tablet",
        1.0,
        DoseUnit::Tablet,
        Route::Oral,
        0,
    ),
    (
        "atorvastatin 20 mg tablet",
        1.0,
        DoseUnit::Tablet,
        Route::Oral,
        0,
    ),
    (
        "amoxicillin 500 mg capsule",
        1.0,
        DoseUnit::Capsule,
        Route::Oral,
        7,
    ),
    (
        "omeprazole 20 mg capsule",
        1.0,
        DoseUnit::Capsule,
        Route::Oral,
        28,
    ),
    (
        "sertraline 50 mg tablet",
        1.0,
        DoseUnit::Tablet,
        Route::Oral,
        0,
    ),
    (
        "levothyroxine 50 mcg tablet",
        1.0,
        DoseUnit::Tablet,
        Route::Oral,
        0,
    ),
    (
        "salbutamol 100 mcg inhaler",
        2.0,
        DoseUnit::Puff,
        Route::Inhaled,
        0,
    ),
    (
        "ibuprofen 400 mg tablet",
        1.0,
        DoseUnit::Tablet,
        Route::Oral,
        5,
    ),
    (
        "cetirizine 10 mg tablet",
        1.0,
        DoseUnit::Tablet,
        Route::Oral,
        14,
    ),
];

/// (LOINC, test, unit, low, high)
pub const LABS: &[(&str, &str, &str, f64, f64)] = &[
    ("2345-7", "Glucose", "mg/dL", 70.0, 99.0),
    ("2823-3", "Potassium", "mmol/L", 3.5, 5.1),
    ("718-7", "Hemoglobin", "g/dL", 12.0, 17.5),
    ("2093-3", "Cholesterol", "mg/dL", 125.0, 200.0),
    ("4548-4", "Hemoglobin A1c", "%", 4.0, 5.6),
];

/// (code, description, unit price in minor units)
pub const PRICES: &[(&str, &str, i64)] = &[
    ("99213", "Office visit, established patient", 12_000),
    ("99214", "Office visit, moderate complexity", 18_000),
    ("99203", "Office visit, new patient", 15_000),
    ("36415", "Venipuncture", 2_500),
    ("90471", "Immunization administration", 3_000),
];

/// (payer, plan)
pub const PAYERS: &[(&str, &str)] = &[
    ("Northwind Health", "Silver PPO"),
    ("Contoso Mutual", "Basic HMO"),
    ("Fabrikam Insurance", "Gold PPO"),
    ("Tailspin Care", "Bronze"),
];

/// (subject, first message, the reply)
pub const THREADS: &[(&str, &str, &str)] = &[
    (
        "Question about my prescription",
        "Should I take the tablet with food or on an empty stomach?",
        "With food is best; it is gentler on the stomach.",
    ),
    (
        "Test results",
        "Are my blood test results back yet?",
        "Yes, they are normal. Nothing further is needed for now.",
    ),
    (
        "Side effects",
        "I have had a mild headache since starting the new medication.",
        "That often settles within a week. Let us know if it does not.",
    ),
    (
        "Follow-up visit",
        "Do I need to book a follow-up after my last visit?",
        "Yes, please book one in about four weeks.",
    ),
];

pub const CANCEL_REASONS: &[&str] = &[
    "Patient unwell",
    "Schedule conflict",
    "Feeling better",
    "Transport problem",
];

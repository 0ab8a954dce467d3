//! The allergy check: a medication conflicts with a recorded allergy when
//! the allergy names it (by name, or by a word of its name) or names its
//! drug class, or a drug of the same class. The class table is small and
//! built in: it catches the classic cross-sensitivities (a penicillin
//! allergy and amoxicillin), it is not a drug-interaction database.

use uuid::Uuid;

use super::error::AllergyConflict;
use super::values::{words, Drug};

/// A drug class: the names that mean the class itself, and its members.
struct Class {
    name: &'static str,
    aliases: &'static [&'static str],
    members: &'static [&'static str],
}

const CLASSES: &[Class] = &[
    Class {
        name: "penicillins",
        aliases: &["penicillin", "penicillins", "beta lactam", "beta-lactam"],
        members: &[
            "penicillin",
            "amoxicillin",
            "ampicillin",
            "piperacillin",
            "dicloxacillin",
            "flucloxacillin",
            "nafcillin",
            "oxacillin",
            "benzylpenicillin",
            "phenoxymethylpenicillin",
        ],
    },
    Class {
        name: "cephalosporins",
        aliases: &["cephalosporin", "cephalosporins"],
        members: &[
            "cephalexin",
            "cefalexin",
            "cefazolin",
            "cefuroxime",
            "ceftriaxone",
            "cefdinir",
            "cefepime",
            "cefpodoxime",
        ],
    },
    Class {
        name: "sulfonamides",
        aliases: &["sulfa", "sulfonamide", "sulfonamides", "sulpha"],
        members: &["sulfamethoxazole", "sulfadiazine", "sulfasalazine"],
    },
    Class {
        name: "nsaids",
        aliases: &["nsaid", "nsaids"],
        members: &[
            "aspirin",
            "ibuprofen",
            "naproxen",
            "diclofenac",
            "ketorolac",
            "indomethacin",
            "meloxicam",
            "celecoxib",
        ],
    },
    Class {
        name: "opioids",
        aliases: &["opioid", "opioids", "opiate", "opiates"],
        members: &[
            "morphine",
            "codeine",
            "oxycodone",
            "hydrocodone",
            "hydromorphone",
            "fentanyl",
            "tramadol",
            "methadone",
        ],
    },
    Class {
        name: "macrolides",
        aliases: &["macrolide", "macrolides"],
        members: &["erythromycin", "azithromycin", "clarithromycin"],
    },
    Class {
        name: "fluoroquinolones",
        aliases: &[
            "fluoroquinolone",
            "fluoroquinolones",
            "quinolone",
            "quinolones",
        ],
        members: &["ciprofloxacin", "levofloxacin", "moxifloxacin", "ofloxacin"],
    },
    Class {
        name: "tetracyclines",
        aliases: &["tetracycline", "tetracyclines"],
        members: &["tetracycline", "doxycycline", "minocycline"],
    },
    Class {
        name: "ace inhibitors",
        aliases: &["ace inhibitor", "ace inhibitors"],
        members: &[
            "lisinopril",
            "enalapril",
            "ramipril",
            "captopril",
            "perindopril",
        ],
    },
];

/// Whether the word sequence `needle` occurs in `hay`.
fn contains(hay: &[String], needle: &[String]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn phrase(s: &str) -> Vec<String> {
    words(s)
}

/// The classes `drug` belongs to, by a word of its name.
fn classes_of(drug: &[String]) -> impl Iterator<Item = &'static Class> + '_ {
    CLASSES
        .iter()
        .filter(move |c| c.members.iter().any(|m| contains(drug, &phrase(m))))
}

/// The recorded allergies (`id`, substance) that `drug` conflicts with.
pub fn conflicts(drug: &Drug, allergies: &[(Uuid, String)]) -> Vec<AllergyConflict> {
    let name = phrase(&drug.name);
    let mut out = Vec::new();
    for (id, substance) in allergies {
        let allergen = phrase(substance);
        let conflict = if contains(&name, &allergen) {
            Some(None)
        } else {
            classes_of(&name)
                .find(|c| {
                    c.aliases
                        .iter()
                        .chain(c.members.iter())
                        .any(|a| contains(&allergen, &phrase(a)))
                })
                .map(|c| Some(c.name.to_owned()))
        };
        if let Some(class) = conflict {
            out.push(AllergyConflict {
                allergy_id: *id,
                substance: substance.to_lowercase(),
                class,
            });
        }
    }
    out
}

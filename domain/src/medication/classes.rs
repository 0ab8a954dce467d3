//! The allergy check: a medication conflicts with a recorded allergy when
//! the allergy names it (by name, or by a word of its name) or names its
//! drug class, or a drug of the same class. Common brand names are read as
//! their ingredients first (Augmentin is amoxicillin and clavulanate). The
//! tables are small and built in: they catch the classic
//! cross-sensitivities (a penicillin allergy and amoxicillin), they are not
//! a drug database; a name they do not know is matched by its words only.

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

/// Brand names and the ingredients they stand for.
const BRANDS: &[(&str, &[&str])] = &[
    ("amoxil", &["amoxicillin"]),
    ("augmentin", &["amoxicillin", "clavulanate"]),
    ("keflex", &["cephalexin"]),
    ("rocephin", &["ceftriaxone"]),
    ("ceftin", &["cefuroxime"]),
    ("omnicef", &["cefdinir"]),
    ("bactrim", &["sulfamethoxazole", "trimethoprim"]),
    ("septra", &["sulfamethoxazole", "trimethoprim"]),
    ("advil", &["ibuprofen"]),
    ("motrin", &["ibuprofen"]),
    ("aleve", &["naproxen"]),
    ("naprosyn", &["naproxen"]),
    ("voltaren", &["diclofenac"]),
    ("celebrex", &["celecoxib"]),
    ("mobic", &["meloxicam"]),
    ("vicodin", &["hydrocodone", "acetaminophen"]),
    ("norco", &["hydrocodone", "acetaminophen"]),
    ("percocet", &["oxycodone", "acetaminophen"]),
    ("oxycontin", &["oxycodone"]),
    ("ultram", &["tramadol"]),
    ("zithromax", &["azithromycin"]),
    ("biaxin", &["clarithromycin"]),
    ("cipro", &["ciprofloxacin"]),
    ("levaquin", &["levofloxacin"]),
    ("vibramycin", &["doxycycline"]),
    ("zestril", &["lisinopril"]),
    ("prinivil", &["lisinopril"]),
    ("vasotec", &["enalapril"]),
    ("altace", &["ramipril"]),
];

/// Words of a drug's name that say its strength or form, not what it is.
const NOT_INGREDIENTS: &[&str] = &[
    "mg",
    "mcg",
    "g",
    "ml",
    "l",
    "units",
    "unit",
    "iu",
    "meq",
    "mmol",
    "tablet",
    "tablets",
    "tab",
    "tabs",
    "capsule",
    "capsules",
    "cap",
    "caps",
    "oral",
    "solution",
    "suspension",
    "syrup",
    "injection",
    "injectable",
    "cream",
    "ointment",
    "gel",
    "patch",
    "inhaler",
    "spray",
    "drops",
    "er",
    "xr",
    "sr",
    "dr",
    "xl",
    "extended",
    "release",
    "delayed",
    "chewable",
    "film",
    "coated",
    "for",
    "of",
    "and",
    "with",
];

/// The words of `name` with brand names read as their ingredients.
fn expanded(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in words(name) {
        match BRANDS.iter().find(|(brand, _)| *brand == word) {
            Some((_, ingredients)) => out.extend(ingredients.iter().map(|i| (*i).to_owned())),
            None => out.push(word),
        }
    }
    out
}

/// What a drug is, as compared for the active list: its ingredients (a
/// brand read as them), without strength or form, in order. Amoxicillin
/// 500 mg capsule, amoxicillin 250 mg and Amoxil are one drug; Augmentin
/// (amoxicillin and clavulanate) is another.
pub fn ingredient_key(name: &str) -> String {
    let all = expanded(name);
    let kept: Vec<&String> = all
        .iter()
        .filter(|w| {
            !w.chars().any(|c| c.is_ascii_digit()) && !NOT_INGREDIENTS.contains(&w.as_str())
        })
        .collect();
    if kept.is_empty() {
        all.join(" ")
    } else {
        kept.iter()
            .map(|w| w.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

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

/// The drug class a medication belongs to, by its name (a brand read as
/// its ingredients), from the built-in table: the first class in table
/// order when it has ingredients of two; `None` when the table does not
/// know it. Analytics count prescriptions by it (ADR 0021).
pub fn drug_class(name: &str) -> Option<&'static str> {
    classes_of(&expanded(name)).next().map(|c| c.name)
}

/// The recorded allergies (`id`, substance) that `drug` conflicts with.
pub fn conflicts(drug: &Drug, allergies: &[(Uuid, String)]) -> Vec<AllergyConflict> {
    let name = expanded(&drug.name);
    let mut out = Vec::new();
    for (id, substance) in allergies {
        let allergen = expanded(substance);
        let conflict = if contains(&name, &allergen) || contains(&phrase(&drug.name), &allergen) {
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

#[cfg(test)]
mod class_tests {
    use super::drug_class;

    #[test]
    fn a_drug_is_classed_by_its_ingredients_and_brands() {
        assert_eq!(
            drug_class("Amoxicillin 500 mg capsule"),
            Some("penicillins")
        );
        assert_eq!(drug_class("Augmentin"), Some("penicillins"));
        assert_eq!(drug_class("ibuprofen"), Some("nsaids"));
        assert_eq!(drug_class("Salbutamol"), None);
    }
}

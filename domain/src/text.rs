//! Text as the domain accepts it. Every free-text value of every aggregate is
//! parsed here once, so that what reaches the log can be stored, indexed and
//! shown by every backend and every client: no NUL or other control
//! characters (a Postgres `text` column refuses NUL, a terminal obeys escape
//! codes), no bidirectional overrides (they make a name read as another), and
//! no text that is nothing but invisible characters.

/// Why a text value was refused. The caller names the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextError {
    /// Empty after trimming, or made only of invisible characters.
    Empty,
    /// More characters than the field allows.
    TooLong,
    /// A control character, bidirectional override or non-character.
    InvalidCharacters,
}

/// Whether a field is one line (names, codes) or free text over several
/// lines (a reaction, a description), where tab and newline are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// No line breaks at all.
    Single,
    /// Tab and line feed allowed; every other control still refused.
    Multi,
}

/// Trims surrounding white space and checks what is left.
pub fn parse(value: &str, lines: Lines, max_chars: usize) -> Result<String, TextError> {
    if value.chars().any(|c| forbidden(c, lines)) {
        return Err(TextError::InvalidCharacters);
    }
    let value = value.trim();
    if value.chars().all(invisible) {
        return Err(TextError::Empty);
    }
    if value.chars().count() > max_chars {
        return Err(TextError::TooLong);
    }
    Ok(value.to_owned())
}

/// Characters no text value may hold.
fn forbidden(c: char, lines: Lines) -> bool {
    match c {
        '\t' | '\n' => lines == Lines::Single,
        // C0, DEL and C1 controls.
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => true,
        // Line and paragraph separators: line breaks that most code misses.
        '\u{2028}' | '\u{2029}' => true,
        // Bidirectional embeddings, overrides and isolates.
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        // Non-characters: never meant for interchange.
        '\u{fdd0}'..='\u{fdef}' => true,
        c => (c as u32) & 0xfffe == 0xfffe,
    }
}

/// Characters that show nothing on their own: white space, zero-width and
/// formatting characters, fillers and variation selectors.
fn invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{ad}'
                | '\u{34f}'
                | '\u{61c}'
                | '\u{115f}'
                | '\u{1160}'
                | '\u{17b4}'
                | '\u{17b5}'
                | '\u{180b}'..='\u{180f}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2060}'..='\u{2064}'
                | '\u{206a}'..='\u{206f}'
                | '\u{3164}'
                | '\u{fe00}'..='\u{fe0f}'
                | '\u{feff}'
                | '\u{ffa0}'
                | '\u{e0000}'..='\u{e007f}'
                | '\u{e0100}'..='\u{e01ef}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_line(v: &str) -> Result<String, TextError> {
        parse(v, Lines::Single, 50)
    }

    #[test]
    fn surrounding_space_is_trimmed() {
        assert_eq!(one_line("  Curie \u{3000}"), Ok("Curie".to_owned()));
    }

    #[test]
    fn a_nul_character_is_refused() {
        assert_eq!(one_line("Cu\u{0}rie"), Err(TextError::InvalidCharacters));
    }

    #[test]
    fn c1_controls_and_escape_are_refused() {
        for c in ['\u{1b}', '\u{7f}', '\u{85}', '\u{9b}'] {
            assert_eq!(
                one_line(&format!("a{c}b")),
                Err(TextError::InvalidCharacters),
                "{c:?}"
            );
        }
    }

    #[test]
    fn a_newline_is_refused_in_a_name_and_kept_in_free_text() {
        assert_eq!(one_line("a\nb"), Err(TextError::InvalidCharacters));
        assert_eq!(
            parse("hives,\n\twheezing", Lines::Multi, 50),
            Ok("hives,\n\twheezing".to_owned())
        );
        assert_eq!(
            parse("a\rb", Lines::Multi, 50),
            Err(TextError::InvalidCharacters)
        );
    }

    #[test]
    fn a_bidirectional_override_is_refused() {
        assert_eq!(one_line("\u{202e}eiruC"), Err(TextError::InvalidCharacters));
        assert_eq!(one_line("a\u{2066}b"), Err(TextError::InvalidCharacters));
    }

    #[test]
    fn text_of_only_invisible_characters_is_empty() {
        assert_eq!(one_line("\u{200b}\u{feff} \u{2060}"), Err(TextError::Empty));
        assert_eq!(one_line(""), Err(TextError::Empty));
    }

    #[test]
    fn a_joiner_inside_visible_text_is_kept() {
        assert!(one_line("👩\u{200d}⚕️").is_ok());
    }

    #[test]
    fn non_characters_are_refused() {
        assert_eq!(one_line("a\u{fffe}"), Err(TextError::InvalidCharacters));
        assert_eq!(one_line("a\u{1ffff}"), Err(TextError::InvalidCharacters));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert!(parse(&"é".repeat(5), Lines::Single, 5).is_ok());
        assert_eq!(
            parse(&"é".repeat(6), Lines::Single, 5),
            Err(TextError::TooLong)
        );
    }
}

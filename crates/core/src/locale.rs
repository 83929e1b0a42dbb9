//! Locale negotiation and the widget's own built-in texts.
//!
//! Purpose labels and descriptions come from the site owner's config; the few words the
//! widget itself shows around them (legend, "optional", the notice link) are built in, so a
//! shop only translates what is its own.

use alloc::string::String;

/// Languages the widget ships texts for. A config may declare only these (with any region).
pub const SUPPORTED: &[&str] = &["en", "lv", "pl", "cs", "de", "lt", "et"];

/// The widget's own words in one language.
#[derive(Debug, PartialEq, Eq)]
pub struct WidgetTexts {
    /// `<legend>` of the choices.
    pub legend: &'static str,
    /// Marker after each label; every consent box is optional (R3).
    pub optional: &'static str,
    /// Under the legend: the choices are separate and none is a condition (R2, R3).
    pub intro: &'static str,
    /// Prefix of the controller's name (Art. 13(1)(a)).
    pub controller: &'static str,
    /// Text of the privacy notice link.
    pub privacy_notice: &'static str,
    /// Word before the notice version.
    pub version: &'static str,
    /// The right to withdraw (Art. 7(3)).
    pub withdraw: &'static str,
}

const EN: WidgetTexts = WidgetTexts {
    legend: "Marketing choices",
    optional: "optional",
    intro: "Each choice is separate and optional.",
    controller: "Controller",
    privacy_notice: "Privacy notice",
    version: "version",
    withdraw: "You can withdraw your consent at any time.",
};
const LV: WidgetTexts = WidgetTexts {
    legend: "Mārketinga izvēles",
    optional: "neobligāti",
    intro: "Katra izvēle ir atsevišķa un brīvprātīga.",
    controller: "Pārzinis",
    privacy_notice: "Privātuma paziņojums",
    version: "versija",
    withdraw: "Piekrišanu varat atsaukt jebkurā laikā.",
};
const PL: WidgetTexts = WidgetTexts {
    legend: "Zgody marketingowe",
    optional: "opcjonalnie",
    intro: "Każda zgoda jest odrębna i dobrowolna.",
    controller: "Administrator",
    privacy_notice: "Informacja o prywatności",
    version: "wersja",
    withdraw: "Zgodę możesz wycofać w dowolnym momencie.",
};
const CS: WidgetTexts = WidgetTexts {
    legend: "Marketingové souhlasy",
    optional: "nepovinné",
    intro: "Každý souhlas je samostatný a dobrovolný.",
    controller: "Správce",
    privacy_notice: "Zásady ochrany osobních údajů",
    version: "verze",
    withdraw: "Souhlas můžete kdykoli odvolat.",
};
const DE: WidgetTexts = WidgetTexts {
    legend: "Marketing-Einwilligungen",
    optional: "freiwillig",
    intro: "Jede Einwilligung ist einzeln und freiwillig.",
    controller: "Verantwortlicher",
    privacy_notice: "Datenschutzhinweise",
    version: "Version",
    withdraw: "Sie können Ihre Einwilligung jederzeit widerrufen.",
};
const LT: WidgetTexts = WidgetTexts {
    legend: "Rinkodaros pasirinkimai",
    optional: "neprivaloma",
    intro: "Kiekvienas pasirinkimas yra atskiras ir savanoriškas.",
    controller: "Duomenų valdytojas",
    privacy_notice: "Privatumo pranešimas",
    version: "versija",
    withdraw: "Sutikimą galite atšaukti bet kuriuo metu.",
};
const ET: WidgetTexts = WidgetTexts {
    legend: "Turundusnõusolekud",
    optional: "vabatahtlik",
    intro: "Iga valik on eraldi ja vabatahtlik.",
    controller: "Vastutav töötleja",
    privacy_notice: "Privaatsusteade",
    version: "versioon",
    withdraw: "Nõusoleku saate igal ajal tagasi võtta.",
};

/// The built-in texts for a primary language subtag (`lv`, not `lv-LV`).
pub fn builtin(language: &str) -> Option<&'static WidgetTexts> {
    Some(match language {
        "en" => &EN,
        "lv" => &LV,
        "pl" => &PL,
        "cs" => &CS,
        "de" => &DE,
        "lt" => &LT,
        "et" => &ET,
        _ => return None,
    })
}

/// The built-in texts for a declared locale tag, English where the language has none
/// (which a validated config rules out).
pub fn texts_for(tag: &str) -> &'static WidgetTexts {
    builtin(primary(tag)).unwrap_or(&EN)
}

/// The language subtag of a locale tag: `lv` for `lv-LV`.
pub fn primary(tag: &str) -> &str {
    tag.split(['-', '_']).next().unwrap_or(tag)
}

/// Whether two locale tags name the same language (`lv` and `LV-lv` do).
pub fn same_language(a: &str, b: &str) -> bool {
    primary(a).eq_ignore_ascii_case(primary(b))
}

/// Chooses the declared locale to show: the first requested tag (the page's `lang`; issue 6
/// adds the browser's languages) that matches a declared one exactly, or by its language
/// (`lv-LV` → `lv`, `lv` → `lv-LV`); otherwise the config's default.
pub fn negotiate<'a, 'r>(
    requested: impl IntoIterator<Item = &'r str>,
    declared: &'a [String],
    default: &'a str,
) -> &'a str {
    for tag in requested {
        let tag = tag.trim();
        if tag.is_empty() {
            continue;
        }
        if let Some(found) = declared.iter().find(|d| d.eq_ignore_ascii_case(tag)) {
            return found;
        }
        let language = primary(tag);
        if let Some(found) = declared.iter().find(|d| d.eq_ignore_ascii_case(language)) {
            return found;
        }
        if let Some(found) = declared.iter().find(|d| same_language(d, language)) {
            return found;
        }
    }
    default
}

#[cfg(test)]
mod tests {
    use super::*;

    use alloc::{string::ToString, vec::Vec};

    fn declared(tags: &[&str]) -> Vec<String> {
        tags.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn the_first_requested_language_declared_wins_else_the_default() {
        let d = declared(&["en", "lv", "pl"]);
        assert_eq!(negotiate(["lv", "pl"], &d, "en"), "lv");
        assert_eq!(negotiate(["fi", "pl-PL"], &d, "en"), "pl");
        assert_eq!(negotiate(["", "fi"], &d, "lv"), "lv");
    }

    #[test]
    fn region_falls_back_to_language_and_back() {
        assert_eq!(negotiate(["lv-LV"], &declared(&["en", "lv"]), "en"), "lv");
        assert_eq!(negotiate(["LV"], &declared(&["en", "lv-LV"]), "en"), "lv-LV");
        assert_eq!(negotiate(["cs-cz"], &declared(&["en", "cs-CZ"]), "en"), "cs-CZ");
    }

    #[test]
    fn every_supported_language_has_texts() {
        for lang in SUPPORTED {
            let t = builtin(lang).expect("supported languages have texts");
            assert!(!t.legend.is_empty() && !t.withdraw.is_empty());
        }
        assert!(builtin("fi").is_none());
    }
}

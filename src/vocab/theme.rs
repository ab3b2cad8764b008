//! The names of the dashboard's colour schemes (the palettes themselves are in `ui::theme`).

/// The colour schemes the operator can choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThemeName {
    /// Colours for a dark terminal background.
    #[default]
    Dark,
    /// Colours for a light terminal background.
    Light,
    /// No colours: bold, dim and reverse only.
    Mono,
}

impl ThemeName {
    pub fn name(self) -> &'static str {
        match self {
            ThemeName::Dark => "dark",
            ThemeName::Light => "light",
            ThemeName::Mono => "mono",
        }
    }

    pub fn from_name(s: &str) -> Option<ThemeName> {
        [ThemeName::Dark, ThemeName::Light, ThemeName::Mono]
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s.trim()))
    }
}

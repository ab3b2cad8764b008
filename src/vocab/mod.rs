//! The words that the settings and the dashboard share: key actions, contexts and
//! bindings, and the names of the colour schemes. `config` parses the file's `[keys]`
//! and `[ui] theme` into these; `ui` acts on them. Neither imports the other.

pub mod keys;
pub mod theme;

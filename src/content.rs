//! What a root holds, directory by directory, and what changed between two freezes.
//!
//! exec-tar's scanner reads every tar header anyway; [`ContentTally`] adds each entry's
//! size to the directory that holds it, down to [`DEPTH`] levels, and [`ContentTally::finish`]
//! turns that into a [`ContentSummary`] small enough for the record: the [`MAX_KEPT`]
//! largest directories, each counting everything below it. The guest is a stranger, so
//! what it can make us hold is bounded: at most [`MAX_LIVE`] directories are told apart
//! while scanning (deeper ones then count in their parent), a name longer than
//! [`MAX_KEY`] bytes counts in its parent, and paths are escaped before they are kept.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::format;
use crate::sanitize::{escape_bytes, guard};

/// How many levels below `/` are told apart (`/usr/lib/node_modules`).
pub const DEPTH: usize = 3;
/// Directories a summary keeps: the largest, each with its parents.
pub const MAX_KEPT: usize = 100;
/// Directories told apart while scanning; past this, new ones count in their parent.
/// Deeper ones stop sooner (see [`live_limit`]), so that a late top-level folder still
/// gets a place. SipHash (std's default) keeps a guest from choosing names that collide.
pub const MAX_LIVE: usize = 16384;
/// The longest directory key kept while scanning, in bytes; a longer one counts in its
/// parent. With [`MAX_LIVE`] this bounds the tally to a few MiB whatever the guest does.
pub const MAX_KEY: usize = 256;

/// How many directories may be told apart before a new one at `depth` goes to its parent:
/// all of [`MAX_LIVE`] for the first level, half of it for the third.
fn live_limit(depth: usize) -> usize {
    MAX_LIVE - depth.saturating_sub(1) * MAX_LIVE / 4
}

/// One directory and everything below it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirSize {
    /// `/usr/lib`, escaped (the guest's bytes made printable).
    pub path: String,
    /// Bytes of file data below it (headers and padding not counted).
    pub bytes: u64,
    /// Entries below it, itself included.
    pub entries: u64,
}

/// A root's content, compact: see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentSummary {
    /// File data in the whole archive.
    pub bytes: u64,
    pub entries: u64,
    /// The largest directories (depth 1 to [`DEPTH`]), largest first; a directory's
    /// parents always come before it.
    pub dirs: Vec<DirSize>,
    /// Directories seen but not kept (smaller than the last kept one).
    #[serde(default)]
    pub more_dirs: u64,
}

impl ContentSummary {
    /// The smallest directory kept when some were left out: a directory missing from this
    /// summary held at most this much.
    fn kept_floor(&self) -> Option<u64> {
        (self.more_dirs > 0).then(|| self.dirs.iter().map(|d| d.bytes).min().unwrap_or(0))
    }

    fn get(&self, path: &str) -> Option<&DirSize> {
        self.dirs.iter().find(|d| d.path == path)
    }
}

/// Counts entries into directories while the archive streams past.
#[derive(Debug, Clone)]
pub struct ContentTally {
    /// Own bytes and entries of each directory key (`usr/lib`, `` for `/`).
    buckets: HashMap<Box<[u8]>, (u64, u64)>,
    /// The key being built, reused from entry to entry.
    key: Vec<u8>,
    bytes: u64,
    entries: u64,
}

impl Default for ContentTally {
    fn default() -> Self {
        Self::new()
    }
}

impl ContentTally {
    pub fn new() -> Self {
        let mut buckets = HashMap::new();
        buckets.insert(Box::from(&b""[..]), (0, 0));
        ContentTally {
            buckets,
            key: Vec::with_capacity(MAX_KEY),
            bytes: 0,
            entries: 0,
        }
    }

    /// One entry: its raw path as tar wrote it (`./usr/lib/x.so`), whether it is a
    /// directory (counted in itself rather than in its parent), and its data size.
    pub fn add(&mut self, path: &[u8], is_dir: bool, size: u64) {
        self.bytes = self.bytes.saturating_add(size);
        self.entries += 1;
        // The first DEPTH + 1 components, skipping `.` and empty ones.
        let mut comps: [&[u8]; DEPTH + 1] = [&[]; DEPTH + 1];
        let mut n = 0;
        for c in path.split(|&b| b == b'/') {
            if c.is_empty() || c == b"." {
                continue;
            }
            comps[n] = c;
            n += 1;
            if n == DEPTH + 1 {
                break;
            }
        }
        // A file counts in the folder that holds it; a directory in itself.
        let mut depth = if is_dir { n } else { n.saturating_sub(1) }.min(DEPTH);
        loop {
            self.key.clear();
            for (i, c) in comps[..depth].iter().enumerate() {
                if i > 0 {
                    self.key.push(b'/');
                }
                self.key.extend_from_slice(c);
            }
            if let Some(b) = self.buckets.get_mut(self.key.as_slice()) {
                b.0 = b.0.saturating_add(size);
                b.1 += 1;
                return;
            }
            if self.key.len() <= MAX_KEY && self.buckets.len() < live_limit(depth) {
                self.buckets
                    .insert(Box::from(self.key.as_slice()), (size, 1));
                return;
            }
            // Too many directories or too long a name: the parent takes it. The root's
            // key is always there, so this ends.
            depth -= 1;
        }
    }

    /// The summary: every directory with everything below it, the largest kept.
    pub fn finish(&self) -> ContentSummary {
        let mut total: HashMap<&[u8], (u64, u64)> = HashMap::with_capacity(self.buckets.len());
        for (key, &(bytes, entries)) in &self.buckets {
            if key.is_empty() {
                continue;
            }
            // The key itself and each of its parents (never the root).
            let ends = key
                .iter()
                .enumerate()
                .filter(|(_, &b)| b == b'/')
                .map(|(i, _)| i)
                .chain([key.len()]);
            for end in ends {
                let t = total.entry(&key[..end]).or_insert((0, 0));
                t.0 = t.0.saturating_add(bytes);
                t.1 += entries;
            }
        }
        let mut dirs: Vec<(&[u8], u64, u64)> =
            total.into_iter().map(|(k, (b, e))| (k, b, e)).collect();
        // Parents have at least their children's bytes and entries, and are shallower, so
        // in this order a parent always comes before its children.
        dirs.sort_unstable_by(|a, b| {
            b.1.cmp(&a.1)
                .then(b.2.cmp(&a.2))
                .then(a.0.len().cmp(&b.0.len()))
                .then(a.0.cmp(b.0))
        });
        let more_dirs = dirs.len().saturating_sub(MAX_KEPT) as u64;
        dirs.truncate(MAX_KEPT);
        ContentSummary {
            bytes: self.bytes,
            entries: self.entries,
            dirs: dirs
                .into_iter()
                .map(|(k, bytes, entries)| DirSize {
                    path: format!("/{}", escape_bytes(k)),
                    bytes,
                    entries,
                })
                .collect(),
            more_dirs,
        }
    }
}

/// How a directory changed between two freezes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    Grew,
    Shrank,
    Appeared,
    Went,
}

impl ChangeKind {
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Grew => "grew",
            ChangeKind::Shrank => "shrank",
            ChangeKind::Appeared => "appeared",
            ChangeKind::Went => "went",
        }
    }
}

/// One directory's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub path: String,
    pub kind: ChangeKind,
    /// Bytes before (0 when it appeared) and after (0 when it went).
    pub before: u64,
    pub after: u64,
}

impl Change {
    pub fn delta(&self) -> i128 {
        i128::from(self.after) - i128::from(self.before)
    }
}

/// What changed from `before` to `after`, largest change first. A directory whose
/// change one of its children explains whole is left out (that child says it), and so
/// is everything below a directory that appeared or went. A directory missing from a
/// summary that left smaller ones out counts as appeared or went only if it is larger
/// than that summary's smallest kept one (otherwise it may just not have been kept).
pub fn diff(before: &ContentSummary, after: &ContentSummary) -> Vec<Change> {
    let mut out: Vec<Change> = Vec::new();
    for a in &after.dirs {
        let change = match before.get(&a.path) {
            Some(b) if b.bytes < a.bytes => Some((ChangeKind::Grew, b.bytes)),
            Some(b) if b.bytes > a.bytes => Some((ChangeKind::Shrank, b.bytes)),
            Some(_) => None,
            None if before.kept_floor().is_some_and(|f| a.bytes <= f) => None,
            None => Some((ChangeKind::Appeared, 0)),
        };
        if let Some((kind, before)) = change {
            out.push(Change {
                path: a.path.clone(),
                kind,
                before,
                after: a.bytes,
            });
        }
    }
    for b in &before.dirs {
        if after.get(&b.path).is_some() || after.kept_floor().is_some_and(|f| b.bytes <= f) {
            continue;
        }
        out.push(Change {
            path: b.path.clone(),
            kind: ChangeKind::Went,
            before: b.bytes,
            after: 0,
        });
    }
    let parent = |p: &str| p.rfind('/').filter(|&i| i > 0).map(|i| p[..i].to_string());
    let all = out.clone();
    out.retain(|c| {
        let whole_in_child = matches!(c.kind, ChangeKind::Grew | ChangeKind::Shrank)
            && all.iter().any(|k| {
                parent(&k.path).as_deref() == Some(c.path.as_str()) && k.delta() == c.delta()
            });
        let under_new_or_gone = parent(&c.path).is_some_and(|p| {
            all.iter()
                .any(|k| k.path == p && matches!(k.kind, ChangeKind::Appeared | ChangeKind::Went))
        });
        !whole_in_child && !under_new_or_gone
    });
    out.sort_by(|a, b| {
        b.delta()
            .unsigned_abs()
            .cmp(&a.delta().unsigned_abs())
            .then(a.path.cmp(&b.path))
    });
    out
}

/// `+1.5 MiB` / `-200 B`.
pub fn signed_bytes(delta: i128) -> String {
    let sign = if delta < 0 { '-' } else { '+' };
    let n = u64::try_from(delta.unsigned_abs()).unwrap_or(u64::MAX);
    format!("{sign}{}", format::bytes(n))
}

/// How many directories and changes the text shows (the JSON has them all).
pub const SHOWN: usize = 10;

/// The largest directories as text lines, safe to print: `  1.2 GiB  30112  /usr`.
pub fn largest_lines(s: &ContentSummary, n: usize) -> Vec<String> {
    let mut out: Vec<String> = s
        .dirs
        .iter()
        .take(n)
        .map(|d| {
            format!(
                "{:>10}  {:>8}  {}",
                format::bytes(d.bytes),
                d.entries,
                guard(&d.path)
            )
        })
        .collect();
    // What the listed top-level folders leave: files in `/` and the folders not kept.
    let top: u64 = s
        .dirs
        .iter()
        .filter(|d| d.path.matches('/').count() == 1)
        .map(|d| d.bytes)
        .sum();
    let other = s.bytes.saturating_sub(top);
    if other > 0 {
        out.push(format!(
            "{:>10}  {:>8}  (files in / and folders not kept)",
            format::bytes(other),
            ""
        ));
    }
    out
}

/// The changes as text lines, safe to print: `grew      +200.0 MiB  /home/node  (…)`.
pub fn change_lines(changes: &[Change], n: usize) -> Vec<String> {
    let mut out: Vec<String> = changes
        .iter()
        .take(n)
        .map(|c| {
            let was = match c.kind {
                ChangeKind::Grew | ChangeKind::Shrank => format!(
                    "  ({} → {})",
                    format::bytes(c.before),
                    format::bytes(c.after)
                ),
                _ => String::new(),
            };
            format!(
                "{:<9} {:>11}  {}{was}",
                c.kind.name(),
                signed_bytes(c.delta()),
                guard(&c.path)
            )
        })
        .collect();
    if changes.len() > n {
        out.push(format!("… and {} more changes", changes.len() - n));
    }
    out
}

/// The one-line head of a comparison: `1.0 GiB → 1.3 GiB (+300.0 MiB) since <id>`.
pub fn total_line(before: &ContentSummary, after: &ContentSummary) -> String {
    format!(
        "{} → {} ({}), {} → {} entries",
        format::bytes(before.bytes),
        format::bytes(after.bytes),
        signed_bytes(i128::from(after.bytes) - i128::from(before.bytes)),
        before.entries,
        after.entries
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(entries: &[(&str, bool, u64)]) -> ContentSummary {
        let mut t = ContentTally::new();
        for &(p, d, s) in entries {
            t.add(p.as_bytes(), d, s);
        }
        t.finish()
    }

    fn dir<'a>(s: &'a ContentSummary, p: &str) -> Option<&'a DirSize> {
        s.get(p)
    }

    fn base() -> Vec<(&'static str, bool, u64)> {
        vec![
            ("./", true, 0),
            ("./.dockerenv", false, 5),
            ("./usr/", true, 0),
            ("./usr/lib/", true, 0),
            ("./usr/lib/libc.so", false, 1000),
            ("./usr/lib/node_modules/", true, 0),
            ("./usr/lib/node_modules/x/y/z.js", false, 300),
            ("./home/", true, 0),
            ("./home/node/", true, 0),
            ("./home/node/.cache/", true, 0),
            ("./home/node/.cache/blob", false, 5000),
            ("./tmp/", true, 0),
            ("./tmp/old/", true, 0),
            ("./tmp/old/junk", false, 70),
        ]
    }

    #[test]
    fn each_directory_counts_everything_below_it_down_to_three_levels() {
        let s = summary(&base());
        assert_eq!(s.bytes, 6375);
        assert_eq!(s.entries, 14);
        let usr = dir(&s, "/usr").unwrap();
        assert_eq!((usr.bytes, usr.entries), (1300, 5));
        let lib = dir(&s, "/usr/lib").unwrap();
        assert_eq!((lib.bytes, lib.entries), (1300, 4));
        // The fourth level counts in the third.
        let nm = dir(&s, "/usr/lib/node_modules").unwrap();
        assert_eq!((nm.bytes, nm.entries), (300, 2));
        assert!(dir(&s, "/usr/lib/node_modules/x").is_none());
        assert_eq!(dir(&s, "/home").unwrap().bytes, 5000);
        // Largest first, and a parent before its children.
        assert_eq!(s.dirs[0].path, "/home");
        assert_eq!(s.dirs[1].path, "/home/node");
        assert_eq!(s.dirs[2].path, "/home/node/.cache");
        assert_eq!(s.more_dirs, 0);
        // `/` itself is not a directory of the list; its files are "other".
        assert!(s.dirs.iter().all(|d| d.path != "/"));
        let lines = largest_lines(&s, 3);
        assert!(lines[0].ends_with("/home"), "{lines:?}");
        assert!(
            lines[3].contains("5 B") && lines[3].contains("not kept"),
            "{lines:?}"
        );
    }

    #[test]
    fn paths_without_dot_slash_and_with_doubled_slashes_count_alike() {
        let a = summary(&[("usr//lib/x", false, 10)]);
        let b = summary(&[("./usr/lib/x", false, 10)]);
        let c = summary(&[("/usr/lib/./x", false, 10)]);
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(a.dirs.len(), 2);
    }

    #[test]
    fn a_guest_with_a_million_directories_leaves_a_bounded_summary() {
        let mut t = ContentTally::new();
        for i in 0..200_000u64 {
            t.add(format!("./d{i}/").as_bytes(), true, 0);
            t.add(format!("./d{i}/e/f/file").as_bytes(), false, i % 1000);
        }
        let long = format!("./{}/", "n".repeat(10_000));
        t.add(long.as_bytes(), true, 0);
        assert!(t.buckets.len() <= MAX_LIVE);
        assert!(t.buckets.keys().all(|k| k.len() <= MAX_KEY));
        let s = t.finish();
        assert_eq!(s.dirs.len(), MAX_KEPT);
        assert!(s.more_dirs > 0);
        assert_eq!(s.entries, 400_001);
        let all: u64 = (0..200_000u64).map(|i| i % 1000).sum();
        assert_eq!(s.bytes, all);
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.len() < 16 * 1024, "{}", json.len());
    }

    #[test]
    fn a_name_beyond_name_max_counts_in_its_parent() {
        let long = format!("./big/{}/", "n".repeat(10_000));
        let s = summary(&[(&long, true, 0), (&format!("{long}file"), false, 1 << 30)]);
        assert_eq!(s.dirs.len(), 1);
        assert_eq!(
            (s.dirs[0].path.as_str(), s.dirs[0].bytes),
            ("/big", 1 << 30)
        );
    }

    #[test]
    fn a_late_top_level_folder_finds_room_after_deep_ones_filled_theirs() {
        let mut t = ContentTally::new();
        for i in 0..20_000u64 {
            t.add(format!("./a/b/c{i}/").as_bytes(), true, 0);
        }
        t.add(b"./late/x", false, 1 << 20);
        assert_eq!(t.finish().dirs[0].path, "/late");
    }

    #[test]
    fn hostile_names_are_escaped_when_kept_and_guarded_when_shown() {
        let mut t = ContentTally::new();
        t.add(b"./\x1b]0;pwned\x07/\xff/x", false, 9);
        let s = t.finish();
        for d in &s.dirs {
            assert!(!d.path.chars().any(|c| c.is_control()), "{:?}", d.path);
        }
        assert!(s.dirs.iter().any(|d| d.path.contains("\\x1b")));
        assert!(s.dirs.iter().any(|d| d.path.contains("\\xff")));
        // A record edited by hand still cannot reach the terminal raw.
        let mut forged = s.clone();
        forged.dirs[0].path = "/\x1b[2J".into();
        for l in largest_lines(&forged, 5) {
            assert!(!l.contains('\x1b'), "{l:?}");
        }
    }

    #[test]
    fn the_diff_says_what_grew_shrank_appeared_and_went() {
        let before = summary(&base());
        let mut after_entries: Vec<(&str, bool, u64)> = base()
            .into_iter()
            .filter(|(p, _, _)| !p.starts_with("./tmp/"))
            .map(|(p, d, s)| match p {
                "./home/node/.cache/blob" => (p, d, 9000),
                "./usr/lib/libc.so" => (p, d, 400),
                _ => (p, d, s),
            })
            .collect();
        after_entries.push(("./opt/", true, 0));
        after_entries.push(("./opt/new/", true, 0));
        after_entries.push(("./opt/new/bin", false, 2000));
        let after = summary(&after_entries);
        let changes = diff(&before, &after);
        let got: Vec<(&str, ChangeKind, i128)> = changes
            .iter()
            .map(|c| (c.path.as_str(), c.kind, c.delta()))
            .collect();
        assert_eq!(
            got,
            [
                ("/home/node/.cache", ChangeKind::Grew, 4000),
                ("/opt", ChangeKind::Appeared, 2000),
                ("/usr/lib", ChangeKind::Shrank, -600),
                ("/tmp", ChangeKind::Went, -70),
            ]
        );
        let lines = change_lines(&changes, 2);
        assert!(lines[0].starts_with("grew") && lines[0].contains("+3.9 KiB"));
        assert!(lines[0].contains("(4.9 KiB → 8.8 KiB)"), "{lines:?}");
        assert_eq!(lines[2], "… and 2 more changes");
        assert!(total_line(&before, &after).contains("(+5.2 KiB)"));
        assert!(diff(&after, &after).is_empty());
    }

    #[test]
    fn a_directory_left_out_of_a_capped_summary_is_not_called_new() {
        let mut before = summary(&base());
        // As if /tmp had been too small to keep.
        before.dirs.retain(|d| !d.path.starts_with("/tmp"));
        before.more_dirs = 2;
        let after = summary(&base());
        assert!(diff(&before, &after).is_empty());
    }

    #[test]
    fn old_records_without_more_dirs_still_load() {
        let s: ContentSummary =
            serde_json::from_str(r#"{"bytes":1,"entries":1,"dirs":[]}"#).unwrap();
        assert_eq!(s.more_dirs, 0);
    }
}

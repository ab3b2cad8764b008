//! The record view's "what changed" section: the largest directories of the frozen root,
//! and against the same machine's previous successful freeze what grew, shrank, appeared
//! and went (issue 14 item 11). Lines only; the record view draws them.

use super::history::{DocKind, DocLine};
use crate::content::{change_lines, diff, largest_lines, total_line, SHOWN};
use crate::history::{when, Record};

fn line(kind: DocKind, text: String) -> DocLine {
    DocLine { kind, text }
}

/// The section's lines, empty when the record has no content summary (an older record,
/// or a run that never read the whole archive). Paths were escaped when the summary was
/// made and are guarded again by `content`'s line makers.
pub fn doc_lines(record: &Record, previous: Option<&Record>) -> Vec<DocLine> {
    let Some(now) = &record.content else {
        return Vec::new();
    };
    let mut out = vec![
        line(DocKind::Empty, String::new()),
        line(
            DocKind::Title,
            "── largest directories: file bytes, entries (all below counted) ──".into(),
        ),
    ];
    out.extend(
        largest_lines(now, SHOWN)
            .into_iter()
            .map(|l| line(DocKind::Field, l)),
    );
    let Some((p, before)) = previous.and_then(|p| Some((p, p.content.as_ref()?))) else {
        return out;
    };
    out.push(line(DocKind::Empty, String::new()));
    out.push(line(
        DocKind::Title,
        format!("── changes since {} ({}) ──", p.id, when(p.started_at_ms)),
    ));
    out.push(line(DocKind::Field, total_line(before, now)));
    let changes = diff(before, now);
    if changes.is_empty() {
        out.push(line(
            DocKind::Field,
            "no directory grew, shrank, appeared or went".into(),
        ));
    }
    let shown = &changes[..changes.len().min(SHOWN)];
    for (c, text) in shown.iter().zip(change_lines(shown, SHOWN)) {
        // Growth is what an operator hunting a large freeze looks for.
        let kind = match c.kind {
            crate::content::ChangeKind::Grew | crate::content::ChangeKind::Appeared => {
                DocKind::Warning
            }
            _ => DocKind::Field,
        };
        out.push(line(kind, text));
    }
    if changes.len() > SHOWN {
        out.push(line(
            DocKind::Field,
            format!("… and {} more changes", changes.len() - SHOWN),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use insta::assert_snapshot;

    use super::super::app::{Action, LoadedRecord, View};
    use super::super::fixtures::*;
    use crate::content::{ContentSummary, ContentTally};

    fn root(extra: &[(&str, bool, u64)]) -> ContentSummary {
        let mut t = ContentTally::new();
        for (p, d, s) in [
            ("./usr/", true, 0),
            ("./usr/lib/", true, 0),
            ("./usr/lib/libnode.so", false, 80 * MIB),
            ("./usr/share/", true, 0),
            ("./usr/share/zoneinfo", false, 3 * MIB),
            ("./home/", true, 0),
            ("./home/node/", true, 0),
            ("./home/node/.npm/", true, 0),
        ]
        .iter()
        .chain(extra)
        {
            t.add(p.as_bytes(), *d, *s);
        }
        t.finish()
    }

    /// Issue 14 item 11: the record view shows the largest directories, and what grew,
    /// shrank, appeared and went since the machine's previous successful freeze.
    #[test]
    fn record_view_what_changed_100x40() {
        let mut a = with_machines(100, 40);
        a.update(key('h'));
        let mut rs = records();
        let mut older = rs[0].clone();
        older.id = "20270114T060000Z-web-0000".into();
        older.started_at_ms -= 86_400_000;
        older.ended_at_ms = older.ended_at_ms.map(|t| t - 86_400_000);
        older.content = Some(root(&[
            ("./home/node/.npm/cache", false, 40 * MIB),
            ("./tmp/", true, 0),
            ("./tmp/build/", true, 0),
            ("./tmp/build/out.o", false, 12 * MIB),
        ]));
        rs[0].content = Some(root(&[
            ("./home/node/.npm/cache", false, 900 * MIB),
            ("./opt/", true, 0),
            ("./opt/\x1b[2Jtools/", true, 0),
            ("./opt/\x1b[2Jtools/bin", false, 25 * MIB),
        ]));
        let newer = rs[0].clone();
        rs.insert(1, older);
        a.update(Action::HistoryLoaded(Ok(rs)));
        a.update(super::super::fixtures::code(
            crossterm::event::KeyCode::Enter,
        ));
        a.update(Action::RecordLoaded {
            id: newer.id.clone(),
            result: Ok(Box::new(LoadedRecord {
                record: newer,
                logs: vec![],
            })),
        });
        assert_eq!(a.view, View::Record);
        let text = screen(&a);
        assert!(
            text.contains("changes since 20270114T060000Z-web-0000"),
            "{text}"
        );
        assert!(
            text.contains("grew") && text.contains("/home/node/.npm"),
            "{text}"
        );
        assert!(text.contains("appeared") && text.contains("/opt"), "{text}");
        assert!(text.contains("went") && text.contains("/tmp"), "{text}");
        assert!(!text.contains('\x1b'), "{text}");
        assert_snapshot!(text);
    }

    #[test]
    fn a_record_without_a_summary_adds_nothing() {
        let rec = records().remove(0);
        assert!(super::doc_lines(&rec, None).is_empty());
    }
}

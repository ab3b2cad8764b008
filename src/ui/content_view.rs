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

    use super::super::app::View;
    use super::super::fixtures::*;

    /// Issue 14 item 11: the record view shows the largest directories, and what grew,
    /// shrank, appeared and went since the machine's previous successful freeze.
    #[test]
    fn record_view_what_changed_100x40() {
        let a = what_changed(100, 40);
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

//! What a scan's result means for the stored truth: ordering, the revision checksum, and the
//! never-downgrade rule. Pure.

use sha2::Digest as _;

/// Tags in Flux's stored order: descending byte order.
pub fn sort_desc(tags: &mut [String]) {
    tags.sort_unstable_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
}

/// The revision of a (sorted) tag list: `sha256:` and the hex SHA-256 of `tag\n` lines, as
/// Flux's file storage computes it.
pub fn revision(sorted_tags: &[String]) -> String {
    let mut h = sha2::Sha256::new();
    for t in sorted_tags {
        h.update(t.as_bytes());
        h.update(b"\n");
    }
    format!("sha256:{:x}", h.finalize())
}

/// Whether a fresh listing replaces the stored one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// Keep the last good list; `reason` goes to status. The listing's revision is remembered
    /// so that an identical second scan confirms it.
    Hold {
        reason: String,
    },
}

/// Judges a complete listing of `new_count` tags with revision `new_revision` against the
/// stored list (`previous_count`, or None when nothing is stored). A drop of more than
/// `max_drop` (0.5 = 50%) is accepted only when the previous scan saw the same revision
/// (`pending`).
pub fn judge(
    previous_count: Option<usize>,
    pending: Option<&str>,
    new_revision: &str,
    new_count: usize,
    max_drop: f64,
) -> Verdict {
    let Some(prev) = previous_count.filter(|p| *p > 0) else {
        return Verdict::Accept;
    };
    let dropped = prev.saturating_sub(new_count) as f64 / prev as f64;
    if dropped <= max_drop || pending == Some(new_revision) {
        return Verdict::Accept;
    }
    Verdict::Hold {
        reason: format!(
            "tag count dropped from {prev} to {new_count} ({:.0}% fewer); keeping the last good list until a second scan confirms it",
            dropped * 100.0
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_is_stable() {
        let mut t = vec!["1.0.0".to_owned(), "1.0.1".to_owned(), "0.1.0".to_owned()];
        sort_desc(&mut t);
        assert_eq!(t, ["1.0.1", "1.0.0", "0.1.0"]);
        let want = format!(
            "sha256:{:x}",
            sha2::Sha256::digest(b"1.0.1\n1.0.0\n0.1.0\n")
        );
        assert_eq!(revision(&t), want);
        assert_eq!(
            revision(&[]),
            format!("sha256:{:x}", sha2::Sha256::digest(b""))
        );
    }

    #[test]
    fn never_downgrade_from_a_suspicious_drop() {
        assert_eq!(judge(None, None, "r1", 0, 0.5), Verdict::Accept);
        assert_eq!(judge(Some(100), None, "r1", 60, 0.5), Verdict::Accept);
        assert_eq!(judge(Some(100), None, "r1", 120, 0.5), Verdict::Accept);
        assert!(matches!(
            judge(Some(100), None, "r1", 10, 0.5),
            Verdict::Hold { .. }
        ));
        assert!(matches!(
            judge(Some(100), Some("r0"), "r1", 0, 0.5),
            Verdict::Hold { .. }
        ));
        // The same drop seen twice is the truth.
        assert_eq!(judge(Some(100), Some("r1"), "r1", 10, 0.5), Verdict::Accept);
    }
}

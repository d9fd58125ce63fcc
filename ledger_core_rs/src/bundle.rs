//! Entry bundles of the public log (docs/ledger-format.md, "Public log (tiles)"): each entry a
//! big-endian uint16 length, then that many bytes, the entry's export line without its newline.

/// A bundle's entries as JSON Lines (each entry, then `\n`), or None unless it is exactly `width`
/// entries of one non-blank line each: a line per entry is what a JSONL reader (which skips blank
/// lines) needs to count them back.
pub fn to_jsonl(bundle: &[u8], width: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bundle.len());
    let (mut at, mut entries) = (0usize, 0usize);
    while at < bundle.len() {
        let prefix = bundle.get(at..at + 2)?;
        let end = at + 2 + u16::from_be_bytes([prefix[0], prefix[1]]) as usize;
        let entry = bundle.get(at + 2..end)?;
        if entry.contains(&b'\n') || entry.iter().all(|c| c.is_ascii_whitespace()) {
            return None;
        }
        out.extend_from_slice(entry);
        out.push(b'\n');
        (at, entries) = (end, entries + 1);
    }
    (entries == width).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(entries: &[&[u8]]) -> Vec<u8> {
        entries.iter().flat_map(|e| [&(e.len() as u16).to_be_bytes()[..], e].concat()).collect()
    }

    #[test]
    fn a_bundle_becomes_one_line_per_entry() {
        assert_eq!(to_jsonl(&bundle(&[b"{}", b"{\"a\":1}"]), 2).unwrap(), b"{}\n{\"a\":1}\n");
        assert_eq!(to_jsonl(b"", 0).unwrap(), b"");
    }

    #[test]
    fn a_bundle_of_another_width_truncated_or_not_of_lines_is_refused() {
        let two = bundle(&[b"{}", b"{}"]);
        assert_eq!(to_jsonl(&two, 3), None);
        assert_eq!(to_jsonl(&two[..two.len() - 1], 2), None);
        assert_eq!(to_jsonl(&two[..1], 1), None);
        assert_eq!(to_jsonl(&bundle(&[b"{\n}"]), 1), None);
        assert_eq!(to_jsonl(&bundle(&[b"{}", b" "]), 2), None);
        assert_eq!(to_jsonl(&bundle(&[b""]), 1), None);
    }
}

//! Plain text: one block per paragraph (lines separated by blank lines), verbatim.

use crate::document::{paragraphs, Block, BlockKind, Document, Format};

/// Reads plain text.
pub(crate) fn read(text: &str) -> Document {
    let blocks = paragraphs(text, 0)
        .into_iter()
        .map(|r| Block {
            kind: BlockKind::Text,
            text: text[r.clone()].to_string(),
            range: r,
            page: None,
            headings: Vec::new(),
            verbatim: true,
        })
        .collect();
    Document::new(Format::Text, None, blocks, None)
}

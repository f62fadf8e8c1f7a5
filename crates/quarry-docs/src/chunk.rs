//! Chunking: a document's blocks packed into chunks of at most [`ChunkSpec::max_tokens`] tokens
//! of the collection's model ([`Tokens`]).
//!
//! * Blocks are never cut unless one alone is longer than a chunk; it is then cut into windows of
//!   `max_tokens` tokens, consecutive windows sharing `overlap` tokens.
//! * A heading starts a new chunk (a run of headings stays together with the text under it).
//! * When a chunk is full, the next one starts with the last blocks of the previous one that
//!   fit in `overlap` tokens, so a passage cut at a chunk boundary is whole in one of them.
//! * Each chunk keeps the byte range it covers, its page range (PDF) and the headings above it.

use crate::document::{Block, BlockKind, Document};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// How documents are cut into chunks (stored in a text collection's schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChunkSpec {
    /// Most tokens of the model per chunk.
    pub max_tokens: usize,
    /// Tokens consecutive chunks may share.
    pub overlap: usize,
}

impl Default for ChunkSpec {
    /// 256 tokens, 32 shared: the window of the common small sentence models, with the same
    /// overlap as long documents' passages.
    fn default() -> Self {
        ChunkSpec { max_tokens: 256, overlap: 32 }
    }
}

impl ChunkSpec {
    /// Checks the settings: at least 8 tokens per chunk, an overlap below half a chunk.
    pub fn check(&self) -> quarry_core::Result<()> {
        if self.max_tokens < 8 || self.overlap * 2 > self.max_tokens {
            return Err(quarry_core::Error::InvalidArgument(format!(
                "chunking: max_tokens {} must be ≥ 8 and overlap {} at most half of it",
                self.max_tokens, self.overlap
            )));
        }
        Ok(())
    }
}

/// What counts tokens: byte spans of the tokens of a text, in order (the model's tokenizer, or
/// [`Words`]).
pub trait Tokens {
    /// The byte ranges of `text`'s tokens.
    fn spans(&self, text: &str) -> Vec<Range<usize>>;
    /// How many tokens `text` has.
    fn count(&self, text: &str) -> usize {
        self.spans(text).len()
    }
}

/// Tokens as a BERT tokenizer's pre-tokenizer cuts them before word pieces: runs of letters and
/// digits, and each other non-space character alone. A lower bound of a word-piece count, for
/// collections without a model.
#[derive(Debug, Clone, Copy, Default)]
pub struct Words;

impl Tokens for Words {
    fn spans(&self, text: &str) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        let mut word: Option<usize> = None;
        for (i, c) in text.char_indices() {
            if c.is_alphanumeric() {
                word.get_or_insert(i);
                continue;
            }
            if let Some(s) = word.take() {
                out.push(s..i);
            }
            if !c.is_whitespace() {
                out.push(i..i + c.len_utf8());
            }
        }
        if let Some(s) = word {
            out.push(s..text.len());
        }
        out
    }
}

/// One chunk of a document.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// Its text: its blocks' texts, separated by blank lines.
    pub text: String,
    /// Bytes it covers: from its first block's start to its last block's end (for PDF, each in
    /// its own page's text: see `page` and `page_end`).
    pub range: Range<usize>,
    /// Page of its first block (PDF).
    pub page: Option<u32>,
    /// Page of its last block (PDF).
    pub page_end: Option<u32>,
    /// Headings above its first new block, outermost first.
    pub headings: Vec<String>,
    /// Its tokens (the sum over its blocks).
    pub tokens: usize,
}

/// A block, or a window of one, placed in a chunk.
#[derive(Debug, Clone)]
struct Piece {
    text: String,
    range: Range<usize>,
    page: Option<u32>,
    headings: Vec<String>,
    heading: bool,
    tokens: usize,
}

/// Cuts `doc` into chunks by `spec`, counting tokens with `tokens`.
pub fn chunk(doc: &Document, spec: &ChunkSpec, tokens: &dyn Tokens) -> Vec<Chunk> {
    let max = spec.max_tokens.max(1);
    let overlap = spec.overlap.min(max / 2);
    let mut out = Vec::new();
    // The chunk being filled: carried pieces first, then `fresh` new ones.
    let mut cur: Vec<Piece> = Vec::new();
    let mut fresh = 0usize;
    let emit = |cur: &[Piece], fresh: usize, out: &mut Vec<Chunk>| {
        if fresh == 0 || cur.is_empty() {
            return;
        }
        let first_new = &cur[cur.len() - fresh];
        let (first, last) = (&cur[0], &cur[cur.len() - 1]);
        out.push(Chunk {
            text: cur.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join("\n\n"),
            range: first.range.start..last.range.end,
            page: first.page,
            page_end: last.page,
            headings: first_new.headings.clone(),
            tokens: cur.iter().map(|p| p.tokens).sum(),
        });
    };
    for block in &doc.blocks {
        let spans = tokens.spans(&block.text);
        let n = spans.len();
        if n == 0 {
            continue;
        }
        let heading = block.kind == BlockKind::Heading;
        let only_headings = cur.iter().rev().take(fresh).all(|p| p.heading);
        if heading && fresh > 0 && !only_headings {
            emit(&cur, fresh, &mut out);
            cur.clear();
            fresh = 0;
        }
        if n > max {
            // Too long for one chunk: the headings waiting for it go into its first window, if
            // they leave it at least half a chunk (else they go: the chunks keep them in their
            // heading path).
            let mut lead: Vec<Piece> =
                if only_headings { cur.split_off(cur.len() - fresh) } else { Vec::new() };
            if lead.iter().map(|p| p.tokens).sum::<usize>() > max / 2 {
                lead.clear();
            }
            if !only_headings {
                emit(&cur, fresh, &mut out);
            }
            cur.clear();
            fresh = 0;
            let lead_tokens: usize = lead.iter().map(|p| p.tokens).sum();
            let mut start = 0;
            let mut first = true;
            loop {
                let room = if first { max - lead_tokens } else { max }.max(1);
                let end = (start + room).min(n);
                let mut pieces = if first { lead.clone() } else { Vec::new() };
                pieces.push(window(block, &spans, start..end));
                emit(&pieces, 1, &mut out);
                if end == n {
                    break;
                }
                start = end - overlap.min(end - start - 1).min(room - 1);
                first = false;
            }
            continue;
        }
        let used: usize = cur.iter().map(|p| p.tokens).sum();
        if used + n > max && fresh > 0 {
            let stays_together = cur.iter().rev().take(fresh).all(|p| p.heading);
            if !stays_together {
                emit(&cur, fresh, &mut out);
                // Carry the last pieces that fit in the overlap (headings are not carried).
                let mut carried = Vec::new();
                let mut t = 0;
                for p in cur.iter().rev() {
                    if p.heading || t + p.tokens > overlap || t + p.tokens + n > max {
                        break;
                    }
                    t += p.tokens;
                    carried.push(p.clone());
                }
                carried.reverse();
                cur = carried;
                fresh = 0;
            }
        }
        let used: usize = cur.iter().map(|p| p.tokens).sum();
        if used + n > max {
            // Carried pieces that leave no room go, then waiting headings (the chunks keep them in
            // their heading path): no chunk is longer than `max_tokens`.
            let keep = cur.len() - fresh;
            cur.drain(..keep);
            while !cur.is_empty() && cur.iter().map(|p| p.tokens).sum::<usize>() + n > max {
                cur.remove(0);
            }
            fresh = cur.len();
        }
        cur.push(Piece {
            text: block.text.clone(),
            range: block.range.clone(),
            page: block.page,
            headings: block.headings.clone(),
            heading,
            tokens: n,
        });
        fresh += 1;
    }
    emit(&cur, fresh, &mut out);
    out
}

/// Tokens `w` of `block` (whose token spans are `spans`) as a piece: its exact bytes when the
/// block is the source verbatim, else the block's range.
fn window(block: &Block, spans: &[Range<usize>], w: Range<usize>) -> Piece {
    let (a, b) = (spans[w.start].start, spans[w.end - 1].end);
    let range =
        if block.verbatim { block.range.start + a..block.range.start + b } else { block.range.clone() };
    Piece {
        text: block.text[a..b].to_string(),
        range,
        page: block.page,
        headings: block.headings.clone(),
        heading: false,
        tokens: w.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{read_bytes, Format};

    #[test]
    fn paragraphs_pack_headings_split_and_long_blocks_window() {
        let md =
            "# A\n\none two three.\n\nfour five six.\n\n## B\n\nseven eight nine ten eleven twelve thirteen \
                  fourteen fifteen sixteen seventeen eighteen nineteen twenty.\n";
        let doc = read_bytes(md.as_bytes(), Format::Markdown).expect("md");
        let spec = ChunkSpec { max_tokens: 9, overlap: 3 };
        let chunks = chunk(&doc, &spec, &Words);
        assert!(chunks.iter().all(|c| c.tokens <= 9), "{chunks:#?}");
        // "# A" (2 tokens) + the first paragraph (4); the second (4) does not fit with them.
        assert_eq!(chunks[0].text, "# A\n\none two three.");
        assert_eq!(chunks[0].headings, ["A"]);
        // The first paragraph (4 tokens) is more than the overlap (3): not carried. The heading B
        // starts a new chunk with the first window of the long paragraph.
        assert_eq!(chunks[1].text, "four five six.");
        assert!(chunks[2].text.starts_with("## B\n\nseven"), "{:?}", chunks[2].text);
        assert_eq!(chunks[2].headings, ["A", "B"]);
        // Every chunk's range is the source of its text where blocks are verbatim.
        for c in &chunks {
            let src = &md[c.range.clone()];
            assert!(
                src.starts_with(c.text.split("\n\n").next().unwrap_or_default()),
                "{src:?} vs {:?}",
                c.text
            );
        }
        // Windows of the long paragraph share 3 tokens.
        let tail: Vec<&Chunk> = chunks.iter().skip(3).collect();
        assert!(!tail.is_empty());
        let prev_words: Vec<&str> = chunks[2].text.split_whitespace().collect();
        // No chunk is ever longer than max_tokens: a heading that does not fit with its
        // paragraph goes, and tiny limits do not panic.
        let tight = read_bytes(b"# A\n\none two three four five six seven eight nine\n", Format::Markdown)
            .expect("md");
        for max in [1, 2, 9, 10] {
            let cs = chunk(&tight, &ChunkSpec { max_tokens: max, overlap: max / 2 }, &Words);
            assert!(cs.iter().all(|c| c.tokens <= max), "max {max}: {cs:#?}");
            assert!(cs.iter().any(|c| c.text.contains("nine")), "max {max}");
        }
        let next_words: Vec<&str> = tail[0].text.split_whitespace().collect();
        assert_eq!(&prev_words[prev_words.len() - 3..], &next_words[..3]);
    }
}

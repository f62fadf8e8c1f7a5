//! A document as the chunker sees it: a title and [`Block`]s of text, each with the headings
//! above it, the byte range it came from, and its page (PDF). [`read`] picks the reader by the
//! file's extension ([`Format`]).

use quarry_core::{Error, Result};
use std::ops::Range;
use std::path::Path;

/// A document format Quarry reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Plain text (`.txt`, `.text`, and files without an extension): paragraphs are separated
    /// by blank lines.
    Text,
    /// Markdown (`.md`, `.markdown`): CommonMark blocks; `#` headings.
    Markdown,
    /// HTML (`.html`, `.htm`, `.xhtml`): text of block elements; `<h1>`–`<h6>` headings;
    /// `<title>`; scripts, styles and comments left out.
    Html,
    /// PDF (`.pdf`): text by page (feature `pdf`).
    Pdf,
}

impl Format {
    /// The format of a file named `path`, by extension (case-insensitive); none for others.
    pub fn of(path: &Path) -> Option<Format> {
        let ext = match path.extension() {
            None => return Some(Format::Text),
            Some(e) => e.to_string_lossy().to_ascii_lowercase(),
        };
        match ext.as_str() {
            "txt" | "text" => Some(Format::Text),
            "md" | "markdown" | "mdown" | "mkd" => Some(Format::Markdown),
            "html" | "htm" | "xhtml" => Some(Format::Html),
            "pdf" => Some(Format::Pdf),
            _ => None,
        }
    }

    /// Its name in payloads: `text`, `markdown`, `html` or `pdf`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "markdown",
            Format::Html => "html",
            Format::Pdf => "pdf",
        }
    }
}

/// What a block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// A heading (its level 1–6 is the length of [`Block::headings`]).
    Heading,
    /// A paragraph, list item, table, quote or other running text.
    Text,
    /// Preformatted text or a code block.
    Code,
}

/// One block of a document.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// Its kind.
    pub kind: BlockKind,
    /// Its text: the source bytes themselves for plain text and Markdown; the decoded text for
    /// HTML (tags dropped, entities decoded) and PDF.
    pub text: String,
    /// Where it came from: bytes of the file (plain text, Markdown, HTML), or of its page's
    /// extracted text (PDF).
    pub range: Range<usize>,
    /// Its page, from 1 (PDF only).
    pub page: Option<u32>,
    /// The headings it sits under, outermost first (a heading block: itself last).
    pub headings: Vec<String>,
    /// Whether `text` is the source bytes at `range` verbatim (so a part of it has exact
    /// offsets too).
    pub verbatim: bool,
}

/// A document read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Its format.
    pub format: Format,
    /// Its title: the HTML `<title>`, the PDF's Title, else the first heading, else the first
    /// line (at most 200 characters); none for an empty document.
    pub title: Option<String>,
    /// Its blocks, in reading order.
    pub blocks: Vec<Block>,
    /// Pages (PDF only).
    pub pages: Option<u32>,
}

impl Document {
    /// A document of `blocks` with `title`, or else the first heading or the first line.
    pub(crate) fn new(
        format: Format,
        title: Option<String>,
        blocks: Vec<Block>,
        pages: Option<u32>,
    ) -> Document {
        let title = title.filter(|t| !t.trim().is_empty()).map(|t| clip(t.trim())).or_else(|| {
            let first = blocks.iter().find(|b| b.kind == BlockKind::Heading).or_else(|| blocks.first())?;
            let line = first.text.lines().map(str::trim).find(|l| !l.is_empty())?;
            Some(clip(line.trim_start_matches('#').trim()))
        });
        Document { format, title, blocks, pages }
    }
}

/// The first 200 characters of `s`.
fn clip(s: &str) -> String {
    match s.char_indices().nth(200) {
        Some((at, _)) => s[..at].to_string(),
        None => s.to_string(),
    }
}

/// Reads the file at `path` by its extension ([`Format::of`]).
pub fn read(path: &Path) -> Result<Document> {
    let format = Format::of(path).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{}: not a format Quarry reads (plain text, Markdown, HTML or PDF by extension)",
            path.display()
        ))
    })?;
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    read_bytes(&bytes, format).map_err(|e| match e {
        Error::InvalidArgument(m) => Error::InvalidArgument(format!("{}: {m}", path.display())),
        e => e,
    })
}

/// Reads a document of `format` from `bytes`. Text must be UTF-8 (a byte-order mark is
/// skipped); a PDF whose text cannot be extracted is an error naming why.
pub fn read_bytes(bytes: &[u8], format: Format) -> Result<Document> {
    let text = || -> Result<&str> {
        let b = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        std::str::from_utf8(b).map_err(|e| {
            Error::InvalidArgument(format!("not UTF-8 text (invalid byte at offset {})", e.valid_up_to()))
        })
    };
    // Offsets are of the file: a skipped byte-order mark shifts them by its 3 bytes.
    let bom = if bytes.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
    let shift = |mut d: Document| {
        for b in &mut d.blocks {
            b.range = b.range.start + bom..b.range.end + bom;
        }
        d
    };
    match format {
        Format::Text => Ok(shift(crate::plain::read(text()?))),
        Format::Markdown => Ok(shift(crate::markdown::read(text()?))),
        Format::Html => Ok(shift(crate::html::read(text()?))),
        #[cfg(feature = "pdf")]
        Format::Pdf => crate::pdf::read(bytes),
        #[cfg(not(feature = "pdf"))]
        Format::Pdf => {
            Err(Error::InvalidArgument("PDF support is not built in (cargo feature `pdf`)".into()))
        }
    }
}

/// Paragraphs of `text` (runs of lines separated by blank lines), as byte ranges of `text`
/// shifted by `base`, trimmed of surrounding whitespace.
pub(crate) fn paragraphs(text: &str, base: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut end = 0;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let blank = line.trim().is_empty();
        if blank {
            if let Some(s) = start.take() {
                out.push(s..end);
            }
        } else {
            let lead = line.len() - line.trim_start().len();
            if start.is_none() {
                start = Some(at + lead);
            }
            end = at + line.trim_end().len();
        }
        at += line.len();
    }
    if let Some(s) = start {
        out.push(s..end);
    }
    out.into_iter().map(|r| r.start + base..r.end + base).collect()
}

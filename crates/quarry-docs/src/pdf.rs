//! PDF: the text of each page (the `pdf-extract` crate, on `lopdf`), one block per paragraph,
//! each with its page and its byte range in that page's text; the document's Title from its
//! information dictionary. A PDF that cannot be read — damaged, encrypted, or one the extractor
//! gives up on (it can panic on unusual fonts; that is caught) — is an error naming why.

use crate::document::{paragraphs, Block, BlockKind, Document, Format};
use quarry_core::{Error, Result};

/// Reads a PDF.
pub(crate) fn read(bytes: &[u8]) -> Result<Document> {
    if !bytes.starts_with(b"%PDF-") {
        return Err(Error::InvalidArgument("not a PDF file (no %PDF- header)".into()));
    }
    let extracted = catch(|| {
        let doc = pdf_extract::Document::load_mem(bytes).map_err(|e| format!("{e}"))?;
        if doc.is_encrypted() {
            return Err("the PDF is encrypted".to_string());
        }
        let title = info_title(&doc);
        let pages = pdf_extract::extract_text_from_mem_by_pages(bytes).map_err(|e| format!("{e}"))?;
        Ok((title, pages))
    });
    let (title, pages) = extracted.map_err(|m| Error::InvalidArgument(format!("unreadable PDF: {m}")))?;
    let mut blocks = Vec::new();
    for (p, text) in pages.iter().enumerate() {
        for r in paragraphs(text, 0) {
            // Lines of a paragraph are joined: PDF text breaks lines where the page did.
            let joined = text[r.clone()].split_whitespace().collect::<Vec<_>>().join(" ");
            blocks.push(Block {
                kind: BlockKind::Text,
                text: joined,
                range: r,
                page: Some(p as u32 + 1),
                headings: Vec::new(),
                verbatim: false,
            });
        }
    }
    Ok(Document::new(Format::Pdf, title, blocks, Some(pages.len() as u32)))
}

/// The Title entry of the document's information dictionary.
fn info_title(doc: &pdf_extract::Document) -> Option<String> {
    let info = doc.trailer.get(b"Info").ok()?;
    let dict = match info {
        pdf_extract::Object::Reference(id) => doc.get_dictionary(*id).ok()?,
        pdf_extract::Object::Dictionary(d) => d,
        _ => return None,
    };
    let title = dict.get(b"Title").ok()?;
    let bytes = title.as_str().ok()?;
    // UTF-16BE with a byte-order mark, else PDFDocEncoding (Latin-1 in its printable range).
    let s = if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        let units: Vec<u16> = rest.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
        String::from_utf16_lossy(&units)
    } else {
        bytes.iter().map(|&b| b as char).collect()
    };
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

thread_local! {
    static EXTRACTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is extracting a PDF's text: a panic hook can stay quiet then, as the
/// panic is caught and reported as the file's error.
pub fn extracting() -> bool {
    EXTRACTING.with(std::cell::Cell::get)
}

/// Runs `f`, turning a panic into an error message (the extractor panics on some inputs).
fn catch<T>(f: impl FnOnce() -> std::result::Result<T, String>) -> std::result::Result<T, String> {
    EXTRACTING.with(|e| e.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    EXTRACTING.with(|e| e.set(false));
    match r {
        Ok(r) => r,
        Err(p) => Err(p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .map_or_else(
                || "the text extractor failed".to_string(),
                |m| format!("the text extractor failed: {m}"),
            )),
    }
}

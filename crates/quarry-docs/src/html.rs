//! HTML: the text of block elements (paragraphs, headings, list items, cells, quotes,
//! preformatted text), with entities decoded and whitespace collapsed (kept inside `<pre>`).
//! `<title>` gives the title; the rest of `<head>`, scripts, styles, templates, SVG and comments
//! are left out. A lenient scanner, not a validating parser: malformed markup degrades to text,
//! never to an error, and every block keeps the byte range of the source it came from.

use crate::document::{Block, BlockKind, Document, Format};

/// Elements whose start or end ends the running block.
const BLOCK: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "br",
    "caption",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "head",
    "header",
    "hr",
    "html",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "title",
    "tr",
    "ul",
];

/// Elements whose content is not text.
const RAW: &[&str] = &["script", "style", "template", "svg", "noscript", "math", "iframe", "object"];

/// The running block.
#[derive(Default)]
struct Open {
    text: String,
    start: Option<usize>,
    end: usize,
    /// Whether a space is owed before the next word.
    space: bool,
}

struct Reader<'a> {
    src: &'a str,
    blocks: Vec<Block>,
    headings: Vec<(usize, String)>,
    open: Open,
    /// The heading level of the open block (0: not a heading).
    level: usize,
    pre: usize,
    head: bool,
    title: Option<String>,
    in_title: bool,
}

impl Reader<'_> {
    /// Adds the source text `raw` (at byte `at`) to the running block.
    fn text(&mut self, raw: &str, at: usize) {
        if self.in_title {
            let t = decode(raw);
            self.title.get_or_insert_with(String::new).push_str(&t);
            return;
        }
        if self.head {
            return;
        }
        let decoded = decode(raw);
        if self.pre > 0 {
            if !decoded.is_empty() {
                self.open.start.get_or_insert(at);
                self.open.end = at + raw.len();
                self.open.text.push_str(&decoded);
            }
            return;
        }
        let lead = raw.len() - raw.trim_start().len();
        if raw.trim().is_empty() {
            self.open.space |= !raw.is_empty();
            return;
        }
        if lead > 0 {
            self.open.space = true;
        }
        for (i, word) in decoded.split_whitespace().enumerate() {
            if (i > 0 || self.open.space) && !self.open.text.is_empty() {
                self.open.text.push(' ');
            }
            self.open.text.push_str(word);
        }
        self.open.space = decoded.ends_with(char::is_whitespace);
        self.open.start.get_or_insert(at + lead);
        self.open.end = at + raw.trim_end().len();
    }

    /// Ends the running block.
    fn flush(&mut self) {
        let open = std::mem::take(&mut self.open);
        let kind = if self.level > 0 {
            BlockKind::Heading
        } else if self.pre > 0 {
            BlockKind::Code
        } else {
            BlockKind::Text
        };
        let text = if kind == BlockKind::Code { open.text.trim_end().to_string() } else { open.text };
        let Some(start) = open.start.filter(|_| !text.trim().is_empty()) else { return };
        if kind == BlockKind::Heading {
            while self.headings.last().is_some_and(|(l, _)| *l >= self.level) {
                self.headings.pop();
            }
            self.headings.push((self.level, text.clone()));
        }
        self.blocks.push(Block {
            kind,
            text,
            range: start..open.end.max(start),
            page: None,
            headings: self.headings.iter().map(|(_, h)| h.clone()).collect(),
            verbatim: false,
        });
    }

    fn tag(&mut self, name: &str, closing: bool, self_closing: bool) {
        match name {
            // `<title/>` and `<head/>` open nothing.
            "title" | "head" if self_closing => return,
            "title" => {
                self.in_title = !closing;
                return;
            }
            "head" => {
                self.flush();
                self.head = !closing;
                return;
            }
            _ => {}
        }
        if !BLOCK.contains(&name) {
            return;
        }
        // A block element ends an unclosed `<head>` (HTML5 leaves `</head>` and `<body>` out).
        if name != "html" {
            self.head = false;
        }
        self.flush();
        if let Some(l) =
            name.strip_prefix('h').and_then(|d| d.parse::<usize>().ok()).filter(|l| (1..=6).contains(l))
        {
            self.level = if closing { 0 } else { l };
        }
        if name == "pre" {
            self.pre = if closing { self.pre.saturating_sub(1) } else { self.pre + 1 };
        }
        if name == "body" && !closing {
            self.head = false;
        }
    }
}

/// Reads HTML.
pub(crate) fn read(src: &str) -> Document {
    let mut r = Reader {
        src,
        blocks: Vec::new(),
        headings: Vec::new(),
        open: Open::default(),
        level: 0,
        pre: 0,
        head: false,
        title: None,
        in_title: false,
    };
    let bytes = src.as_bytes();
    let mut i = 0;
    let mut text_from = 0;
    while i < bytes.len() {
        if bytes[i] != b'<' {
            i += 1;
            continue;
        }
        let rest = &src[i..];
        let markup_end = if rest.starts_with("<!--") {
            Some(rest.find("-->").map_or(src.len(), |e| i + e + 3))
        } else if rest.starts_with("<!") || rest.starts_with("<?") {
            Some(rest.find('>').map_or(src.len(), |e| i + e + 1))
        } else {
            let (closing, name_at) = if rest.starts_with("</") { (true, 2) } else { (false, 1) };
            let name: String = rest[name_at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect::<String>()
                .to_ascii_lowercase();
            if name.is_empty() || !rest[name_at..].starts_with(|c: char| c.is_ascii_alphabetic()) {
                None // a lone '<' is text
            } else {
                let end = tag_end(src, i + name_at + name.len());
                let (a, b) = (text_from, i);
                let text = &r.src[a..b];
                r.text(text, a);
                let self_closing = src[..end].ends_with("/>");
                r.tag(&name, closing, self_closing);
                let mut next = end;
                if !closing && !self_closing && RAW.contains(&name.as_str()) {
                    // Skip to the matching end tag (or the end of the document).
                    let close = format!("</{name}");
                    next = find_ci(src, end, &close).map_or(src.len(), |at| tag_end(src, at + close.len()));
                }
                i = next;
                text_from = next;
                continue;
            }
        };
        match markup_end {
            Some(end) => {
                let (a, b) = (text_from, i);
                let text = &r.src[a..b];
                r.text(text, a);
                i = end;
                text_from = end;
            }
            None => i += 1,
        }
    }
    let tail = &r.src[text_from..];
    r.text(tail, text_from);
    r.flush();
    let title = r.title.map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "));
    Document::new(Format::Html, title, r.blocks, None)
}

/// The byte after the `>` closing the tag whose attributes start at `from` (quotes respected).
fn tag_end(src: &str, from: usize) -> usize {
    let mut quote: Option<u8> = None;
    for (k, &c) in src.as_bytes().iter().enumerate().skip(from) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(c),
            (None, b'>') => return k + 1,
            _ => {}
        }
    }
    src.len()
}

/// The first case-insensitive occurrence of ASCII `needle` in `src` from byte `from`.
fn find_ci(src: &str, from: usize, needle: &str) -> Option<usize> {
    let (h, n) = (src.as_bytes(), needle.as_bytes());
    (from..h.len().saturating_sub(n.len() - 1)).find(|&k| h[k..k + n.len()].eq_ignore_ascii_case(n))
}

/// `s` with character references decoded (numeric ones, and the common named ones; others are
/// kept as written).
fn decode(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = rest.char_indices().take(12).find(|(_, c)| *c == ';').map(|(k, _)| k);
        let decoded = end.and_then(|e| {
            let name = &rest[1..e];
            let c = if let Some(num) = name.strip_prefix('#') {
                let v = match num.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => num.parse::<u32>().ok(),
                };
                v.and_then(char::from_u32)
            } else {
                named(name)
            };
            c.map(|c| (c, e + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn named(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "mdash" => '—',
        "ndash" => '–',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "laquo" => '«',
        "raquo" => '»',
        "middot" => '·',
        "bull" => '•',
        "deg" => '°',
        "euro" => '€',
        "pound" => '£',
        "sect" => '§',
        "para" => '¶',
        "times" => '×',
        "eacute" => 'é',
        "egrave" => 'è',
        "agrave" => 'à',
        "uuml" => 'ü',
        "ouml" => 'ö',
        "auml" => 'ä',
        "szlig" => 'ß',
        "ccedil" => 'ç',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_headings_title_and_offsets() {
        let src = "<!DOCTYPE html><html><head><title>The  Title</title><style>p{x:1}</style></head>\
                   <body><h1>Top</h1><p>One &amp; two<br>three</p><script>var a='<p>no</p>';</script>\
                   <h2>Sub</h2><ul><li>item <b>bold</b></li></ul><pre>  a\n  b</pre><!-- <p>gone</p> --></body></html>";
        let d = read(src);
        assert_eq!(d.title.as_deref(), Some("The Title"));
        let texts: Vec<&str> = d.blocks.iter().map(|b| b.text.as_str()).collect();
        assert_eq!(texts, ["Top", "One & two", "three", "Sub", "item bold", "  a\n  b"]);
        assert_eq!(d.blocks[4].headings, ["Top", "Sub"]);
        assert_eq!(d.blocks[5].kind, BlockKind::Code);
        for b in &d.blocks {
            let first = b.text.split_whitespace().next().unwrap_or_default();
            assert!(
                src[b.range.clone()].contains(first.trim_end_matches('&')),
                "{:?} in {:?}",
                b.text,
                &src[b.range.clone()]
            );
        }
        assert_eq!(&src[d.blocks[1].range.clone()], "One &amp; two");
    }

    #[test]
    fn an_unclosed_head_and_self_closing_title_keep_the_body() {
        let d = read("<html><head><title>T</title><p>Hello there</p>");
        assert_eq!((d.title.as_deref(), d.blocks.len()), (Some("T"), 1));
        let d = read("<html><head><title/></head><body><p>Body text</p></body></html>");
        assert_eq!(d.blocks.iter().map(|b| b.text.as_str()).collect::<Vec<_>>(), ["Body text"]);
    }

    #[test]
    fn malformed_markup_is_text() {
        let d = read("a < b and <unclosed attr=\"x>y\" text <p>end");
        let all: Vec<&str> = d.blocks.iter().map(|b| b.text.as_str()).collect();
        // The unclosed tag runs to the next `>` (quotes respected), taking " text <p" with it.
        assert_eq!(all, ["a < b and end"]);
        assert_eq!(decode("&#x41;&#66;&bogus;&amp"), "AB&bogus;&amp");
    }
}

//! Document fixtures made by the tests themselves: valid PDFs of given pages of text (one
//! Helvetica text line per paragraph line, a Title in the information dictionary), and a
//! generator of a folder of mixed documents (Markdown, HTML, PDF, plain text) whose sentences
//! come from a fixed vocabulary, so nothing licensed needs shipping.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A PDF with `title` whose page `i` shows the lines of `pages[i]` (ASCII; parentheses and
/// backslashes are escaped), with a correct cross-reference table.
pub fn pdf(title: &str, pages: &[&str]) -> Vec<u8> {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('(', "\\(").replace(')', "\\)");
    let n = pages.len();
    // Objects: 1 catalog, 2 pages, 3 font, 4 info, then per page: page, contents.
    let mut objects: Vec<String> = Vec::new();
    objects.push("<< /Type /Catalog /Pages 2 0 R >>".into());
    let kids: Vec<String> = (0..n).map(|i| format!("{} 0 R", 5 + 2 * i)).collect();
    objects.push(format!("<< /Type /Pages /Kids [{}] /Count {n} >>", kids.join(" ")));
    objects.push("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".into());
    objects.push(format!("<< /Title ({}) /Producer (quarry-testkit) >>", esc(title)));
    for (i, text) in pages.iter().enumerate() {
        let mut stream = String::from("BT /F1 11 Tf 14 TL 56 760 Td\n");
        for line in text.lines() {
            let _ = writeln!(stream, "({}) Tj T*", esc(line));
        }
        stream.push_str("ET\n");
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            6 + 2 * i
        ));
        objects.push(format!("<< /Length {} >>\nstream\n{stream}endstream", stream.len()));
    }
    let mut out = String::from("%PDF-1.4\n");
    let mut offsets = Vec::new();
    for (k, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        let _ = write!(out, "{} 0 obj\n{body}\nendobj\n", k + 1);
    }
    let xref = out.len();
    let _ = write!(out, "xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for o in offsets {
        let _ = writeln!(out, "{o:010} 00000 n ");
    }
    let _ = write!(
        out,
        "trailer\n<< /Size {} /Root 1 0 R /Info 4 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    );
    out.into_bytes()
}

const WORDS: &[&str] = &[
    "river", "granite", "quarry", "lantern", "harbor", "meadow", "copper", "violin", "orchard", "glacier",
    "compass", "thunder", "saffron", "beacon", "willow", "canyon", "ember", "falcon", "marble", "nectar",
    "prairie", "quartz", "summit", "tundra", "velvet", "walnut", "zephyr", "anchor", "bramble", "cedar",
];

/// A sentence of 8–15 words from a fixed vocabulary, chosen by `seed`.
pub fn sentence(seed: u64) -> String {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let n = 8 + (next() % 8) as usize;
    let words: Vec<&str> = (0..n).map(|_| WORDS[(next() % WORDS.len() as u64) as usize]).collect();
    let mut out = words.join(" ");
    if let Some(first) = out.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    out.push('.');
    out
}

/// Writes `n` documents into folder `dir` (created), cycling Markdown, HTML, PDF and plain text,
/// in nested folders; document `i` names its topic `topic-<i>` in its heading or title and first
/// sentence, so a search can find it. Returns the paths written.
pub fn mixed_folder(dir: &Path, n: usize) -> std::io::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for i in 0..n {
        let sub = dir.join(format!("part{}", i % 4));
        std::fs::create_dir_all(&sub)?;
        let para =
            |k: u64| (0..3).map(|j| sentence(i as u64 * 100 + k * 10 + j)).collect::<Vec<_>>().join(" ");
        let lead = format!("Document topic-{i} is about {}.", WORDS[i % WORDS.len()]);
        let (name, bytes) = match i % 4 {
            0 => (
                format!("doc{i}.md"),
                format!("# Topic {i}\n\n{lead} {}\n\n## Details\n\n{}\n\n- {}\n- {}\n", para(1), para(2), sentence(i as u64 * 7), sentence(i as u64 * 11)).into_bytes(),
            ),
            1 => (
                format!("doc{i}.html"),
                format!(
                    "<!DOCTYPE html><html><head><title>Topic {i}</title><style>p {{ color: red }}</style></head>\
                     <body><h1>Topic {i}</h1><p>{lead} {}</p><h2>Details</h2><p>{} &amp; more.</p></body></html>",
                    para(1),
                    para(2)
                )
                .into_bytes(),
            ),
            2 => {
                let page1 = format!("{lead}\n{}\n\n{}", para(1), para(2));
                let page2 = para(3);
                (format!("doc{i}.pdf"), pdf(&format!("Topic {i}"), &[page1.as_str(), page2.as_str()]))
            }
            _ => (format!("doc{i}.txt"), format!("Topic {i}\n\n{lead} {}\n\n{}\n", para(1), para(2)).into_bytes()),
        };
        let path = sub.join(name);
        std::fs::write(&path, bytes)?;
        paths.push(path);
    }
    Ok(paths)
}

//! Reading real files of every format: titles, blocks, offsets back into the source, pages of a
//! PDF made here, and clear errors for damaged files.

use quarry_docs::{chunk, read, read_bytes, ChunkSpec, Format};

#[test]
fn a_pdf_reads_by_page_with_its_title() {
    let bytes = quarry_testkit::docs::pdf(
        "Granite (and) Quarries",
        &["First page line one.\nFirst page line two.", "Second page text about marble."],
    );
    let d = read_bytes(&bytes, Format::Pdf).expect("pdf");
    assert_eq!(d.title.as_deref(), Some("Granite (and) Quarries"));
    assert_eq!(d.pages, Some(2));
    let all: String = d.blocks.iter().map(|b| format!("{}|{:?} ", b.text, b.page)).collect();
    assert!(all.contains("First page line one") && all.contains("Some(1)"), "{all}");
    assert!(all.contains("Second page text about marble") && all.contains("Some(2)"), "{all}");
}

#[test]
fn damaged_pdfs_are_errors_not_panics() {
    let good = quarry_testkit::docs::pdf("t", &["text"]);
    for (what, bytes) in [
        ("truncated", good[..good.len() / 2].to_vec()),
        ("garbage", b"%PDF-1.4\n\x00\x01\x02 this is not a pdf".to_vec()),
        ("no header", b"hello".to_vec()),
        ("empty", Vec::new()),
    ] {
        let e = read_bytes(&bytes, Format::Pdf).expect_err(what);
        assert!(e.to_string().contains("PDF"), "{what}: {e}");
    }
}

#[test]
fn text_markdown_and_html_offsets_point_into_the_file() {
    let dir = std::env::temp_dir().join(format!("quarry-docs-read-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let paths = quarry_testkit::docs::mixed_folder(&dir, 8).expect("fixture");
    for p in &paths {
        let d = read(p).expect("read");
        let src = std::fs::read(p).expect("bytes");
        assert!(d.title.as_deref().is_some_and(|t| t.contains("Topic")), "{}: {:?}", p.display(), d.title);
        let chunks = chunk(&d, &ChunkSpec { max_tokens: 40, overlap: 8 }, &quarry_docs::chunk::Words);
        assert!(!chunks.is_empty());
        for b in &d.blocks {
            if d.format == Format::Pdf {
                continue;
            }
            let s = std::str::from_utf8(&src[b.range.clone()]).expect("utf-8 range");
            if b.verbatim {
                assert_eq!(s, b.text, "{}", p.display());
            } else {
                let first = b.text.split_whitespace().next().expect("word");
                assert!(s.starts_with(first), "{}: {s:?} vs {:?}", p.display(), b.text);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_and_non_utf8_files_are_named_errors() {
    let dir = std::env::temp_dir().join(format!("quarry-docs-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let bin = dir.join("x.png");
    std::fs::write(&bin, [0x89, b'P', b'N', b'G']).expect("write");
    assert!(read(&bin).expect_err("png").to_string().contains("x.png"));
    let latin = dir.join("y.txt");
    std::fs::write(&latin, [b'c', b'a', 0xE9]).expect("write");
    let e = read(&latin).expect_err("latin-1").to_string();
    assert!(e.contains("y.txt") && e.contains("UTF-8"), "{e}");
    let bom = dir.join("z.md");
    std::fs::write(&bom, b"\xEF\xBB\xBF# Title\n\nBody.\n").expect("write");
    let d = read(&bom).expect("bom");
    assert_eq!(d.title.as_deref(), Some("Title"));
    assert_eq!(&std::fs::read(&bom).expect("read")[d.blocks[1].range.clone()], b"Body.");
    let _ = std::fs::remove_dir_all(&dir);
}

//! Markdown (CommonMark with tables, footnotes, strikethrough and task lists): one block per
//! top-level element — paragraph, heading, code block, table, quote — and per item of a
//! top-level list, each the source text verbatim. YAML front matter gives the title
//! (`title:`) and is not a block; raw HTML blocks and rules are left out.

use crate::document::{Block, BlockKind, Document, Format};
use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

/// Reads Markdown.
pub(crate) fn read(text: &str) -> Document {
    let opts = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS;
    let mut blocks = Vec::new();
    let mut headings: Vec<(usize, String)> = Vec::new();
    let mut title = None;
    let mut depth = 0usize;
    let mut in_list = false;
    // The open block: (kind, start byte, heading level, skipped).
    let mut open: Option<(BlockKind, usize, usize, bool)> = None;
    let mut heading_text = String::new();
    let mut metadata = false;
    for (event, range) in Parser::new_ext(text, opts).into_offset_iter() {
        match event {
            Event::Start(tag) => {
                let starts = depth == 0 && !matches!(tag, Tag::List(_))
                    || depth == 1 && in_list && matches!(tag, Tag::Item);
                if depth == 0 {
                    in_list = matches!(tag, Tag::List(_));
                }
                if starts {
                    let (kind, level, skip) = match &tag {
                        Tag::Heading { level, .. } => (BlockKind::Heading, heading_level(*level), false),
                        Tag::CodeBlock(_) => (BlockKind::Code, 0, false),
                        Tag::HtmlBlock => (BlockKind::Text, 0, true),
                        Tag::MetadataBlock(_) => {
                            metadata = true;
                            (BlockKind::Text, 0, true)
                        }
                        _ => (BlockKind::Text, 0, false),
                    };
                    open = Some((kind, range.start, level, skip));
                    heading_text.clear();
                }
                depth += 1;
            }
            Event::End(tag) => {
                depth = depth.saturating_sub(1);
                if matches!(tag, TagEnd::MetadataBlock(_)) {
                    metadata = false;
                }
                let ends = depth == 0 && !matches!(tag, TagEnd::List(_))
                    || depth == 1 && in_list && matches!(tag, TagEnd::Item);
                if !ends {
                    continue;
                }
                let Some((kind, start, level, skip)) = open.take() else { continue };
                let end = range.end.max(start);
                let raw = text.get(start..end).unwrap_or_default();
                let trimmed_end = start + raw.trim_end().len();
                if skip || trimmed_end <= start {
                    continue;
                }
                if kind == BlockKind::Heading {
                    while headings.last().is_some_and(|(l, _)| *l >= level) {
                        headings.pop();
                    }
                    headings.push((level, heading_text.trim().to_string()));
                }
                blocks.push(Block {
                    kind,
                    text: text[start..trimmed_end].to_string(),
                    range: start..trimmed_end,
                    page: None,
                    headings: headings.iter().map(|(_, h)| h.clone()).collect(),
                    verbatim: true,
                });
            }
            Event::Text(t) | Event::Code(t) => {
                if metadata {
                    for line in t.lines() {
                        if let Some(v) = line.strip_prefix("title:") {
                            title = Some(v.trim().trim_matches(|c| c == '"' || c == '\'').to_string());
                        }
                    }
                } else if open.as_ref().is_some_and(|o| o.0 == BlockKind::Heading) {
                    heading_text.push_str(&t);
                }
            }
            Event::Rule if depth == 0 => {}
            _ => {}
        }
    }
    Document::new(Format::Markdown, title, blocks, None)
}

fn heading_level(level: HeadingLevel) -> usize {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

//! Text analysis for BM25, modelled on Lucene's English analyzer and built from tantivy's tokenizer
//! pipeline: split into words (tantivy's `SimpleTokenizer`, or a regular expression), drop
//! over-long tokens, lowercase, optionally fold accents, drop stop words, stem. The same
//! [`Analyzer`] must run on documents and queries; its [`AnalyzerConfig`] is stored in the
//! collection schema.

use quarry_core::{Error, Result};
use serde::{Deserialize, Serialize};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RegexTokenizer, RemoveLongFilter, SimpleTokenizer, Stemmer,
    StopWordFilter, TextAnalyzer, TokenStream,
};

/// Stop words to drop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StopWords {
    /// A language's list by name (`"english"`: Lucene's 33 words; Snowball lists for `"french"`,
    /// `"german"`, …) or `"none"`.
    Named(String),
    /// An explicit list (matched after lowercasing, before stemming).
    List(Vec<String>),
}

/// How text becomes terms. The defaults are Lucene's English analyzer minus possessive rules:
/// words split on non-alphanumeric characters, lowercased, the 33 English stop words removed,
/// Snowball (Porter 2) English stemming.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalyzerConfig {
    /// A regular expression whose matches are the tokens (e.g. `(?u)\w\w+`, bm25s' and
    /// scikit-learn's pattern, which skips one-letter words); none: split on every character
    /// that is not a letter or digit.
    pub token_pattern: Option<String>,
    /// Lowercase tokens.
    pub lowercase: bool,
    /// Fold accented Latin letters to ASCII (`café` → `cafe`).
    pub ascii_folding: bool,
    /// Stop words removed.
    pub stopwords: StopWords,
    /// Stemming language (`"english"`, `"french"`, …) or none.
    pub stemmer: Option<String>,
    /// Tokens longer than this many bytes are dropped.
    pub max_token_len: usize,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        AnalyzerConfig {
            token_pattern: None,
            lowercase: true,
            ascii_folding: false,
            stopwords: StopWords::Named("english".into()),
            stemmer: Some("english".into()),
            max_token_len: 40,
        }
    }
}

fn language(name: &str) -> Result<Language> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "arabic" => Language::Arabic,
        "danish" => Language::Danish,
        "dutch" => Language::Dutch,
        "english" => Language::English,
        "finnish" => Language::Finnish,
        "french" => Language::French,
        "german" => Language::German,
        "greek" => Language::Greek,
        "hungarian" => Language::Hungarian,
        "italian" => Language::Italian,
        "norwegian" => Language::Norwegian,
        "portuguese" => Language::Portuguese,
        "romanian" => Language::Romanian,
        "russian" => Language::Russian,
        "spanish" => Language::Spanish,
        "swedish" => Language::Swedish,
        "tamil" => Language::Tamil,
        "turkish" => Language::Turkish,
        other => return Err(Error::InvalidArgument(format!("unknown analyzer language {other:?}"))),
    })
}

/// A configured analyzer (cheap to clone; one clone per thread analyses in parallel).
#[derive(Clone)]
pub struct Analyzer {
    inner: TextAnalyzer,
    config: AnalyzerConfig,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer").field("config", &self.config).finish()
    }
}

impl Analyzer {
    /// Builds the analyzer `config` describes; errors on a bad pattern or an unknown language.
    pub fn new(config: &AnalyzerConfig) -> Result<Analyzer> {
        let mut b = match &config.token_pattern {
            None => TextAnalyzer::builder(SimpleTokenizer::default()).dynamic(),
            Some(p) => {
                let tok = RegexTokenizer::new(p)
                    .map_err(|e| Error::InvalidArgument(format!("token pattern {p:?}: {e}")))?;
                TextAnalyzer::builder(tok).dynamic()
            }
        };
        b = b.filter_dynamic(RemoveLongFilter::limit(config.max_token_len.max(1)));
        if config.lowercase {
            b = b.filter_dynamic(LowerCaser);
        }
        if config.ascii_folding {
            b = b.filter_dynamic(AsciiFoldingFilter);
        }
        match &config.stopwords {
            StopWords::Named(n) if n.eq_ignore_ascii_case("none") => {}
            StopWords::Named(n) => {
                let f = StopWordFilter::new(language(n)?)
                    .ok_or_else(|| Error::InvalidArgument(format!("no stop word list for {n:?}")))?;
                b = b.filter_dynamic(f);
            }
            StopWords::List(words) => {
                b = b.filter_dynamic(StopWordFilter::remove(words.iter().map(|w| w.to_lowercase())));
            }
        }
        if let Some(lang) = &config.stemmer {
            b = b.filter_dynamic(Stemmer::new(language(lang)?));
        }
        Ok(Analyzer { inner: b.build(), config: config.clone() })
    }

    /// The configuration this analyzer was built from.
    pub fn config(&self) -> &AnalyzerConfig {
        &self.config
    }

    /// The terms of `text`, in order (repeats kept).
    pub fn terms(&self, text: &str) -> Vec<String> {
        let mut a = self.inner.clone();
        let mut stream = a.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_default_lowercases_drops_stop_words_and_stems() {
        let a = Analyzer::new(&AnalyzerConfig::default()).expect("analyzer");
        assert_eq!(a.terms("The Running dogs, and 3 cats!"), ["run", "dog", "3", "cat"]);
        // Queries and documents share the analyzer: the stem matches across word forms.
        assert_eq!(a.terms("runs"), ["run"]);
    }

    #[test]
    fn options_change_the_terms() {
        let cfg = AnalyzerConfig {
            token_pattern: Some(r"(?u)\w\w+".into()),
            stopwords: StopWords::List(vec!["Dogs".into()]),
            stemmer: None,
            ascii_folding: true,
            ..AnalyzerConfig::default()
        };
        let a = Analyzer::new(&cfg).expect("analyzer");
        assert_eq!(a.terms("a café dogs x1 b"), ["cafe", "x1"]);
        let none = AnalyzerConfig { stopwords: StopWords::Named("none".into()), ..AnalyzerConfig::default() };
        assert_eq!(Analyzer::new(&none).expect("analyzer").terms("the end"), ["the", "end"]);
    }

    #[test]
    fn bad_configs_are_errors() {
        let bad = AnalyzerConfig { token_pattern: Some("(".into()), ..AnalyzerConfig::default() };
        assert!(Analyzer::new(&bad).is_err());
        let bad = AnalyzerConfig { stemmer: Some("klingon".into()), ..AnalyzerConfig::default() };
        assert!(Analyzer::new(&bad).expect_err("unknown language").to_string().contains("klingon"));
    }
}

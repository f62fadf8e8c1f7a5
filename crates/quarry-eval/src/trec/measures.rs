//! The trec_eval measures Quarry computes, named as trec_eval prints them (`P_10`, `ndcg_cut_10`, …).

use std::fmt;
use std::str::FromStr;

use quarry_core::{Error, Result};

/// Constructor of a measure family that takes a cutoff.
type CutoffMeasure = fn(usize) -> Measure;

/// One trec_eval measure; cutoffs are positive document counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Measure {
    /// `P_k`: relevant documents in the top k, divided by k (even when fewer were retrieved).
    P(usize),
    /// `recall_k`: relevant documents in the top k, divided by R (0 when R = 0).
    Recall(usize),
    /// `map`: average precision over the whole ranking, divided by R.
    Map,
    /// `map_cut_k`: average precision counting relevant documents up to rank k, divided by R.
    MapCut(usize),
    /// `recip_rank`: 1 / rank of the first relevant document (no cutoff), 0 if none.
    RecipRank,
    /// `ndcg`: nDCG over the whole ranking, gains = grades, discount log2(rank + 1).
    Ndcg,
    /// `ndcg_cut_k`: nDCG of the top k, with the ideal ranking also truncated at k.
    NdcgCut(usize),
    /// `Rprec`: precision after R documents.
    Rprec,
    /// `num_ret`: documents retrieved (after `-M`); summed, not averaged, over queries.
    NumRet,
    /// `num_rel`: relevant documents in the qrels; summed over queries.
    NumRel,
    /// `num_rel_ret`: relevant documents retrieved; summed over queries.
    NumRelRet,
}

/// The measures reported by default: `ndcg_cut_10, recall_100, map, recip_rank, P_10`.
pub fn default_measures() -> Vec<Measure> {
    vec![Measure::NdcgCut(10), Measure::Recall(100), Measure::Map, Measure::RecipRank, Measure::P(10)]
}

impl Measure {
    /// Parses a trec_eval output name (`P_10`, `recall_100`, `map`, `recip_rank`, `ndcg_cut_10`,
    /// `map_cut_10`, `ndcg`, `Rprec`, `num_ret`, `num_rel`, `num_rel_ret`); a cutoff may also be
    /// written trec_eval-command-line style (`P.10`).
    pub fn parse(s: &str) -> Result<Measure> {
        let s = s.trim();
        let simple = match s {
            "map" => Some(Measure::Map),
            "recip_rank" => Some(Measure::RecipRank),
            "ndcg" => Some(Measure::Ndcg),
            "Rprec" => Some(Measure::Rprec),
            "num_ret" => Some(Measure::NumRet),
            "num_rel" => Some(Measure::NumRel),
            "num_rel_ret" => Some(Measure::NumRelRet),
            _ => None,
        };
        if let Some(m) = simple {
            return Ok(m);
        }
        let families: [(&str, CutoffMeasure); 4] = [
            ("P", Measure::P),
            ("recall", Measure::Recall),
            ("map_cut", Measure::MapCut),
            ("ndcg_cut", Measure::NdcgCut),
        ];
        for (family, make) in families {
            let Some(rest) = s.strip_prefix(family) else { continue };
            let Some(k) = rest.strip_prefix('_').or_else(|| rest.strip_prefix('.')) else { continue };
            let digits = !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit());
            return match k.parse::<usize>() {
                Ok(k) if digits && k > 0 => Ok(make(k)),
                _ => Err(Error::InvalidArgument(format!(
                    "measure {s:?}: the cutoff after {family}_ must be a positive integer"
                ))),
            };
        }
        Err(Error::InvalidArgument(format!(
            "unknown measure {s:?} (known: P_k, recall_k, map, map_cut_k, recip_rank, ndcg, ndcg_cut_k, \
             Rprec, num_ret, num_rel, num_rel_ret)"
        )))
    }

    /// Parses a list separated by commas or whitespace. A bare number repeats the previous
    /// measure's family with another cutoff, so `P.5,10` (trec_eval style) means `P_5, P_10`.
    pub fn parse_list(list: &str) -> Result<Vec<Measure>> {
        let mut out: Vec<Measure> = Vec::new();
        for token in list.split(|c: char| c == ',' || c.is_whitespace()).filter(|t| !t.is_empty()) {
            let m = if token.bytes().all(|b| b.is_ascii_digit()) {
                match out.last().and_then(|m| m.family()) {
                    Some(family) => Measure::parse(&format!("{family}_{token}"))?,
                    None => {
                        return Err(Error::InvalidArgument(format!(
                            "cutoff {token:?} does not follow a measure that takes one"
                        )))
                    }
                }
            } else {
                Measure::parse(token)?
            };
            if !out.contains(&m) {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// The name trec_eval prints, e.g. `ndcg_cut_10`.
    pub fn name(&self) -> String {
        match (self.family(), self.cutoff()) {
            (Some(family), Some(k)) => format!("{family}_{k}"),
            _ => match self {
                Measure::Map => "map",
                Measure::RecipRank => "recip_rank",
                Measure::Ndcg => "ndcg",
                Measure::Rprec => "Rprec",
                Measure::NumRet => "num_ret",
                Measure::NumRel => "num_rel",
                _ => "num_rel_ret",
            }
            .to_string(),
        }
    }

    /// The cutoff k of a `*_k` measure.
    pub fn cutoff(&self) -> Option<usize> {
        match *self {
            Measure::P(k) | Measure::Recall(k) | Measure::MapCut(k) | Measure::NdcgCut(k) => Some(k),
            _ => None,
        }
    }

    /// Whether the measure is a document count: printed as an integer and summed (not averaged)
    /// over queries, as trec_eval does.
    pub fn is_count(&self) -> bool {
        matches!(self, Measure::NumRet | Measure::NumRel | Measure::NumRelRet)
    }

    fn family(&self) -> Option<&'static str> {
        match self {
            Measure::P(_) => Some("P"),
            Measure::Recall(_) => Some("recall"),
            Measure::MapCut(_) => Some("map_cut"),
            Measure::NdcgCut(_) => Some("ndcg_cut"),
            _ => None,
        }
    }
}

impl fmt::Display for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Measure {
    type Err = Error;
    fn from_str(s: &str) -> Result<Measure> {
        Measure::parse(s)
    }
}

//! A text collection's quality settings (`quality.qq`, spec in docs/FORMAT.md): relevance
//! calibrations per ranking mode with the null sample they standardise against, hubness
//! re-scoring with its query and gallery banks, orthogonal maps that let queries embedded by
//! another (upgraded) model search the collection's vectors, and the fitted hybrid fusion. Fitted
//! by `quarry calibrate`, `quarry hubness`, `quarry align`, `quarry tune-fusion` (the engine's
//! `TextCollection::fit_*`) or [`crate::TextCollection::set_quality`]; stored crash-safely,
//! checked when read, and used by text queries that ask for a relevance cut-off
//! (`min_relevance`), hubness correction or a new model's query (`vectors` through a map), and
//! by hybrid queries naming no fusion.

use quarry_core::{Error, Result};
use quarry_linalg::procrustes::Alignment;
use quarry_rank::calibrate::Calibration;
use quarry_rank::hubness::HubnessMethod;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// File name of the quality settings in a collection folder.
pub const QUALITY_FILE: &str = "quality.qq";
const MAGIC: [u8; 8] = *b"QRYQUAL\0";
const VERSION: u32 = 1;

/// A dense row-major matrix of f32.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Matrix {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// `rows × cols` values.
    pub data: Vec<f32>,
}

impl Matrix {
    /// From rows of equal length (an error otherwise, or when empty or non-finite).
    pub fn from_rows(rows: &[Vec<f32>]) -> Result<Matrix> {
        let cols = rows.first().map_or(0, Vec::len);
        if cols == 0 || rows.iter().any(|r| r.len() != cols) {
            return Err(Error::InvalidArgument("a matrix needs rows of one non-zero length".into()));
        }
        if rows.iter().flatten().any(|v| !v.is_finite()) {
            return Err(Error::InvalidArgument("a matrix row has a non-finite value".into()));
        }
        Ok(Matrix { rows: rows.len(), cols, data: rows.concat() })
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// Inner products of `q` with every row (`q` must have `cols` values).
    pub fn dots(&self, q: &[f32]) -> Vec<f64> {
        (0..self.rows).map(|i| f64::from(quarry_linalg::kernels::dot(self.row(i), q))).collect()
    }
}

/// Hubness re-scoring settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HubnessSpec {
    /// QB-Norm or DBNorm, with temperatures.
    pub method: HubnessMethod,
    /// How much of the inverted-softmax penalty is applied, in (0, 1]: the score becomes
    /// `s + strength·(IS(s) − s)` (1: the full re-scoring).
    pub strength: f64,
    /// Dynamic variants: documents some bank query ranks first (their ids as JSON: numbers or
    /// UUID strings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub activation: Vec<serde_json::Value>,
}

/// A query model whose vectors are mapped into the collection's space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlignmentSpec {
    /// The query model's dimension.
    pub d_new: usize,
    /// The collection's dimension.
    pub d_old: usize,
    /// Whether both spaces were mean-centred (the map then carries both means).
    pub centred: bool,
    /// Prefix put before query texts when the query model embeds them.
    #[serde(default)]
    pub query_prefix: String,
    /// What the fit measured.
    #[serde(default)]
    pub report: serde_json::Value,
}

/// The JSON part of `quality.qq`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct QualitySpec {
    /// Calibrations by ranking mode (`dense`, `bm25`, `hybrid`).
    #[serde(default)]
    pub calibration: BTreeMap<String, Calibration>,
    /// Hubness re-scoring of dense candidates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hubness: Option<HubnessSpec>,
    /// The fusion of hybrid queries fitted on judged queries (queries that name none use it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fusion: Option<quarry_rank::fusion::Fusion>,
    /// Query models mapped into the collection's space (by the name queries give), with their
    /// maps in section 5.
    #[serde(default)]
    pub alignments: BTreeMap<String, AlignmentSpec>,
    /// The model the settings were fitted with (they are stale under another one).
    #[serde(default)]
    pub model: Option<String>,
    /// What each fit measured (free-form, shown by `quarry collection info`).
    #[serde(default)]
    pub reports: BTreeMap<String, serde_json::Value>,
    /// Shapes of the stored matrices, by name.
    #[serde(default)]
    matrices: BTreeMap<String, (usize, usize)>,
}

/// Everything in `quality.qq`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Quality {
    /// Settings.
    pub spec: QualitySpec,
    /// A fixed random sample of document vectors: the null distribution of dense scores.
    pub null_sample: Option<Matrix>,
    /// Query bank (hubness).
    pub query_bank: Option<Matrix>,
    /// Gallery bank (DBNorm).
    pub gallery_bank: Option<Matrix>,
    /// Maps from query models into the collection's space, by name (described in
    /// `spec.alignments`).
    pub alignments: BTreeMap<String, Alignment>,
}

const NAMES: [&str; 3] = ["null_sample", "query_bank", "gallery_bank"];

impl Quality {
    fn matrices(&self) -> [&Option<Matrix>; 3] {
        [&self.null_sample, &self.query_bank, &self.gallery_bank]
    }

    /// Checks the settings against the collection's vector dimension `dim`.
    pub fn check(&self, dim: usize) -> Result<()> {
        for c in self.spec.calibration.values() {
            c.check()?;
        }
        if let Some(h) = &self.spec.hubness {
            h.method.check()?;
            if !(h.strength > 0.0 && h.strength <= 1.0) {
                return Err(Error::InvalidArgument(format!(
                    "hubness strength {} is not in (0, 1]",
                    h.strength
                )));
            }
            if self.query_bank.is_none() {
                return Err(Error::InvalidArgument("hubness re-scoring needs a query bank".into()));
            }
            if h.method.beta_gallery().is_some() && self.gallery_bank.is_none() {
                return Err(Error::InvalidArgument("DBNorm needs a gallery bank".into()));
            }
        }
        if let Some(f) = &self.spec.fusion {
            let ok = match f {
                quarry_rank::fusion::Fusion::Weighted { weights, .. } => {
                    weights.len() == 2 && weights.iter().all(|w| w.is_finite() && *w >= 0.0)
                }
                quarry_rank::fusion::Fusion::Rrf { k } => k.is_finite() && *k >= 0.0,
                _ => true,
            };
            if !ok {
                return Err(Error::InvalidArgument(format!(
                    "the fitted fusion {f:?} is not valid for two lists"
                )));
            }
        }
        if self.spec.alignments.keys().ne(self.alignments.keys()) {
            return Err(Error::InvalidArgument("alignment settings and maps name different models".into()));
        }
        for (name, a) in &self.alignments {
            let spec = &self.spec.alignments[name];
            let means_ok = if spec.centred {
                a.mean_new.len() == a.d_new && a.mean_old.len() == a.d_old
            } else {
                a.mean_new.is_empty() && a.mean_old.is_empty()
            };
            if a.d_old != dim
                || spec.d_new != a.d_new
                || spec.d_old != a.d_old
                || a.w.len() != a.d_new * a.d_old
                || !means_ok
            {
                return Err(Error::InvalidArgument(format!(
                    "alignment of {name:?}: a {}×{} map does not fit a {dim}-d collection or its settings",
                    a.d_new, a.d_old
                )));
            }
        }
        for (name, m) in NAMES.iter().zip(self.matrices()) {
            if let Some(m) = m {
                if m.cols != dim || m.data.len() != m.rows * m.cols {
                    return Err(Error::InvalidArgument(format!(
                        "{name}: {}×{} matrix for a {dim}-d collection",
                        m.rows, m.cols
                    )));
                }
            }
        }
        Ok(())
    }

    /// Writes `dir/quality.qq` crash-safely.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let mut spec = self.spec.clone();
        spec.matrices.clear();
        let mut blobs: Vec<Vec<u8>> = Vec::new();
        for (name, m) in NAMES.iter().zip(self.matrices()) {
            let bytes = match m {
                Some(m) => {
                    spec.matrices.insert((*name).to_string(), (m.rows, m.cols));
                    m.data.iter().flat_map(|v| v.to_le_bytes()).collect()
                }
                None => Vec::new(),
            };
            blobs.push(bytes);
        }
        // Section 5: each map in name order: W (d_new × d_old), then, if centred, the two means and
        // the scale.
        let maps: Vec<u8> = self
            .alignments
            .values()
            .flat_map(|a| {
                let scale = if a.mean_new.is_empty() { None } else { Some(&a.scale) };
                a.w.iter().chain(&a.mean_new).chain(&a.mean_old).chain(scale)
            })
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let json = serde_json::to_vec(&spec).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let mut sections: Vec<&[u8]> = vec![&json];
        sections.extend(blobs.iter().map(Vec::as_slice));
        sections.push(&maps);
        quarry_store::framing::write_framed(
            &dir.join(QUALITY_FILE),
            MAGIC,
            VERSION,
            &[0u8; quarry_store::framing::FIELDS_LEN],
            &sections,
            0,
        )
    }

    /// Reads `dir/quality.qq` (none if absent), validating checksums and shapes.
    pub fn load(dir: &Path) -> Result<Option<Quality>> {
        let path = dir.join(QUALITY_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let mut f = quarry_store::framing::Framed::open(&path, MAGIC, VERSION, "quality")?;
        if f.sections.len() != 5 {
            return Err(Error::corrupt(
                &path,
                "header",
                format!("{} sections, expected 5", f.sections.len()),
            ));
        }
        let json = f.read(0, "settings")?;
        let spec: QualitySpec =
            serde_json::from_slice(&json).map_err(|e| Error::corrupt(&path, "settings", e.to_string()))?;
        let mut mats: Vec<Option<Matrix>> = Vec::new();
        for (i, name) in NAMES.iter().enumerate() {
            let bytes = f.read(i + 1, name)?;
            let m = match spec.matrices.get(*name) {
                Some(&(rows, cols)) => {
                    if rows.checked_mul(cols).and_then(|n| n.checked_mul(4)) != Some(bytes.len()) {
                        return Err(Error::corrupt(
                            &path,
                            *name,
                            format!("{} bytes for a {rows}×{cols} matrix", bytes.len()),
                        ));
                    }
                    let data: Vec<f32> =
                        bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                    if data.iter().any(|v| !v.is_finite()) {
                        return Err(Error::corrupt(&path, *name, "a non-finite value".to_string()));
                    }
                    Some(Matrix { rows, cols, data })
                }
                None if bytes.is_empty() => None,
                None => return Err(Error::corrupt(&path, *name, "data without a shape".to_string())),
            };
            mats.push(m);
        }
        let bytes = f.read(4, "alignments")?;
        let values: Vec<f32> =
            bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        if bytes.len() % 4 != 0 || values.iter().any(|v| !v.is_finite()) {
            return Err(Error::corrupt(&path, "alignments", "not a run of finite f32 values".to_string()));
        }
        let mut alignments = BTreeMap::new();
        let mut at = 0usize;
        for (name, a) in &spec.alignments {
            let (dn, dold) = (a.d_new, a.d_old);
            let means = if a.centred { dn + dold + 1 } else { 0 };
            let len = dn.checked_mul(dold).and_then(|n| n.checked_add(means));
            let Some(chunk) = len.and_then(|n| at.checked_add(n)).and_then(|end| values.get(at..end)) else {
                return Err(Error::corrupt(
                    &path,
                    "alignments",
                    format!("the map of {name:?} runs past the section"),
                ));
            };
            let (w, rest) = chunk.split_at(dn * dold);
            let (mean_new, mean_old, scale) = if a.centred {
                let (mn, r) = rest.split_at(dn);
                let (mo, sc) = r.split_at(dold);
                (mn, mo, sc[0])
            } else {
                (&[][..], &[][..], 1.0)
            };
            alignments.insert(
                name.clone(),
                Alignment {
                    d_new: dn,
                    d_old: dold,
                    w: w.to_vec(),
                    mean_new: mean_new.to_vec(),
                    mean_old: mean_old.to_vec(),
                    scale,
                },
            );
            at += chunk.len();
        }
        if at != values.len() {
            return Err(Error::corrupt(
                &path,
                "alignments",
                format!("{} values left over", values.len() - at),
            ));
        }
        let mut it = mats.into_iter();
        Ok(Some(Quality {
            spec,
            null_sample: it.next().flatten(),
            query_bank: it.next().flatten(),
            gallery_bank: it.next().flatten(),
            alignments,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_rank::calibrate::Calibration;

    fn golden() -> Quality {
        let mut q = Quality::default();
        q.spec.calibration.insert(
            "dense".into(),
            Calibration {
                features: vec![
                    quarry_rank::calibrate::Feature::Score,
                    quarry_rank::calibrate::Feature::NullZ,
                    quarry_rank::calibrate::Feature::Gap,
                ],
                weights: vec![5.5, 0.5, 18.0],
                bias: -6.0,
                threshold: 0.001,
            },
        );
        q.spec.hubness = Some(HubnessSpec {
            method: HubnessMethod::db_norm(),
            strength: 0.2,
            activation: vec![serde_json::json!(7), serde_json::json!("6f9619ff-8b86-d011-b42d-00cf4fc964ff")],
        });
        q.spec.model = Some("all-MiniLM-L6-v2".into());
        q.null_sample = Some(Matrix::from_rows(&[vec![1.0, 0.0, 0.0], vec![0.0, 0.6, 0.8]]).expect("m"));
        q.query_bank = Some(Matrix::from_rows(&[vec![0.0, 0.0, 1.0]]).expect("m"));
        q.gallery_bank = Some(Matrix::from_rows(&[vec![0.5, 0.5, 0.5], vec![-1.0, 0.0, 0.0]]).expect("m"));
        // A 2-d query model mapped (centred) into the 3-d space, and a plain 3-d one.
        q.spec.alignments.insert(
            "small".into(),
            AlignmentSpec {
                d_new: 2,
                d_old: 3,
                centred: true,
                query_prefix: "q: ".into(),
                report: serde_json::json!({"pairs": 1000}),
            },
        );
        q.alignments.insert(
            "small".into(),
            Alignment {
                d_new: 2,
                d_old: 3,
                w: vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
                mean_new: vec![0.1, 0.2],
                mean_old: vec![0.0, 0.5, -0.5],
                scale: 0.75,
            },
        );
        q.spec.alignments.insert(
            "same".into(),
            AlignmentSpec {
                d_new: 3,
                d_old: 3,
                centred: false,
                query_prefix: String::new(),
                report: serde_json::Value::Null,
            },
        );
        q.alignments.insert(
            "same".into(),
            Alignment {
                d_new: 3,
                d_old: 3,
                w: vec![0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0],
                mean_new: vec![],
                mean_old: vec![],
                scale: 1.0,
            },
        );
        q
    }

    /// The released version-1 file still reads (regenerate with QUARRY_WRITE_GOLDEN=1 only for a
    /// new version).
    #[test]
    fn reads_the_version_1_golden_file() {
        let dir = std::path::PathBuf::from(
            std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
        )
        .join("../../tests/compat/quality-v1");
        let want = golden();
        if std::env::var_os("QUARRY_WRITE_GOLDEN").is_some() {
            std::fs::create_dir_all(&dir).expect("dir");
            want.save(&dir).expect("save");
        }
        let got = Quality::load(&dir).expect("load").expect("present");
        got.check(3).expect("valid");
        assert_eq!(got.spec.calibration, want.spec.calibration);
        assert_eq!(got.spec.hubness, want.spec.hubness);
        assert_eq!(got.spec.model, want.spec.model);
        assert_eq!(
            (got.null_sample, got.query_bank, got.gallery_bank),
            (want.null_sample, want.query_bank, want.gallery_bank)
        );
    }

    #[test]
    fn round_trips_and_detects_damage() {
        let dir = std::env::temp_dir().join(format!("quarry-quality-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut q = Quality::default();
        q.spec.calibration.insert("dense".into(), Calibration::training_free(3.0));
        q.spec.hubness =
            Some(HubnessSpec { method: HubnessMethod::qb_norm(), strength: 0.2, activation: vec![] });
        q.null_sample = Some(Matrix::from_rows(&[vec![1.0, 0.0], vec![0.0, 1.0]]).expect("m"));
        q.query_bank = Some(Matrix::from_rows(&[vec![0.6, 0.8]]).expect("m"));
        q.check(2).expect("valid");
        assert!(q.check(3).is_err(), "dimension mismatch");
        q.save(&dir).expect("save");
        let back = Quality::load(&dir).expect("load").expect("present");
        assert_eq!(back.spec.calibration, q.spec.calibration);
        assert_eq!(back.null_sample, q.null_sample);
        assert_eq!(back.query_bank, q.query_bank);
        assert_eq!(back.gallery_bank, None);
        let path = dir.join(QUALITY_FILE);
        let mut bytes = std::fs::read(&path).expect("read");
        // A byte of the settings section (the first, right after the 256-byte header).
        bytes[260] ^= 0x40;
        std::fs::write(&path, &bytes).expect("write");
        let err = Quality::load(&dir).expect_err("damaged");
        assert!(err.to_string().contains("quality.qq"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
        assert!(Quality::load(&dir).expect("absent").is_none());
    }
}

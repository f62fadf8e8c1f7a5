//! `--index`, `--params k=v,...` and `--sweep name=v1,v2,...` of `quarry bench ann`: parsed and
//! checked against the chosen index kind before any data is loaded, with errors that list the
//! valid keys.

use anyhow::{bail, Context, Result};
use quarry_ann::{InsertionOrder, Storage};

/// Index kinds `quarry bench ann` can build.
pub const KINDS: &[&str] = &["flat", "hnsw"];

/// An index kind of `quarry bench ann`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Exact scan.
    Flat,
    /// HNSW graph.
    Hnsw,
}

impl Kind {
    /// Parses an `--index` value.
    pub fn parse(s: &str) -> Result<Kind> {
        match s {
            "flat" => Ok(Kind::Flat),
            "hnsw" => Ok(Kind::Hnsw),
            _ => bail!("unknown index {s:?}: available index kinds are {}", KINDS.join(", ")),
        }
    }

    /// The `--index` name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Flat => "flat",
            Kind::Hnsw => "hnsw",
        }
    }

    /// Keys `--params` accepts for this kind (canonical spelling).
    pub fn param_keys(self) -> &'static [&'static str] {
        match self {
            Kind::Flat => &["storage"],
            Kind::Hnsw => &["M", "efc", "seed", "storage", "insertion_order", "walk"],
        }
    }

    /// The search parameter `--sweep` may vary, if the kind has one.
    pub fn sweep_name(self) -> Option<&'static str> {
        match self {
            Kind::Flat => None,
            Kind::Hnsw => Some("ef"),
        }
    }
}

/// Build parameters of an HNSW index as given on the command line; `None` = the library default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HnswBuild {
    /// `M`: graph degree.
    pub m: Option<usize>,
    /// `efc`: candidate list size while building (ef_construction).
    pub efc: Option<usize>,
    /// `seed`: level-assignment seed.
    pub seed: Option<u64>,
    /// `storage`: element type of the stored vectors.
    pub storage: Option<Storage>,
    /// `insertion_order`: as_given, random, lid_asc or lid_desc.
    pub insertion_order: Option<InsertionOrder>,
    /// `walk`: `sq8` (the walk ranks by 8-bit codes, then re-scores exactly; the default) or `f32`
    /// (the walk reads the rows).
    pub walk_codes: Option<bool>,
}

impl HnswBuild {
    /// The library's parameters: given values, library defaults for the rest.
    pub fn resolve(&self) -> quarry_ann::HnswParams {
        let d = quarry_ann::HnswParams::default();
        quarry_ann::HnswParams {
            m: self.m.unwrap_or(d.m),
            ef_construction: self.efc.unwrap_or(d.ef_construction),
            seed: self.seed.unwrap_or(d.seed),
            storage: self.storage.unwrap_or(d.storage),
            insertion_order: self.insertion_order.unwrap_or(d.insertion_order),
            walk_codes: self.walk_codes.unwrap_or(d.walk_codes),
        }
    }
}

/// Parsed build parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Build {
    /// Flat: one row per storage type.
    Flat(Vec<Storage>),
    /// HNSW.
    Hnsw(HnswBuild),
}

/// Parses `--params` (and the older `--storage` of the flat index) for `kind`.
pub fn build(kind: Kind, params: Option<&str>, storage: Option<&[Storage]>) -> Result<Build> {
    let pairs = match params {
        Some(p) => pairs(p, kind)?,
        None => Vec::new(),
    };
    match kind {
        Kind::Flat => {
            let mut from_params = None;
            for (key, value) in &pairs {
                // Only "storage" survives `pairs` for the flat index.
                debug_assert_eq!(key, "storage");
                from_params = Some(storage_value(value)?);
            }
            match (from_params, storage) {
                (Some(_), Some(_)) => {
                    bail!(
                        "the flat index's storage is given twice: use either --storage or --params storage="
                    )
                }
                (Some(s), None) => Ok(Build::Flat(vec![s])),
                (None, Some(list)) if !list.is_empty() => Ok(Build::Flat(list.to_vec())),
                (None, _) => Ok(Build::Flat(vec![Storage::F32])),
            }
        }
        Kind::Hnsw => {
            if storage.is_some() {
                bail!(
                    "--storage applies to the flat index only; the hnsw index takes --params storage=f32|f16"
                );
            }
            let mut b = HnswBuild::default();
            for (key, value) in &pairs {
                match key.as_str() {
                    "M" => b.m = Some(positive(key, value)?),
                    "efc" => b.efc = Some(positive(key, value)?),
                    "seed" => {
                        b.seed = Some(value.parse().with_context(|| {
                            format!("--params seed={value}: expected a non-negative integer")
                        })?)
                    }
                    "storage" => b.storage = Some(storage_value(value)?),
                    "insertion_order" => {
                        b.insertion_order = Some(value.parse().with_context(|| {
                            format!("--params insertion_order={value}: expected as_given, random, lid_asc or lid_desc")
                        })?)
                    }
                    "walk" => {
                        b.walk_codes = Some(match value.as_str() {
                            "sq8" => true,
                            "f32" => false,
                            _ => bail!("--params walk={value}: expected sq8 (walk on 8-bit codes) or f32 (walk on the rows)"),
                        })
                    }
                    _ => unreachable!("pairs() admits only the hnsw keys"),
                }
            }
            Ok(Build::Hnsw(b))
        }
    }
}

/// Splits `k=v,k=v` into canonical (key, value) pairs valid for `kind`; rejects unknown and
/// repeated keys.
fn pairs(spec: &str, kind: Kind) -> Result<Vec<(String, String)>> {
    let valid = kind.param_keys();
    let mut out: Vec<(String, String)> = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((key, value)) = item.split_once('=') else {
            bail!(
                "--params expects key=value pairs separated by commas, got {item:?}; \
                 valid keys for the {} index: {}",
                kind.name(),
                valid.join(", ")
            );
        };
        let (key, value) = (key.trim(), value.trim());
        let canonical = match (kind, key) {
            (Kind::Hnsw, "m") => "M",
            (Kind::Hnsw, "ef_construction") => "efc",
            (Kind::Hnsw, "order") => "insertion_order",
            _ => key,
        };
        if !valid.contains(&canonical) {
            bail!(
                "unknown --params key {key:?} for the {} index: valid keys are {}",
                kind.name(),
                valid.join(", ")
            );
        }
        if value.is_empty() {
            bail!("--params {key}= has no value");
        }
        if out.iter().any(|(k, _)| k == canonical) {
            bail!("--params gives {canonical} more than once");
        }
        out.push((canonical.to_string(), value.to_string()));
    }
    Ok(out)
}

fn storage_value(value: &str) -> Result<Storage> {
    value.parse::<Storage>().with_context(|| format!("--params storage={value}: expected f32 or f16"))
}

fn positive(key: &str, value: &str) -> Result<usize> {
    match value.parse::<usize>() {
        Ok(v) if v > 0 => Ok(v),
        _ => bail!("--params {key}={value}: expected a positive integer"),
    }
}

/// Parses `--sweep name=v1,v2,...` for `kind`: the values of its search parameter, in order.
/// `None` when no sweep was given.
pub fn sweep(kind: Kind, spec: Option<&str>) -> Result<Option<Vec<usize>>> {
    let Some(spec) = spec else { return Ok(None) };
    let Some(name) = kind.sweep_name() else {
        bail!("the {} index has no search parameter to sweep (it is exact); drop --sweep", kind.name());
    };
    let Some((key, values)) = spec.split_once('=') else {
        bail!(
            "--sweep expects name=v1,v2,... (for the {} index: {name}=10,20,40), got {spec:?}",
            kind.name()
        );
    };
    let key = key.trim();
    if key != name {
        bail!(
            "unknown --sweep parameter {key:?} for the {} index: the only search parameter is {name}",
            kind.name()
        );
    }
    let parsed = values
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|v| match v.parse::<usize>() {
            Ok(x) if x > 0 => Ok(x),
            _ => bail!("--sweep {name}: {v:?} is not a positive integer"),
        })
        .collect::<Result<Vec<_>>>()?;
    if parsed.is_empty() {
        bail!("--sweep {name}= lists no values");
    }
    Ok(Some(parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err<T: std::fmt::Debug>(r: Result<T>) -> String {
        format!("{:#}", r.expect_err("should fail"))
    }

    #[test]
    fn hnsw_params_parse_with_aliases_and_defaults() {
        let b = build(Kind::Hnsw, Some("M=32, efc=100,seed=7"), None).expect("ok");
        let want = HnswBuild { m: Some(32), efc: Some(100), seed: Some(7), ..HnswBuild::default() };
        assert_eq!(b, Build::Hnsw(want));
        let b = build(Kind::Hnsw, Some("m=8,ef_construction=40,storage=f16"), None).expect("ok");
        let want =
            HnswBuild { m: Some(8), efc: Some(40), storage: Some(Storage::F16), ..HnswBuild::default() };
        assert_eq!(b, Build::Hnsw(want));
        for (value, order) in [
            ("as_given", InsertionOrder::AsGiven),
            ("random", InsertionOrder::Random),
            ("lid_asc", InsertionOrder::LidAscending),
            ("lid_desc", InsertionOrder::LidDescending),
        ] {
            let b = build(Kind::Hnsw, Some(&format!("insertion_order={value}")), None).expect("ok");
            assert_eq!(b, Build::Hnsw(HnswBuild { insertion_order: Some(order), ..HnswBuild::default() }));
        }
        let b = build(Kind::Hnsw, Some("order=lid_desc"), None).expect("ok");
        let want = HnswBuild { insertion_order: Some(InsertionOrder::LidDescending), ..HnswBuild::default() };
        assert_eq!(b, Build::Hnsw(want));
        assert_eq!(build(Kind::Hnsw, None, None).expect("ok"), Build::Hnsw(HnswBuild::default()));
    }

    #[test]
    fn bad_params_name_the_valid_keys() {
        let e = err(build(Kind::Hnsw, Some("M=16,foo=1"), None));
        assert!(e.contains("\"foo\"") && e.contains("M, efc, seed, storage, insertion_order"), "{e}");
        let e = err(build(Kind::Flat, Some("M=16"), None));
        assert!(e.contains("valid keys are storage"), "{e}");
        let e = err(build(Kind::Hnsw, Some("M"), None));
        assert!(e.contains("key=value") && e.contains("M, efc, seed, storage, insertion_order"), "{e}");
        assert!(err(build(Kind::Hnsw, Some("M=0"), None)).contains("positive integer"));
        assert!(err(build(Kind::Hnsw, Some("efc=x"), None)).contains("positive integer"));
        assert!(err(build(Kind::Hnsw, Some("M=4,m=8"), None)).contains("more than once"));
        assert!(err(build(Kind::Hnsw, Some("seed=-1"), None)).contains("seed=-1"));
        assert!(err(build(Kind::Flat, Some("storage=f8"), None)).contains("f32 or f16"));
        let e = err(build(Kind::Hnsw, Some("insertion_order=lid"), None));
        assert!(e.contains("insertion_order=lid") && e.contains("lid_asc or lid_desc"), "{e}");
        assert!(err(build(Kind::Hnsw, None, Some(&[Storage::F16]))).contains("flat index only"));
        assert!(err(build(Kind::Flat, Some("storage=f16"), Some(&[Storage::F32]))).contains("twice"));
    }

    #[test]
    fn flat_storage_from_either_flag() {
        assert_eq!(build(Kind::Flat, None, None).expect("ok"), Build::Flat(vec![Storage::F32]));
        assert_eq!(
            build(Kind::Flat, Some("storage=f16"), None).expect("ok"),
            Build::Flat(vec![Storage::F16])
        );
        let both = [Storage::F32, Storage::F16];
        assert_eq!(build(Kind::Flat, None, Some(&both)).expect("ok"), Build::Flat(both.to_vec()));
    }

    #[test]
    fn sweeps_parse_and_flat_has_none() {
        assert_eq!(sweep(Kind::Hnsw, Some("ef=10,20, 40")).expect("ok"), Some(vec![10, 20, 40]));
        assert_eq!(sweep(Kind::Hnsw, None).expect("ok"), None);
        assert!(err(sweep(Kind::Flat, Some("ef=10"))).contains("no search parameter"));
        assert!(err(sweep(Kind::Hnsw, Some("nprobe=1,2"))).contains("only search parameter is ef"));
        assert!(err(sweep(Kind::Hnsw, Some("10,20"))).contains("name=v1,v2"));
        assert!(err(sweep(Kind::Hnsw, Some("ef=10,x"))).contains("\"x\" is not a positive integer"));
        assert!(err(sweep(Kind::Hnsw, Some("ef="))).contains("no values"));
        assert!(err(sweep(Kind::Hnsw, Some("ef=0"))).contains("positive integer"));
        assert!(err(Kind::parse("ivf")).contains("available index kinds are flat, hnsw"));
    }
}

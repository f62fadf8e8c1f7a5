//! Tests of the posting file (round trip, page alignment, damage detection, malformed files) and
//! of the posting-list cache (budget, LRU order, counters, concurrent use).

use super::*;
use quarry_core::Matrix;
use quarry_testkit::gen;
use std::cell::Cell;
use std::sync::Arc;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("quarry-postings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

/// SplitMix64: a tiny seeded generator for list shapes.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `n_lists` lists of ids below `n` (repeats across lists, like replicas); lists 0, 3, 6, ... and
/// the last one are empty.
fn random_lists(n_lists: usize, max_len: usize, n: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = Mix(seed);
    (0..n_lists)
        .map(|j| {
            let len = if j % 3 == 0 || j + 1 == n_lists { 0 } else { 1 + rng.below(max_len) };
            (0..len).map(|_| rng.below(n) as u32).collect()
        })
        .collect()
}

fn write(path: &Path, base: &Matrix, metric: Metric, lists: &[Vec<u32>]) -> PostingStats {
    write_postings(path, base.dim(), metric, lists, &|id| base.row(id as usize).to_vec()).expect("write")
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn round_trip_returns_exactly_what_was_written() {
    let cases =
        [(1, 40, 1500, Metric::L2), (17, 25, 120, Metric::InnerProduct), (384, 10, 30, Metric::Cosine)];
    for (dim, n_lists, max_len, metric) in cases {
        let base = gen::gaussian(500, dim, dim as u64);
        let lists = random_lists(n_lists, max_len, base.rows(), 7 + dim as u64);
        let path = temp(&format!("round-trip-{dim}.qpost"));
        let stats = write(&path, &base, metric, &lists);
        let total: usize = lists.iter().map(Vec::len).sum();
        let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
        assert_eq!((stats.lists, stats.entries, stats.max_len), (n_lists, total as u64, longest));
        assert!((stats.mean_len - total as f64 / n_lists as f64).abs() < 1e-12);
        assert_eq!(stats.bytes, std::fs::metadata(&path).expect("stat").len());

        let file = PostingFile::open(&path).expect("open");
        assert_eq!((file.dim(), file.metric(), file.len()), (dim, metric, n_lists));
        assert_eq!((file.total_entries(), file.entry_bytes()), (total as u64, 4 + 4 * dim));
        let mut buf = AlignedVec::new();
        for (j, list) in lists.iter().enumerate() {
            assert_eq!(file.count(j), list.len());
            let offset = file.lists[j].offset;
            assert_eq!(offset % PAGE, 0, "list {j} at {offset}");
            if let Some(next) = file.lists.get(j + 1) {
                // Page-aligned and otherwise packed: the next list starts on the first free page.
                assert_eq!(next.offset, offset + file.pages(j) * PAGE, "list {j}");
            }
            file.read(j, &mut buf).expect("read");
            let got: Vec<(u32, Vec<u32>)> =
                file.entries(buf.as_slice()).map(|(id, v)| (id, bits(v))).collect();
            let want: Vec<(u32, Vec<u32>)> =
                list.iter().map(|&id| (id, bits(base.row(id as usize)))).collect();
            assert_eq!(got, want, "list {j}");
        }
        let read: u64 = lists.iter().map(|l| (l.len() * (4 + 4 * dim)) as u64).sum();
        assert_eq!(file.read_bytes_total(), read);
        for (j, list) in lists.iter().enumerate() {
            let decoded = file.load(j).expect("load");
            assert_eq!((decoded.len(), decoded.dim(), decoded.ids()), (list.len(), dim, &list[..]));
            for (i, &id) in list.iter().enumerate() {
                assert_eq!((decoded.id(i), bits(decoded.row(i))), (id, bits(base.row(id as usize))));
            }
            assert_eq!(decoded.vectors().as_ptr() as usize % 64, 0);
        }
        PostingFile::verify(&path).expect("intact");
    }
}

#[test]
fn no_lists_and_only_empty_lists_round_trip() {
    let base = gen::gaussian(4, 3, 1);
    for lists in [vec![], vec![vec![]; 5]] {
        let path = temp(&format!("empty-{}.qpost", lists.len()));
        let stats = write(&path, &base, Metric::L2, &lists);
        assert_eq!((stats.entries, stats.max_len, stats.bytes), (0, 0, PAGE + 16 * lists.len() as u64));
        let file = PostingFile::open(&path).expect("open");
        assert_eq!((file.len(), file.total_entries()), (lists.len(), 0));
        for j in 0..lists.len() {
            assert!(file.load(j).expect("load").is_empty());
        }
        PostingFile::verify(&path).expect("intact");
    }
}

#[test]
fn damage_is_caught_by_read_of_that_list_and_by_verify() {
    let base = gen::gaussian(300, 17, 3);
    let lists = random_lists(12, 100, base.rows(), 4);
    let path = temp("damage.qpost");
    write(&path, &base, Metric::L2, &lists);
    let pristine = std::fs::read(&path).expect("read");
    let file = PostingFile::open(&path).expect("open");
    let (k, l) = (7, file.lists[7]);
    assert!(l.count > 1);

    let mut bytes = pristine.clone();
    bytes[(l.offset + file.entry_bytes() as u64 + 5) as usize] ^= 0x20;
    std::fs::write(&path, &bytes).expect("write");
    let damaged = PostingFile::open(&path).expect("the table is intact");
    let mut buf = AlignedVec::new();
    let err = damaged.read(k, &mut buf).expect_err("flipped byte").to_string();
    assert!(err.contains(&format!("posting list {k}")) && err.contains("checksum"), "{err}");
    assert!(damaged.load(k).is_err());
    for j in (0..lists.len()).filter(|&j| j != k) {
        damaged.read(j, &mut buf).expect("other lists are intact");
    }
    assert!(PostingFile::verify(&path).is_err());

    // A flipped padding byte breaks no list, but verify's section checksum sees it.
    let mut bytes = pristine.clone();
    let pad = l.offset as usize + l.count as usize * file.entry_bytes();
    assert!(!pad.is_multiple_of(PAGE as usize));
    bytes[pad] ^= 1;
    std::fs::write(&path, &bytes).expect("write");
    let padded = PostingFile::open(&path).expect("open");
    (0..lists.len()).for_each(|j| padded.read(j, &mut buf).expect("lists intact"));
    assert!(PostingFile::verify(&path).expect_err("padding").to_string().contains("list data"));

    // A flipped table byte is refused at open.
    let mut bytes = pristine;
    let table_at = bytes.len() - 16 * lists.len();
    assert_eq!(table_at as u64, file.lists[11].offset, "the empty last list sits at the end of the data");
    bytes[table_at + 3] ^= 1;
    std::fs::write(&path, &bytes).expect("write");
    let err = PostingFile::open(&path).expect_err("table").to_string();
    assert!(err.contains("list table") && err.contains("checksum"), "{err}");
}

#[test]
fn truncated_and_garbage_files_are_refused() {
    let base = gen::gaussian(200, 9, 5);
    let path = temp("truncated.qpost");
    write(&path, &base, Metric::Cosine, &random_lists(9, 60, base.rows(), 6));
    let whole = std::fs::read(&path).expect("read");
    for len in [0, 10, 255, 256, 4095, 4096, 4096 + 100, whole.len() - 17, whole.len() - 1] {
        std::fs::write(&path, &whole[..len]).expect("write");
        assert!(PostingFile::open(&path).is_err(), "truncated to {len}");
        assert!(PostingFile::verify(&path).is_err(), "truncated to {len}");
    }
    let mut rng = Mix(99);
    for len in [1, 300, 5000, 20000] {
        let mut junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if len >= 12 {
            junk[..8].copy_from_slice(&MAGIC);
            junk[8..12].copy_from_slice(&VERSION.to_le_bytes());
        }
        std::fs::write(&path, &junk).expect("write");
        assert!(PostingFile::open(&path).is_err(), "{len} bytes of garbage");
    }
    let missing = temp("does-not-exist.qpost");
    assert!(PostingFile::open(&missing).is_err());
}

/// Writes a framed file with hand-made fields and table; the data section is `pages` zero pages.
fn craft(path: &Path, fields: [u8; FIELDS_LEN], pages: usize, rows: &[(u64, u32)], extra: bool) {
    let data = vec![0u8; pages * PAGE as usize];
    let crc_empty = checksum(&[]);
    let table: Vec<u8> = rows
        .iter()
        .flat_map(|&(offset, count)| {
            let crc = if count == 0 { crc_empty } else { 0 };
            [offset.to_le_bytes().to_vec(), count.to_le_bytes().to_vec(), crc.to_le_bytes().to_vec()].concat()
        })
        .collect();
    let sections: Vec<&[u8]> = if extra { vec![&data, &table, &[]] } else { vec![&data, &table] };
    write_framed(path, MAGIC, VERSION, &fields, &sections, PAGE).expect("craft");
}

fn fields(metric: u8, layout: u8, dim: u32, lists: u32, total: u64) -> [u8; FIELDS_LEN] {
    let mut f = [0u8; FIELDS_LEN];
    f[0] = metric;
    f[1] = layout;
    f[4..8].copy_from_slice(&dim.to_le_bytes());
    f[8..12].copy_from_slice(&lists.to_le_bytes());
    f[16..24].copy_from_slice(&total.to_le_bytes());
    f
}

/// Expected error text, header fields, table rows (offset, count), and a stray third section.
type Crafted = (&'static str, [u8; FIELDS_LEN], Vec<(u64, u32)>, bool);

#[test]
fn inconsistent_headers_and_tables_are_refused() {
    let path = temp("crafted.qpost");
    // dim 3: 16-byte entries, 256 per page.
    craft(&path, fields(2, 1, 3, 2, 300), 2, &[(PAGE, 256), (2 * PAGE, 44)], false);
    let ok = PostingFile::open(&path).expect("a consistent hand-made file opens");
    assert_eq!((ok.count(0), ok.count(1), ok.pages(0), ok.pages(1)), (256, 44, 1, 1));
    let cases: Vec<Crafted> = vec![
        ("metric code", fields(9, 1, 3, 1, 0), vec![(PAGE, 0)], false),
        ("layout code", fields(2, 7, 3, 1, 0), vec![(PAGE, 0)], false),
        ("dimension 0", fields(2, 1, 0, 1, 0), vec![(PAGE, 0)], false),
        ("3 sections", fields(2, 1, 3, 1, 0), vec![(PAGE, 0)], true),
        ("list table length", fields(2, 1, 3, 2, 0), vec![(PAGE, 0)], false),
        ("not a multiple of 4096", fields(2, 1, 3, 1, 1), vec![(PAGE + 64, 1)], false),
        ("posting list 1", fields(2, 1, 3, 2, 600), vec![(PAGE, 300), (2 * PAGE, 300)], false),
        ("overlap", fields(2, 1, 3, 2, 20), vec![(2 * PAGE, 10), (PAGE, 10)], false),
        ("outside", fields(2, 1, 3, 1, 1), vec![(u64::MAX - PAGE + 1, 1)], false),
        ("entries in the header", fields(2, 1, 3, 2, 7), vec![(PAGE, 3), (2 * PAGE, 3)], false),
    ];
    for (want, f, rows, extra) in cases {
        craft(&path, f, 2, &rows, extra);
        let err = PostingFile::open(&path).expect_err(want).to_string();
        assert!(err.contains(want), "expected {want:?} in {err}");
    }
}

#[test]
fn invalid_arguments_are_errors() {
    let path = temp("invalid.qpost");
    let row = |_: u32| vec![0.5f32; 4];
    assert!(matches!(write_postings(&path, 0, Metric::L2, &[vec![1]], &row), Err(Error::InvalidArgument(_))));
    let err = write_postings(&path, 5, Metric::L2, &[vec![], vec![3]], &row).expect_err("short row");
    assert!(err.to_string().contains("row 3 of posting list 1"), "{err}");
    assert!(!path.exists(), "a failed write leaves no file");
    write_postings(&path, 4, Metric::L2, &[vec![1, 2]], &row).expect("write");
    let file = PostingFile::open(&path).expect("open");
    assert!(file.read(1, &mut AlignedVec::new()).is_err());
    assert!(file.load(usize::MAX).is_err());
    assert_eq!(file.count(5), 0);
}

/// A list of `count` entries of dimension 16 whose ids start at `first`.
fn list(first: u32, count: usize) -> Arc<PostingList> {
    let row = [first as f32; 16];
    Arc::new(PostingList::from_entries(16, count, (0..count as u32).map(|i| (first + i, &row[..]))))
}

#[test]
fn cache_keeps_its_budget_and_evicts_the_least_recently_used() {
    let size = list(0, 10).bytes();
    let cache = PostingCache::new(3 * size + size / 2);
    let loads = Cell::new(0usize);
    let get = |j: usize| {
        cache
            .get_or_load(j, || {
                loads.set(loads.get() + 1);
                Ok(list(j as u32 * 100, 10))
            })
            .expect("load")
    };
    for j in 0..3 {
        get(j);
    }
    assert_eq!(get(0).id(0), 0); // hit: 0 becomes the most recently used
    get(3); // evicts 1
    assert_eq!(
        (cache.contains(1), cache.contains(0), cache.contains(2), cache.contains(3)),
        (false, true, true, true)
    );
    assert_eq!(loads.get(), 4);
    assert_eq!(get(1).id(9), 109); // reloaded; evicts 2
    assert_eq!((loads.get(), cache.contains(2)), (5, false));
    get(0);
    assert_eq!((loads.get(), cache.hits(), cache.misses()), (5, 2, 5));
    assert_eq!((cache.resident_bytes(), cache.cached_lists()), (3 * size, 3));

    // Lists of mixed sizes: the budget holds after every insertion.
    let mut rng = Mix(11);
    for _ in 0..300 {
        let j = 100 + rng.below(40);
        let len = 1 + (j * 7) % 25;
        let l = cache.get_or_load(j, || Ok(list(j as u32, len))).expect("load");
        assert_eq!(l.len(), len);
        assert!(cache.resident_bytes() <= cache.budget());
        assert!(cache.contains(j), "a list that fits is cached");
    }
    assert_eq!(cache.hits() + cache.misses(), 307);

    // A list over the whole budget is served but not cached; loader errors cache nothing.
    let before = (cache.resident_bytes(), cache.cached_lists());
    let big = cache.get_or_load(1000, || Ok(list(0, 100))).expect("big");
    assert_eq!(big.len(), 100);
    assert_eq!(
        (cache.resident_bytes(), cache.cached_lists(), cache.contains(1000)),
        (before.0, before.1, false)
    );
    let failed = cache.get_or_load(1001, || Err(Error::InvalidArgument("boom".into())));
    assert!(failed.is_err() && !cache.contains(1001));
    cache.clear();
    assert_eq!((cache.resident_bytes(), cache.cached_lists()), (0, 0));
    let off = PostingCache::new(0);
    off.get_or_load(0, || Ok(list(0, 1))).expect("served");
    assert_eq!((off.cached_lists(), off.resident_bytes()), (0, 0));
}

#[test]
fn concurrent_lookups_share_the_cache_safely() {
    let base = gen::gaussian(400, 8, 21);
    let lists = random_lists(30, 80, base.rows(), 22);
    let path = temp("concurrent.qpost");
    write(&path, &base, Metric::L2, &lists);
    let file = PostingFile::open(&path).expect("open");
    let all: usize = (0..lists.len()).map(|j| file.load(j).expect("load").bytes()).sum();
    let cache = PostingCache::new(all / 3);
    let (threads, per_thread) = (4, 400);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (file, cache, lists, base) = (&file, &cache, &lists, &base);
            s.spawn(move || {
                let mut rng = Mix(100 + t as u64);
                for _ in 0..per_thread {
                    // Skewed choice: low lists are hot.
                    let hot = 1 + rng.below(lists.len());
                    let j = rng.below(hot);
                    let got = cache.get_or_load(j, || file.load(j).map(Arc::new)).expect("load");
                    assert_eq!(got.ids(), &lists[j][..]);
                    if let Some(&id) = lists[j].last() {
                        assert_eq!(bits(got.row(got.len() - 1)), bits(base.row(id as usize)));
                    }
                    assert!(cache.resident_bytes() <= cache.budget());
                }
            });
        }
    });
    assert_eq!(cache.hits() + cache.misses(), (threads * per_thread) as u64);
    assert!(cache.hits() > cache.misses(), "hits {} misses {}", cache.hits(), cache.misses());
}

//! Making every level-0 node reachable from the entry point after a build or an append.
//!
//! The neighbour heuristic can prune a node (or a small group of nodes) out of every list that
//! pointed to it; such nodes are never returned by any search. After inserting, a breadth-first
//! walk from the entry point finds the unreachable nodes, and each is linked from its nearest
//! reachable node: into a free slot, or replacing that node's farthest link to a node that other
//! nodes also link to. Rounds repeat until every node is reachable.

use super::builder::HnswIndex;
use quarry_linalg::Kernels;

impl HnswIndex {
    /// Links unreachable level-0 nodes into the reachable graph (single-threaded; call while no
    /// insert runs).
    pub(crate) fn repair_reachability(&self) {
        let n = self.graph.len();
        let Some(entry) = self.entry() else { return };
        let kern = Kernels::get();
        let mut buf = Vec::new();
        for _round in 0..8 {
            let mut reached = vec![false; n];
            let mut indeg = vec![0u32; n];
            let mut stack = vec![entry.id];
            reached[entry.id as usize] = true;
            while let Some(x) = stack.pop() {
                self.graph.for_each(x, 0, |nb| {
                    if !reached[nb as usize] {
                        reached[nb as usize] = true;
                        stack.push(nb);
                    }
                });
            }
            for id in 0..n as u32 {
                self.graph.for_each(id, 0, |nb| indeg[nb as usize] += 1);
            }
            let lost: Vec<u32> = (0..n as u32).filter(|&i| !reached[i as usize]).collect();
            if lost.is_empty() {
                return;
            }
            for &u in &lost {
                let q = self.flat.row_query(u as usize);
                // The nearest reachable node: among u's own links first, else by a full scan.
                self.graph.read(u, 0, &mut buf);
                let mut from: Vec<u32> = buf.iter().copied().filter(|&x| reached[x as usize]).collect();
                if from.is_empty() {
                    let best = (0..n as u32)
                        .filter(|&x| reached[x as usize] && x != u)
                        .map(|x| (self.flat.key(kern, &q, x as usize), x))
                        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                    from.extend(best.map(|b| b.1));
                }
                for nb in from {
                    self.graph.read(nb, 0, &mut buf);
                    if buf.contains(&u) {
                        break;
                    }
                    if buf.len() < self.graph.cap(0) {
                        buf.push(u);
                    } else {
                        let qn = self.flat.row_query(nb as usize);
                        let victim = buf
                            .iter()
                            .enumerate()
                            .filter(|&(_, &x)| indeg[x as usize] > 1)
                            .map(|(i, &x)| (self.flat.key(kern, &qn, x as usize), i, x))
                            .max_by(|a, b| a.0.total_cmp(&b.0));
                        let Some((_, slot, old)) = victim else { continue };
                        indeg[old as usize] -= 1;
                        buf[slot] = u;
                    }
                    self.graph.write(nb, 0, &buf);
                    indeg[u as usize] += 1;
                    break;
                }
            }
        }
    }
}

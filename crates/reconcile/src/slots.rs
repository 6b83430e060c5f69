//! Fair scan slots: a slow or hung registry host may hold at most its share of the global
//! concurrency, so the other hosts' scans keep their intervals.

/// The scan slots one host may hold at once, out of `concurrency`, when `hosts` distinct
/// registry hosts are configured. Every host gets at least one.
pub fn host_share(concurrency: usize, hosts: usize) -> usize {
    let concurrency = concurrency.max(1);
    match hosts {
        0 | 1 => concurrency,
        n => (concurrency / n).max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_never_let_one_host_take_everything() {
        assert_eq!(host_share(16, 1), 16);
        assert_eq!(host_share(16, 2), 8);
        assert_eq!(host_share(16, 3), 5);
        assert_eq!(host_share(4, 10), 1);
        assert_eq!(host_share(0, 0), 1);
        // With two or more hosts, one host's share leaves slots for the others.
        for c in 2..40 {
            for h in 2..12 {
                let share = host_share(c, h);
                assert!(share >= 1);
                assert!(share < c || c < h, "{c} {h}");
            }
        }
    }
}

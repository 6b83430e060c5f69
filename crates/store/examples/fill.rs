//! Fills a store with REPOS repositories of TAGS tags each (as scans would, in batches of 100
//! repositories per transaction), then reads every list back one at a time, and reports the
//! peak resident memory and the file size. Used by bench/store-memory.sh.
//!
//! usage: fill STORE_FILE [REPOS=1000] [TAGS=1000]

use std::path::PathBuf;

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(args.next().ok_or("usage: fill STORE_FILE [REPOS] [TAGS]")?);
    let repos: usize = args.next().map_or(Ok(1000), |a| a.parse())?;
    let tags: usize = args.next().map_or(Ok(1000), |a| a.parse())?;
    let store = tagpilot_store::Store::open(&path)?;
    let start = std::time::Instant::now();
    for chunk_start in (0..repos).step_by(100) {
        let lists: Vec<(String, Vec<String>)> = (chunk_start..(chunk_start + 100).min(repos))
            .map(|r| {
                let mut t: Vec<String> = (0..tags)
                    .map(|i| format!("{}.{}.{}", i / 100, i % 100, r % 7))
                    .collect();
                t.sort_unstable_by(|a, b| b.cmp(a));
                (format!("registry.example.com/team-{}/app-{r}", r % 50), t)
            })
            .collect();
        let batch: Vec<(&str, &[String], &str)> = lists
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_slice(), "sha256:bench"))
            .collect();
        store.record_scans(&batch, 1_700_000_000)?;
    }
    let write = start.elapsed();
    let start = std::time::Instant::now();
    let mut total = 0usize;
    for repo in store.repositories()? {
        total += store.tags(&repo)?.map_or(0, |t| t.len());
    }
    let read = start.elapsed();
    let size = std::fs::metadata(&path)?.len();
    println!(
        "{repos} repos x {tags} tags: wrote in {:.2}s, read back {total} tags in {:.2}s; peak RSS {} MiB, RSS now {} MiB; store file {} MiB",
        write.as_secs_f64(),
        read.as_secs_f64(),
        rss_kib("VmHWM:") / 1024,
        rss_kib("VmRSS:") / 1024,
        size >> 20
    );
    Ok(())
}

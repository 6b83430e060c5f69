//! Resolving 100k generated tags with each policy kind, next to a baseline of sorting the same
//! 100k strings, in the same run.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use tagpilot_policy::{Choice, Exclusions, Order, Policy, TagFilter};

const N: usize = 100_000;

/// A realistic mix: semver releases and pre-releases, `v`-prefixed ones, build ids, calver,
/// `latest`, and cosign signatures.
fn tags() -> Vec<String> {
    let mut out = Vec::with_capacity(N);
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    while out.len() < N {
        let r = next();
        let (a, b, c) = (r % 20, (r >> 8) % 50, (r >> 16) % 100);
        out.push(match (r >> 32) % 8 {
            0 => format!("v{a}.{b}.{c}"),
            1 => format!("{a}.{b}.{c}-rc.{}", (r >> 24) % 10),
            2 => format!(
                "main-{:07x}-{}",
                r & 0xfff_ffff,
                1_600_000_000 + (r >> 40) % 100_000_000
            ),
            3 => format!("sha256-{:016x}.sig", r),
            4 => format!(
                "{}{:02}{:02}.{}",
                2020 + a % 7,
                1 + b % 12,
                1 + c % 28,
                (r >> 24) % 1000
            ),
            _ => format!("{a}.{b}.{c}"),
        });
    }
    out
}

fn numeric_tags() -> Vec<String> {
    (0..N)
        .map(|i| ((i as u64 * 7919) % 1_000_003).to_string())
        .collect()
}

fn bench(c: &mut Criterion) {
    let tags = tags();
    let numbers = numeric_tags();
    let ex = Exclusions::flux_default();
    let none = Exclusions::none();
    let mut g = c.benchmark_group("resolve_100k");
    g.sample_size(20);

    g.bench_function("baseline_sort_strings", |b| {
        b.iter_batched(
            || tags.clone(),
            |mut t| {
                t.sort_unstable();
                black_box(t)
            },
            BatchSize::LargeInput,
        )
    });
    let semver = Policy::new(Choice::semver(">=1.0.0 <15.0.0").expect("range"), None);
    g.bench_function("semver", |b| {
        b.iter(|| black_box(semver.select(black_box(&tags), &ex)))
    });
    let semver_pre = Policy::new(Choice::semver("^5.x-0").expect("range"), None);
    g.bench_function("semver_prerelease", |b| {
        b.iter(|| black_box(semver_pre.select(&tags, &ex)))
    });
    let alpha = Policy::new(Choice::Alphabetical(Order::Asc), None);
    g.bench_function("alphabetical", |b| {
        b.iter(|| black_box(alpha.select(&tags, &ex)))
    });
    let num = Policy::new(Choice::Numerical(Order::Asc), None);
    g.bench_function("numerical", |b| {
        b.iter(|| black_box(num.select(&numbers, &none)))
    });
    let filtered_num = Policy::new(
        Choice::Numerical(Order::Asc),
        TagFilter::new(r"^main-[a-fA-F0-9]+-(?P<ts>.*)", "$ts").ok(),
    );
    g.bench_function("numerical_filter_extract", |b| {
        b.iter(|| black_box(filtered_num.select(&tags, &ex)))
    });
    let filtered_semver = Policy::new(
        Choice::semver(">=1.0.0").expect("range"),
        TagFilter::new(r"^v?\d+\.\d+\.\d+$", "").ok(),
    );
    g.bench_function("semver_filter", |b| {
        b.iter(|| black_box(filtered_semver.select(&tags, &ex)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

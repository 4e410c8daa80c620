//! Speed of reading and unfolding MusicXML: every `score.musicxml` of the development corpus
//! (`SCOREFOLLOW_CORPUS`, default `../shared/corpus`; the bundled chorale when it is absent),
//! bytes in memory to a `Score` with its printed layout, repeats unfolded, one file at a
//! time. Run: `cargo bench --bench musicxml`. The comparison with partitura's
//! `load_musicxml` on the same files, in one run, is `cargo run --release --example
//! musicxml_dev`.

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use scorefollow::score::musicxml::MusicXmlOptions;
use scorefollow::score::Score;

fn files() -> Vec<PathBuf> {
    let corpus = std::env::var_os("SCOREFOLLOW_CORPUS")
        .map_or_else(|| PathBuf::from("../shared/corpus"), PathBuf::from);
    let mut out: Vec<PathBuf> = std::fs::read_dir(corpus.join("pieces"))
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path().join("score.musicxml")))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    if out.is_empty() {
        out.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("scores/bach_bwv66_6/score.musicxml"));
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("musicxml");
    g.sample_size(10);
    for path in files() {
        let bytes = std::fs::read(&path).expect("read");
        let name = path
            .parent()
            .and_then(|d| d.file_name())
            .map_or_else(|| "score".to_string(), |n| n.to_string_lossy().into_owned());
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                Score::from_musicxml_bytes(&bytes, &path, &MusicXmlOptions::default())
                    .expect("score")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

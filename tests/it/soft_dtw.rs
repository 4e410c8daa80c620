//! End-to-end checks of `scorefollow softdtw` and `scorefollow plot` on generated feature CSVs.

use std::path::{Path, PathBuf};
use std::process::Command;

use scorefollow::align::soft_dtw::{self, FeatureCost, Matrix, SoftDtw};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scorefollow"))
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sf_sdtw_{tag}_{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Smooth 12-dimensional test sequence (deterministic).
fn sequence(n: usize, phase: f64) -> Matrix {
    Matrix::from_fn(n, 12, |i, k| {
        ((i as f64 * 0.07 + phase) * (k + 1) as f64).sin().abs()
    })
}

fn write(m: &Matrix, path: &Path) {
    soft_dtw::io::write_csv(m, path).unwrap();
}

fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[1..4], b"PNG", "{} is not a PNG", path.display());
    let w = u32::from_be_bytes([b[16], b[17], b[18], b[19]]);
    let h = u32::from_be_bytes([b[20], b[21], b[22], b[23]]);
    (w, h)
}

#[test]
fn softdtw_json_matches_the_library_and_writes_e() {
    let dir = temp_dir("json");
    let (x, y) = (sequence(40, 0.0), sequence(31, 0.3));
    let (px, py, pe) = (dir.join("x.csv"), dir.join("y.csv"), dir.join("E.csv"));
    write(&x, &px);
    write(&y, &py);
    let out = bin()
        .args(["softdtw"])
        .args([&px, &py])
        .args(["--gamma", "0.5", "--json", "--grad"])
        .arg(&pe)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sd = SoftDtw::new(0.5).unwrap();
    let want = sd.value_features(&x, &y, FeatureCost::SqEuclidean).unwrap();
    let div = sd.divergence(&x, &y, FeatureCost::SqEuclidean).unwrap();
    let dtw = soft_dtw::dtw(&FeatureCost::SqEuclidean.matrix(&x, &y).unwrap(), None).unwrap();
    assert!((v["value"].as_f64().unwrap() - want).abs() < 1e-9 * want.abs().max(1.0));
    assert!((v["divergence"].as_f64().unwrap() - div).abs() < 1e-9 * div.abs().max(1.0));
    assert!((v["dtw"].as_f64().unwrap() - dtw).abs() < 1e-9 * dtw.abs().max(1.0));
    let e = soft_dtw::io::read_csv(&pe).unwrap();
    assert_eq!((e.rows(), e.cols()), (40, 31));
    assert!((e.get(0, 0) - 1.0).abs() < 1e-9 && (e.get(39, 30) - 1.0).abs() < 1e-9);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn softdtw_reports_bad_input_in_one_line() {
    let dir = temp_dir("bad");
    let (px, py) = (dir.join("x.csv"), dir.join("y.csv"));
    std::fs::write(&px, "1,2,3\n4,oops,6\n").unwrap();
    write(&Matrix::zeros(5, 3), &py);
    let out = bin().arg("softdtw").args([&px, &py]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("x.csv:2") && err.contains("oops"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    write(&Matrix::zeros(4, 3), &px);
    write(&Matrix::zeros(40, 3), &py);
    let out = bin()
        .arg("softdtw")
        .args([&px, &py])
        .args(["--band", "2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("narrowest band"), "{err}");

    let out = bin()
        .arg("softdtw")
        .args([&px, &py])
        .args(["--gamma", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("gamma"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn plot_subcommands_write_pngs_of_the_requested_size() {
    let dir = temp_dir("plot");
    let (x, y) = (sequence(120, 0.0), sequence(100, 0.2));
    let (px, py) = (dir.join("x.csv"), dir.join("y.csv"));
    write(&x, &px);
    write(&y, &py);
    let gt = dir.join("gt.csv");
    std::fs::write(&gt, "perf_time_s,score_time_s\n0,0\n1.2,1.0\n2.4,2.0\n").unwrap();
    let pred = dir.join("pred.csv");
    let mut p = String::from("perf_time_s,score_time_s,beat\n");
    for k in 0..120 {
        p.push_str(&format!("{},{},0\n", k as f64 * 0.02, k as f64 * 0.017));
    }
    std::fs::write(&pred, p).unwrap();
    let runs: Vec<(&str, Vec<String>)> = vec![
        ("chroma", vec!["chroma".into(), px.display().to_string()]),
        (
            "cost",
            vec![
                "cost".into(),
                px.display().to_string(),
                py.display().to_string(),
                "--gt".into(),
                gt.display().to_string(),
            ],
        ),
        (
            "softdtw",
            vec![
                "softdtw".into(),
                px.display().to_string(),
                py.display().to_string(),
                "--gammas".into(),
                "0.01,0.1,1".into(),
            ],
        ),
        (
            "trace",
            vec![
                "trace".into(),
                pred.display().to_string(),
                "--gt".into(),
                gt.display().to_string(),
            ],
        ),
    ];
    for (name, args) in runs {
        let out_png = dir.join(format!("{name}.png"));
        let out = bin()
            .arg("plot")
            .args(&args)
            .arg("--out")
            .arg(&out_png)
            .args(["--width", "700", "--height", "420"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(png_size(&out_png), (700, 420), "{name}");
        let bytes = std::fs::metadata(&out_png).unwrap().len();
        assert!(bytes > 8_000, "{name}: only {bytes} bytes");
    }
    let out = bin()
        .args(["plot", "chroma", "/nonexistent/file.csv", "--out"])
        .arg(dir.join("n.png"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/file.csv"));
    std::fs::remove_dir_all(&dir).unwrap();
}

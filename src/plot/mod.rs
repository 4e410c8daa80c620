//! PNG pictures of features and alignments (plotters, bitmap backend, embedded DejaVu Sans so
//! no system font is needed): a chromagram, a cost matrix with the DTW path and a ground-truth
//! path, expected alignments at several γ side by side, and an online follower's trace.
//!
//! Every picture has axes in seconds, axis labels and, for heat maps, a colour bar. Heat maps
//! are drawn pixel by pixel from the matrix (pooled when it has more cells than pixels), so a
//! 10 000 x 10 000 matrix costs no more to draw than a small one.

use std::path::Path;
use std::sync::Once;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::align::soft_dtw::Matrix;
use crate::{Error, Result};

const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font is a valid TTF; a failure would only lose the text.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// How several matrix cells falling on one pixel are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// Their mean (cost matrices, chromagrams).
    Mean,
    /// Their maximum (expected alignments: keeps a thin path visible).
    Max,
}

/// A heat map: `values[i][j]` drawn with `i` along x and `j` along y (upwards).
pub struct Heatmap<'a> {
    /// The matrix.
    pub values: &'a Matrix,
    /// Seconds per row (x axis) and per column (y axis).
    pub hop_x_s: f64,
    /// Seconds per column.
    pub hop_y_s: f64,
    /// Colour scale range.
    pub range: (f64, f64),
    /// Pooling when cells outnumber pixels.
    pub pool: Pool,
}

/// A labelled path drawn over a heat map or a trace, in seconds.
pub struct Curve<'a> {
    /// Points (x s, y s).
    pub points: &'a [(f64, f64)],
    /// Legend text.
    pub label: &'a str,
    /// Colour.
    pub color: RGBColor,
    /// Dashed instead of solid.
    pub dashed: bool,
}

/// Viridis-like colour map (perceptually ordered, readable in grey), `t` in [0, 1].
pub fn colormap(t: f64) -> RGBColor {
    const ANCHORS: [(u8, u8, u8); 9] = [
        (68, 1, 84),
        (71, 44, 122),
        (59, 81, 139),
        (44, 113, 142),
        (33, 144, 141),
        (39, 173, 129),
        (92, 200, 99),
        (170, 220, 50),
        (253, 231, 37),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (ANCHORS.len() - 1) as f64;
    let k = (x.floor() as usize).min(ANCHORS.len() - 2);
    let f = x - k as f64;
    let (a, b) = (ANCHORS[k], ANCHORS[k + 1]);
    let mix = |p: u8, q: u8| (p as f64 + f * (q as f64 - p as f64)).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// The `lo` and `hi` quantiles of the finite values of `m` (a robust colour range).
pub fn quantile_range(m: &Matrix, lo: f64, hi: f64) -> (f64, f64) {
    let mut v: Vec<f64> = m
        .as_slice()
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    let (a, b) = (at(lo), at(hi));
    if b > a {
        (a, b)
    } else {
        (a, a + 1.0)
    }
}

fn de<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

type Area<'a, DB> = DrawingArea<DB, Shift>;

/// Draws `hm` into a chart with the given title and axis names; returns nothing but the chart
/// is fully drawn, with `curves` on top.
fn draw_heatmap<DB: DrawingBackend>(
    area: &Area<DB>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    hm: &Heatmap,
    curves: &[Curve],
    y_names: Option<&[&str]>,
) -> std::result::Result<(), String> {
    let (n, m) = (hm.values.rows(), hm.values.cols());
    let x_max = (n as f64 * hm.hop_x_s).max(1e-9);
    // Named rows (pitch classes): integer coordinates at the row centres, one label each.
    let (y_lo, y_hi) = match y_names {
        Some(_) => (-0.5, m as f64 - 0.5),
        None => (0.0, (m as f64 * hm.hop_y_s).max(1e-9)),
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FAMILY, 20))
        .margin(8)
        .x_label_area_size(44)
        .y_label_area_size(if y_names.is_some() { 44 } else { 64 })
        .build_cartesian_2d(0f64..x_max, y_lo..y_hi)
        .map_err(de)?;
    {
        let pa = chart.plotting_area();
        let (pw, ph) = pa.dim_in_pixel();
        let raw = pa.strip_coord_spec();
        let (lo, hi) = hm.range;
        let span = if hi > lo { hi - lo } else { 1.0 };
        for px in 0..pw as usize {
            let i0 = px * n / pw as usize;
            let i1 = ((px + 1) * n / pw as usize).max(i0 + 1).min(n);
            for py in 0..ph as usize {
                // Pixel row 0 is the top: the last columns.
                let q = ph as usize - 1 - py;
                let j0 = q * m / ph as usize;
                let j1 = ((q + 1) * m / ph as usize).max(j0 + 1).min(m);
                let mut acc = match hm.pool {
                    Pool::Mean => 0.0,
                    Pool::Max => f64::NEG_INFINITY,
                };
                for i in i0..i1 {
                    for &v in &hm.values.row(i)[j0..j1] {
                        match hm.pool {
                            Pool::Mean => acc += v,
                            Pool::Max => acc = acc.max(v),
                        }
                    }
                }
                if hm.pool == Pool::Mean {
                    acc /= ((i1 - i0) * (j1 - j0)) as f64;
                }
                raw.draw_pixel((px as i32, py as i32), &colormap((acc - lo) / span))
                    .map_err(de)?;
            }
        }
    }
    let names: Vec<String> =
        y_names.map_or_else(Vec::new, |v| v.iter().map(|s| s.to_string()).collect());
    let fmt_y = move |y: &f64| -> String {
        if names.is_empty() {
            format!("{y:.1}")
        } else if (y - y.round()).abs() < 1e-6 && *y >= 0.0 {
            names.get(y.round() as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let mut mesh = chart.configure_mesh();
    mesh.disable_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 15))
        .x_label_formatter(&|x| format!("{x:.1}"))
        .y_label_formatter(&fmt_y);
    if let Some(v) = y_names {
        mesh.y_labels(v.len());
    }
    mesh.draw().map_err(de)?;
    draw_curves(&mut chart, curves)?;
    Ok(())
}

type Chart2d<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

fn draw_curves<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart2d<'a, DB>,
    curves: &[Curve],
) -> std::result::Result<(), String> {
    for c in curves {
        let color = c.color;
        let style = color.stroke_width(2);
        if c.dashed {
            chart
                .draw_series(DashedLineSeries::new(c.points.iter().copied(), 8, 5, style))
                .map_err(de)?
                .label(c.label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        } else {
            chart
                .draw_series(LineSeries::new(c.points.iter().copied(), style))
                .map_err(de)?
                .label(c.label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
    }
    if !curves.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FAMILY, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(de)?;
    }
    Ok(())
}

/// A vertical colour bar for values in `range`, labelled `desc`.
fn draw_colorbar<DB: DrawingBackend>(
    area: &Area<DB>,
    range: (f64, f64),
    desc: &str,
) -> std::result::Result<(), String> {
    let (lo, hi) = range;
    let mut chart = ChartBuilder::on(area)
        .margin_top(36)
        .margin_bottom(52)
        .margin_right(8)
        .y_label_area_size(62)
        .build_cartesian_2d(0f64..1f64, lo..hi)
        .map_err(de)?;
    let steps = 200;
    chart
        .draw_series((0..steps).map(|k| {
            let a = lo + (hi - lo) * k as f64 / steps as f64;
            let b = lo + (hi - lo) * (k + 1) as f64 / steps as f64;
            Rectangle::new(
                [(0.0, a), (1.0, b)],
                colormap((k as f64 + 0.5) / steps as f64).filled(),
            )
        }))
        .map_err(de)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_desc(desc)
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 14))
        .y_label_formatter(&|v| {
            if v.abs() >= 1000.0 || (v.abs() < 0.01 && *v != 0.0) {
                format!("{v:.1e}")
            } else {
                format!("{v:.2}")
            }
        })
        .draw()
        .map_err(de)?;
    Ok(())
}

/// Renders to a PNG file of `size` pixels.
fn to_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&Area<BitMapBackend>) -> std::result::Result<(), String>,
) -> Result<()> {
    register_font();
    let fail = |reason: String| Error::Other(format!("cannot draw {}: {reason}", path.display()));
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
    draw(&root).map_err(fail)?;
    root.present().map_err(|e| fail(e.to_string()))?;
    drop(root);
    if !path.exists() {
        return Err(fail("no file written".into()));
    }
    Ok(())
}

/// Renders into an RGB buffer (3 bytes a pixel, row-major), for tests and previews.
fn to_rgb(
    size: (u32, u32),
    draw: impl FnOnce(&Area<BitMapBackend>) -> std::result::Result<(), String>,
) -> Result<Vec<u8>> {
    register_font();
    let mut buf = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| Error::Other(e.to_string()))?;
        draw(&root).map_err(Error::Other)?;
        root.present().map_err(|e| Error::Other(e.to_string()))?;
    }
    Ok(buf)
}

/// Where a picture goes: a PNG file or an RGB buffer.
pub enum Target<'a> {
    /// Write a PNG file.
    Png(&'a Path),
    /// Fill this buffer (resized to width x height x 3).
    Rgb(&'a mut Vec<u8>),
}

fn render(
    target: Target,
    size: (u32, u32),
    draw: impl FnOnce(&Area<BitMapBackend>) -> std::result::Result<(), String>,
) -> Result<()> {
    match target {
        Target::Png(p) => to_png(p, size, draw),
        Target::Rgb(buf) => {
            *buf = to_rgb(size, draw)?;
            Ok(())
        }
    }
}

const PITCH_CLASSES: [&str; 12] = [
    "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B",
];
const COLORBAR_PX: u32 = 120;

/// Chromagram: frames along x (seconds), the 12 pitch classes along y, one colour per value.
pub fn chromagram(
    chroma: &Matrix,
    hop_s: f64,
    title: &str,
    size: (u32, u32),
    target: Target,
) -> Result<()> {
    if chroma.rows() == 0 || chroma.cols() == 0 {
        return Err(Error::invalid("chromagram", "empty", "no frames to draw"));
    }
    let range = quantile_range(chroma, 0.0, 0.995);
    let names: Vec<&str> = if chroma.cols() == 12 {
        PITCH_CLASSES.to_vec()
    } else {
        Vec::new()
    };
    render(target, size, |root| {
        let (main, bar) = root.split_horizontally(size.0.saturating_sub(COLORBAR_PX));
        let hm = Heatmap {
            values: chroma,
            hop_x_s: hop_s,
            hop_y_s: 1.0,
            range,
            pool: Pool::Mean,
        };
        let y_desc = if names.is_empty() {
            "dimension"
        } else {
            "pitch class"
        };
        draw_heatmap(
            &main,
            title,
            "time (s)",
            y_desc,
            &hm,
            &[],
            (!names.is_empty()).then_some(&names[..]),
        )?;
        draw_colorbar(&bar, range, "value")
    })
}

/// Cost matrix with curves on top (DTW path, ground truth), axes in seconds of each sequence.
#[allow(clippy::too_many_arguments)]
pub fn cost_matrix(
    cost: &Matrix,
    hop_x_s: f64,
    hop_y_s: f64,
    names: (&str, &str),
    curves: &[Curve],
    size: (u32, u32),
    target: Target,
) -> Result<()> {
    if cost.rows() == 0 || cost.cols() == 0 {
        return Err(Error::invalid("cost matrix", "empty", "nothing to draw"));
    }
    let range = quantile_range(cost, 0.01, 0.99);
    render(target, size, |root| {
        let (main, bar) = root.split_horizontally(size.0.saturating_sub(COLORBAR_PX));
        let hm = Heatmap {
            values: cost,
            hop_x_s,
            hop_y_s,
            range,
            pool: Pool::Mean,
        };
        let title = format!("Cost matrix: {} against {}", names.0, names.1);
        draw_heatmap(
            &main,
            &title,
            &format!("{} time (s)", names.0),
            &format!("{} time (s)", names.1),
            &hm,
            curves,
            None,
        )?;
        draw_colorbar(&bar, range, "frame cost")
    })
}

/// Expected alignments side by side, one panel per `(γ, E)`, sharing a colour bar on [0, 1].
pub fn expected_alignments(
    panels: &[(f64, Matrix)],
    hop_x_s: f64,
    hop_y_s: f64,
    names: (&str, &str),
    size: (u32, u32),
    target: Target,
) -> Result<()> {
    if panels.is_empty() || panels.iter().any(|(_, e)| e.rows() == 0 || e.cols() == 0) {
        return Err(Error::invalid(
            "expected alignment",
            "empty",
            "nothing to draw",
        ));
    }
    render(target, size, |root| {
        let (main, bar) = root.split_horizontally(size.0.saturating_sub(COLORBAR_PX));
        let cells = main.split_evenly((1, panels.len()));
        for ((gamma, e), area) in panels.iter().zip(&cells) {
            let hm = Heatmap {
                values: e,
                hop_x_s,
                hop_y_s,
                range: (0.0, 1.0),
                pool: Pool::Max,
            };
            draw_heatmap(
                area,
                &format!("E at γ = {gamma}"),
                &format!("{} time (s)", names.0),
                &format!("{} time (s)", names.1),
                &hm,
                &[],
                None,
            )?;
        }
        draw_colorbar(&bar, (0.0, 1.0), "expected alignment E")
    })
}

/// Online follower trace: score position against performance time, with the ground truth and,
/// when given, a panel of the error (predicted minus true score time) below.
pub fn follower_trace(
    pred: &[(f64, f64)],
    truth: Option<&[(f64, f64)]>,
    title: &str,
    size: (u32, u32),
    target: Target,
) -> Result<()> {
    if pred.is_empty() {
        return Err(Error::invalid("trace", "empty", "no predictions to draw"));
    }
    let all = pred.iter().chain(truth.unwrap_or(&[]).iter());
    let (mut x_max, mut y_max) = (1e-9f64, 1e-9f64);
    for &(x, y) in all {
        x_max = x_max.max(x);
        y_max = y_max.max(y);
    }
    // Error of the prediction held at each ground-truth time (the follower's answer then).
    let errors: Vec<(f64, f64)> = truth
        .map(|gt| {
            gt.iter()
                .filter_map(|&(t, s)| {
                    let k = pred.partition_point(|p| p.0 <= t);
                    (k > 0).then(|| (t, pred[k - 1].1 - s))
                })
                .collect()
        })
        .unwrap_or_default();
    render(target, size, |root| {
        let (top, bottom) = if errors.is_empty() {
            (root.clone(), None)
        } else {
            let (a, b) = root.split_vertically(size.1 * 68 / 100);
            (a, Some(b))
        };
        let mut chart = ChartBuilder::on(&top)
            .caption(title, (FAMILY, 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_max * 1.02, 0f64..y_max * 1.05)
            .map_err(de)?;
        chart
            .configure_mesh()
            .x_desc("performance time (s)")
            .y_desc("score time (s)")
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 15))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(de)?;
        let mut curves = vec![Curve {
            points: pred,
            label: "follower",
            color: RGBColor(31, 119, 180),
            dashed: false,
        }];
        if let Some(gt) = truth {
            curves.push(Curve {
                points: gt,
                label: "ground truth",
                color: RGBColor(214, 39, 40),
                dashed: true,
            });
        }
        draw_curves(&mut chart, &curves)?;
        if let Some(b) = bottom {
            let lim = errors
                .iter()
                .map(|e| e.1.abs())
                .fold(0.35f64, f64::max)
                .min(5.0);
            let mut ec = ChartBuilder::on(&b)
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(64)
                .build_cartesian_2d(0f64..x_max * 1.02, -lim..lim)
                .map_err(de)?;
            ec.configure_mesh()
                .x_desc("performance time (s)")
                .y_desc("error (s)")
                .label_style((FAMILY, 14))
                .axis_desc_style((FAMILY, 15))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(de)?;
            for lvl in [-0.3, 0.3] {
                ec.draw_series(DashedLineSeries::new(
                    vec![(0.0, lvl), (x_max * 1.02, lvl)],
                    6,
                    4,
                    RGBColor(150, 150, 150).stroke_width(1),
                ))
                .map_err(de)?;
            }
            let clipped: Vec<(f64, f64)> = errors
                .iter()
                .map(|&(t, e)| (t, e.clamp(-lim, lim)))
                .collect();
            ec.draw_series(
                clipped
                    .iter()
                    .map(|&p| Circle::new(p, 2, RGBColor(31, 119, 180).filled())),
            )
            .map_err(de)?
            .label("error at each ground-truth event (±0.3 s dashed)")
            .legend(|(x, y)| Circle::new((x + 10, y), 3, RGBColor(31, 119, 180).filled()));
            ec.configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .label_font((FAMILY, 13))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(de)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Share of pixels that are not white, and number of distinct colours.
    fn stats(buf: &[u8]) -> (f64, usize) {
        let px: Vec<[u8; 3]> = buf.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
        let non_white = px.iter().filter(|p| **p != [255, 255, 255]).count();
        let mut distinct = std::collections::HashSet::new();
        for p in &px {
            distinct.insert(*p);
        }
        (non_white as f64 / px.len() as f64, distinct.len())
    }

    fn diag_matrix(n: usize, m: usize) -> Matrix {
        Matrix::from_fn(n, m, |i, j| {
            ((i as f64 / n as f64) - (j as f64 / m as f64)).abs()
        })
    }

    #[test]
    fn colormap_is_ordered_from_dark_to_light() {
        let lum = |c: RGBColor| 0.3 * c.0 as f64 + 0.59 * c.1 as f64 + 0.11 * c.2 as f64;
        let mut prev = -1.0;
        for k in 0..=20 {
            let l = lum(colormap(k as f64 / 20.0));
            assert!(l > prev, "luminance must increase");
            prev = l;
        }
        assert_eq!(colormap(f64::NAN), colormap(0.0));
    }

    #[test]
    fn heat_maps_fill_the_picture() {
        let mut buf = Vec::new();
        let c = diag_matrix(300, 200);
        let path: Vec<(f64, f64)> = (0..200)
            .map(|k| (k as f64 * 0.02 * 1.5, k as f64 * 0.02))
            .collect();
        let curves = [Curve {
            points: &path,
            label: "DTW path",
            color: WHITE,
            dashed: false,
        }];
        cost_matrix(
            &c,
            0.02,
            0.02,
            ("a", "b"),
            &curves,
            (640, 480),
            Target::Rgb(&mut buf),
        )
        .unwrap();
        assert_eq!(buf.len(), 640 * 480 * 3);
        let (ink, colours) = stats(&buf);
        assert!(ink > 0.5 && colours > 50, "ink {ink}, {colours} colours");

        let chroma = Matrix::from_fn(500, 12, |i, k| ((i / 50 + k) % 12 == 0) as u8 as f64);
        chromagram(&chroma, 0.02, "chroma", (800, 300), Target::Rgb(&mut buf)).unwrap();
        let (ink, colours) = stats(&buf);
        assert!(ink > 0.5 && colours > 20, "ink {ink}, {colours} colours");

        let panels = vec![(0.1, diag_matrix(50, 60)), (1.0, diag_matrix(50, 60))];
        expected_alignments(
            &panels,
            0.02,
            0.02,
            ("x", "y"),
            (900, 400),
            Target::Rgb(&mut buf),
        )
        .unwrap();
        let (ink, _) = stats(&buf);
        assert!(ink > 0.4, "ink {ink}");
    }

    #[test]
    fn trace_draws_lines_and_error_panel() {
        let pred: Vec<(f64, f64)> = (0..500)
            .map(|k| (k as f64 * 0.02, k as f64 * 0.018))
            .collect();
        let gt: Vec<(f64, f64)> = (0..20)
            .map(|k| (k as f64 * 0.5, k as f64 * 0.5 * 0.9))
            .collect();
        let mut with_gt = Vec::new();
        follower_trace(
            &pred,
            Some(&gt),
            "trace",
            (800, 600),
            Target::Rgb(&mut with_gt),
        )
        .unwrap();
        let mut without = Vec::new();
        follower_trace(&pred, None, "trace", (800, 600), Target::Rgb(&mut without)).unwrap();
        let (ink_gt, colours) = stats(&with_gt);
        let (ink, _) = stats(&without);
        assert!(ink > 0.01 && colours > 10);
        assert!(ink_gt > ink, "the error panel adds ink");
        assert!(follower_trace(&[], None, "t", (100, 100), Target::Rgb(&mut without)).is_err());
    }

    #[test]
    fn png_file_has_the_requested_size() {
        let dir = std::env::temp_dir().join(format!("sf_plot_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.png");
        chromagram(
            &diag_matrix(100, 12),
            0.02,
            "c",
            (640, 360),
            Target::Png(&p),
        )
        .unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let w = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
        let h = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
        assert_eq!((w, h), (640, 360));
        assert!(bytes.len() > 5000, "{} bytes", bytes.len());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

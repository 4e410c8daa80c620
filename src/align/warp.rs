//! Where the same musical moment lies in two renditions: a strictly increasing piecewise-linear
//! map between two timelines, built from an alignment, with its exact inverse.
//!
//! An alignment path pairs performance frames with reference frames; it stalls on one side
//! where the other holds a note longer. A stall has no single answer, so the map takes its
//! middle: path points with the same x are averaged in y, then runs with the same y are
//! averaged in x. What is left rises strictly in both coordinates, so the map is invertible
//! and mapping there and back returns the starting time.

/// A strictly increasing piecewise-linear map `x -> y` (both in seconds) through its knots,
/// continued with slope 1 beyond the first and last knot.
#[derive(Clone, Debug, PartialEq)]
pub struct WarpMap {
    xs: Vec<f64>,
    ys: Vec<f64>,
}

impl WarpMap {
    /// The map `y = x`.
    pub fn identity() -> Self {
        Self {
            xs: vec![0.0, 1.0],
            ys: vec![0.0, 1.0],
        }
    }

    /// From (x, y) points with x non-decreasing and y non-decreasing (one point per
    /// performance frame of an alignment, say): points sharing an x are averaged in y, then
    /// runs sharing a y are averaged in x. Fails on no points, a non-finite value or a
    /// decrease.
    pub fn from_monotone(points: &[(f64, f64)]) -> Result<Self, String> {
        if points.is_empty() {
            return Err("an alignment with no points".into());
        }
        for (k, w) in points.windows(2).enumerate() {
            if w[1].0 < w[0].0 || w[1].1 < w[0].1 {
                return Err(format!(
                    "alignment point {} ({}, {}) goes back from ({}, {})",
                    k + 1,
                    w[1].0,
                    w[1].1,
                    w[0].0,
                    w[0].1
                ));
            }
        }
        if let Some(p) = points
            .iter()
            .find(|p| !(p.0.is_finite() && p.1.is_finite()))
        {
            return Err(format!("alignment point ({}, {}) is not finite", p.0, p.1));
        }
        let by_x = average_runs(points.iter().copied(), |p| p.0, |p| p.1);
        let knots = average_runs(by_x.into_iter(), |p| p.1, |p| p.0)
            .into_iter()
            .map(|(y, x)| (x, y));
        let (xs, ys) = knots.unzip();
        Ok(Self { xs, ys })
    }

    /// The same map with knots only at its ends and where y is one of `anchors_y` (sorted;
    /// those outside the map's range are ignored), straight in between. Between two note
    /// onsets of a score the moment is the same share of the way through the note in every
    /// rendition, while an alignment path there runs wherever the held sound let it (measured
    /// on the bundled chorale against a time-warped copy of its performance: 0.2-0.4 s off
    /// inside held chords, up to 2.1 s in a fermata; see the README *In the browser*).
    pub fn anchored(&self, anchors_y: &[f64]) -> Self {
        let n = self.xs.len();
        if n < 2 {
            return self.clone();
        }
        let (y_first, y_last) = (self.ys[0], self.ys[n - 1]);
        let (mut xs, mut ys) = (vec![self.xs[0]], vec![y_first]);
        for &y in anchors_y.iter().filter(|&&y| y > y_first && y < y_last) {
            // Repeated anchors, and any the rounding of the inverse would not keep apart, are
            // skipped so the knots stay strictly increasing.
            let x = self.inverse(y);
            if y > ys[ys.len() - 1] && x > xs[xs.len() - 1] {
                xs.push(x);
                ys.push(y);
            }
        }
        xs.push(self.xs[n - 1]);
        ys.push(y_last);
        Self { xs, ys }
    }

    /// The knots (x, y), both strictly increasing.
    pub fn knots(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.xs.iter().copied().zip(self.ys.iter().copied())
    }

    /// y at `x`.
    pub fn forward(&self, x: f64) -> f64 {
        interpolate(&self.xs, &self.ys, x)
    }

    /// x at `y`: the exact inverse of [`WarpMap::forward`].
    pub fn inverse(&self, y: f64) -> f64 {
        interpolate(&self.ys, &self.xs, y)
    }
}

/// Merge consecutive points with equal `key` into one (key, mean of `value`), in order.
fn average_runs(
    points: impl Iterator<Item = (f64, f64)>,
    key: impl Fn(&(f64, f64)) -> f64,
    value: impl Fn(&(f64, f64)) -> f64,
) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    let mut run = (f64::NAN, 0.0, 0usize);
    for p in points {
        let k = key(&p);
        if run.2 > 0 && k == run.0 {
            run.1 += value(&p);
            run.2 += 1;
        } else {
            if run.2 > 0 {
                out.push((run.0, run.1 / run.2 as f64));
            }
            run = (k, value(&p), 1);
        }
    }
    if run.2 > 0 {
        out.push((run.0, run.1 / run.2 as f64));
    }
    out
}

/// Piecewise-linear through (xs, ys), both strictly increasing; slope 1 outside.
fn interpolate(xs: &[f64], ys: &[f64], x: f64) -> f64 {
    let n = xs.len();
    if n == 0 {
        return x;
    }
    if x <= xs[0] || n == 1 {
        return ys[0] + (x - xs[0]);
    }
    if x >= xs[n - 1] {
        return ys[n - 1] + (x - xs[n - 1]);
    }
    let i = xs.partition_point(|&v| v <= x);
    let (x0, x1, y0, y1) = (xs[i - 1], xs[i], ys[i - 1], ys[i]);
    y0 + (y1 - y0) * (x - x0) / (x1 - x0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Anchored at the onsets, a path that stalls inside each note and jumps at the next
    /// becomes straight between onsets, and still passes through them.
    #[test]
    fn anchored_maps_straight_between_onsets() {
        // Notes start at y = 0, 2, 4, 6 and the performance plays each in 3 s. The path
        // crosses each onset on time but runs through the note in its first half second, then
        // holds near its end until the next onset.
        let mut pts = Vec::new();
        for note in 0..3 {
            let (x0, y0) = (3.0 * note as f64, 2.0 * note as f64);
            for k in 0..5 {
                pts.push((x0 + 0.1 * k as f64, y0 + 0.36 * k as f64));
            }
            for k in 5..30 {
                pts.push((x0 + 0.1 * k as f64, y0 + 1.8));
            }
        }
        pts.push((9.0, 6.0));
        let m = WarpMap::from_monotone(&pts).unwrap_or_else(|e| panic!("{e}"));
        let a = m.anchored(&[0.0, 2.0, 4.0, 6.0]);
        for (x, y) in [(1.5, 1.0), (4.5, 3.0), (7.5, 5.0)] {
            assert!((a.forward(x) - y).abs() < 0.2, "{x}: {}", a.forward(x));
        }
        for y in [2.0, 4.0] {
            assert!((a.inverse(y) - m.inverse(y)).abs() < 1e-12);
        }
        // The path itself is far off in the middle of a note.
        assert!((m.forward(1.5) - 1.0).abs() > 0.5, "{}", m.forward(1.5));
    }

    proptest! {
        /// Anchoring keeps the map strictly increasing, so it stays invertible.
        #[test]
        fn anchored_stays_invertible(
            steps in proptest::collection::vec((0.0f64..1.0, 0.0f64..1.0), 2..60),
            anchors in proptest::collection::vec(0.0f64..30.0, 0..20),
        ) {
            let mut pts = vec![(0.0, 0.0)];
            for (dx, dy) in steps {
                let (x, y) = pts[pts.len() - 1];
                pts.push((x + dx, y + dy));
            }
            let mut anchors = anchors;
            anchors.sort_by(f64::total_cmp);
            let m = WarpMap::from_monotone(&pts).unwrap_or_else(|e| panic!("{e}"));
            let a = m.anchored(&anchors);
            let knots: Vec<_> = a.knots().collect();
            for w in knots.windows(2) {
                prop_assert!(w[1].0 > w[0].0 && w[1].1 > w[0].1, "{knots:?}");
            }
            for x in [0.3, 2.0, 7.7] {
                prop_assert!((a.inverse(a.forward(x)) - x).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn stalls_map_to_their_middle() {
        // The performance holds at x = 1 while the reference moves from 1 to 3, then the
        // reference holds at 4 while the performance moves from 3 to 5.
        let pts = [
            (0.0, 0.0),
            (1.0, 1.0),
            (1.0, 2.0),
            (1.0, 3.0),
            (2.0, 3.5),
            (3.0, 4.0),
            (4.0, 4.0),
            (5.0, 4.0),
            (6.0, 5.0),
        ];
        let m = WarpMap::from_monotone(&pts).unwrap_or_else(|e| panic!("{e}"));
        let knots: Vec<_> = m.knots().collect();
        assert_eq!(
            knots,
            vec![(0.0, 0.0), (1.0, 2.0), (2.0, 3.5), (4.0, 4.0), (6.0, 5.0)]
        );
        assert_eq!(m.forward(1.0), 2.0);
        assert_eq!(m.forward(3.0), 3.75);
        assert_eq!(m.inverse(4.0), 4.0);
        // Slope 1 outside the knots.
        assert_eq!(m.forward(-1.0), -1.0);
        assert_eq!(m.forward(7.5), 6.5);
        assert_eq!(m.inverse(6.5), 7.5);
    }

    #[test]
    fn bad_points_are_refused() {
        assert!(WarpMap::from_monotone(&[]).is_err());
        assert!(WarpMap::from_monotone(&[(0.0, 1.0), (1.0, 0.5)]).is_err());
        assert!(WarpMap::from_monotone(&[(1.0, 0.0), (0.5, 1.0)]).is_err());
        assert!(WarpMap::from_monotone(&[(0.0, f64::NAN)]).is_err());
        let one = WarpMap::from_monotone(&[(2.0, 5.0)]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(one.forward(3.0), 6.0);
        assert_eq!(one.inverse(6.0), 3.0);
        assert_eq!(WarpMap::identity().forward(12.5), 12.5);
    }

    /// Monotone staircases: the steps of a DTW path.
    fn staircase() -> impl Strategy<Value = Vec<(f64, f64)>> {
        proptest::collection::vec(0u8..3, 1..200).prop_map(|steps| {
            let (mut i, mut j) = (0u32, 0u32);
            let mut pts = vec![(0.0, 0.0)];
            for s in steps {
                match s {
                    0 => i += 1,
                    1 => j += 1,
                    _ => {
                        i += 1;
                        j += 1
                    }
                }
                pts.push((i as f64 * 0.02, j as f64 * 0.02));
            }
            pts
        })
    }

    proptest! {
        #[test]
        fn knots_rise_strictly_and_the_inverse_is_exact(pts in staircase(), t in -1.0f64..10.0) {
            let m = WarpMap::from_monotone(&pts).map_err(TestCaseError::fail)?;
            let knots: Vec<_> = m.knots().collect();
            for w in knots.windows(2) {
                prop_assert!(w[1].0 > w[0].0 && w[1].1 > w[0].1, "{w:?}");
            }
            prop_assert!((m.inverse(m.forward(t)) - t).abs() < 1e-9);
            prop_assert!((m.forward(m.inverse(t)) - t).abs() < 1e-9);
            // Every knot lies within the range of the points it came from.
            let (x_max, y_max) = pts[pts.len() - 1];
            for (x, y) in knots {
                prop_assert!((0.0..=x_max).contains(&x) && (0.0..=y_max).contains(&y));
            }
        }

        #[test]
        fn forward_is_monotone(pts in staircase(), a in -1.0f64..10.0, b in -1.0f64..10.0) {
            let m = WarpMap::from_monotone(&pts).map_err(TestCaseError::fail)?;
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(m.forward(lo) <= m.forward(hi));
        }
    }
}

//! `results.png`, drawn with plotters.

use super::{mean_std, ConfigResult};
use plotters::prelude::*;
use shiftgrad_tensor::Result;
use std::path::Path;

/// `results.png`: mean test accuracy against epoch per configuration; and the final mean test
/// accuracy against the forward FLOPs per image, with the seeds' spread as error bars.
pub(super) fn draw(path: &Path, results: &[ConfigResult]) -> Result<()> {
    let palette = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    let epochs = results
        .iter()
        .flat_map(|r| r.seeds.iter().map(|s| s.test_accuracy_by_epoch.len()))
        .max()
        .unwrap_or(1)
        .max(1);
    let by_epoch = |r: &ConfigResult| -> Vec<(f64, f64)> {
        (0..epochs)
            .filter_map(|e| {
                let v: Vec<f64> = r
                    .seeds
                    .iter()
                    .filter_map(|s| s.test_accuracy_by_epoch.get(e).copied())
                    .collect();
                (!v.is_empty()).then(|| ((e + 1) as f64, 100.0 * mean_std(&v).0))
            })
            .collect()
    };
    let accs: Vec<f64> = results
        .iter()
        .flat_map(|r| by_epoch(r).into_iter().map(|p| p.1))
        .collect();
    let lo = accs.iter().copied().fold(100.0, f64::min).floor() - 1.0;
    let hi = accs.iter().copied().fold(0.0, f64::max).ceil() + 1.0;
    crate::train::plot::render(path, (1000, 420), "the results", |root| {
        let (left, right) = root.split_horizontally(500);
        let mut chart = ChartBuilder::on(&left)
            .caption("test accuracy (%), mean over seeds", ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d(0.5..epochs as f64 + 0.5, lo.max(0.0)..hi.min(100.0))?;
        chart.configure_mesh().x_desc("epoch").draw()?;
        for (i, r) in results.iter().enumerate() {
            let color = palette[i % palette.len()];
            let pts = by_epoch(r);
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
                .label(r.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
            chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 11))
            .draw()?;

        let flops: Vec<f64> = results
            .iter()
            .map(|r| r.forward_flops_per_image * 1e-6)
            .collect();
        let f_hi = flops.iter().copied().fold(1.0, f64::max) * 1.15;
        let finals: Vec<(f64, f64)> = results
            .iter()
            .map(|r| {
                (
                    100.0 * (r.test_accuracy_mean - r.test_accuracy_std),
                    100.0 * (r.test_accuracy_mean + r.test_accuracy_std),
                )
            })
            .collect();
        let a_lo = finals.iter().map(|f| f.0).fold(100.0, f64::min).floor() - 1.0;
        let a_hi = finals.iter().map(|f| f.1).fold(0.0, f64::max).ceil() + 1.0;
        let mut chart = ChartBuilder::on(&right)
            .caption("final test accuracy against FLOPs", ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d(0.0..f_hi, a_lo.max(0.0)..a_hi.min(100.0))?;
        chart
            .configure_mesh()
            .x_desc("forward MFLOP per image")
            .y_desc("test accuracy (%)")
            .draw()?;
        for (i, r) in results.iter().enumerate() {
            let color = palette[i % palette.len()];
            let (x, y) = (flops[i], 100.0 * r.test_accuracy_mean);
            chart.draw_series(std::iter::once(ErrorBar::new_vertical(
                x,
                finals[i].0,
                y,
                finals[i].1,
                color.filled(),
                8,
            )))?;
            chart.draw_series(std::iter::once(
                EmptyElement::at((x, y))
                    + Circle::new((0, 0), 4, color.filled())
                    + Text::new(r.label.clone(), (6, -12), ("sans-serif", 11)),
            ))?;
        }
        Ok(())
    })
}

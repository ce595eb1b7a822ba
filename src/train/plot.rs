//! `curves.png`: loss and accuracy against epoch, train and test (points and lines), with the
//! training loss through each epoch beside them, drawn with plotters. The
//! font (DejaVu Sans) is embedded, so drawing needs no system font.

use super::metrics::{EpochMetrics, LOSS_WINDOW};
use plotters::prelude::*;
use shiftgrad_tensor::{Error, Result};
use std::path::Path;
use std::sync::Once;

/// The error a drawing closure returns (plotters' errors convert into it with `?`).
pub(crate) type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// Draws a `size` PNG with `draw` (on a white background, the font registered) into a
/// temporary file beside `path`, then renames it into place; an error names `path` and
/// `what` was drawn.
pub(crate) fn render(
    path: &Path,
    size: (u32, u32),
    what: &str,
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> DrawResult,
) -> Result<()> {
    register_font();
    let tmp = path.with_extension("png.tmp.png");
    let drawn: DrawResult = (|| {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
        Ok(())
    })();
    drawn.map_err(|e| Error::file(path, format!("drawing {what}: {e}")))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::file(path, e))
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// Draws the curves of `history` to `path` (written to a temporary file, then renamed).
pub fn draw(path: &Path, history: &[EpochMetrics]) -> Result<()> {
    render(path, (1000, 420), "the curves", |root| {
        let (left, right) = root.split_horizontally(500);
        let epochs = history.len().max(1) as f64;
        let xs: Vec<f64> = history.iter().map(|m| m.epoch as f64).collect();
        // The loss through each epoch: window k of n at epoch - 1 + (k + 0.5)/n.
        let steps: Vec<(f64, f64)> = history
            .iter()
            .flat_map(|m| {
                let n = m.train_loss_steps.len() as f64;
                m.train_loss_steps
                    .iter()
                    .enumerate()
                    .map(move |(k, &l)| (m.epoch as f64 - 1.0 + (k as f64 + 0.5) / n, l))
            })
            .collect();
        let x_lo = if steps.is_empty() { 0.5 } else { 0.0 };
        let panels = [
            (
                &left,
                "loss",
                [
                    history.iter().map(|m| m.train_loss).collect::<Vec<f64>>(),
                    history.iter().map(|m| m.test_loss).collect(),
                ],
                (
                    0.0,
                    history
                        .iter()
                        .flat_map(|m| [m.train_loss, m.test_loss])
                        .chain(steps.iter().map(|s| s.1))
                        .filter(|v| v.is_finite())
                        .fold(0.1, f64::max)
                        * 1.05,
                ),
            ),
            (
                &right,
                "accuracy (%)",
                [
                    history.iter().map(|m| 100.0 * m.train_acc).collect(),
                    history.iter().map(|m| 100.0 * m.test_acc).collect(),
                ],
                (
                    history
                        .iter()
                        .flat_map(|m| [m.train_acc, m.test_acc])
                        .fold(1.0, f64::min)
                        * 100.0
                        - 2.0,
                    100.0,
                ),
            ),
        ];
        for (area, name, [train, test], (lo, hi)) in panels {
            let mut chart = ChartBuilder::on(area)
                .caption(name, ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(35)
                .y_label_area_size(50)
                .build_cartesian_2d(x_lo..epochs + 0.25, lo.max(0.0)..hi)?;
            chart.configure_mesh().x_desc("epoch").draw()?;
            if name == "loss" && !steps.is_empty() {
                let light = RGBColor(140, 170, 230);
                chart
                    .draw_series(LineSeries::new(
                        steps.iter().copied(),
                        light.stroke_width(1),
                    ))?
                    .label(format!("train, every {LOSS_WINDOW} steps"))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], light));
                if steps.len() < 20 {
                    // Too few windows for a line to show (a short run): dots.
                    chart.draw_series(steps.iter().map(|&p| Circle::new(p, 2, light.filled())))?;
                }
            }
            for (series, color, label) in [(train, BLUE, "train"), (test, RED, "test")] {
                let points: Vec<(f64, f64)> = xs.iter().copied().zip(series).collect();
                chart
                    .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                    .label(label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
                // Points as well as lines: a one-epoch run has no line to draw.
                chart.draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 4, color.filled())),
                )?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }
        Ok(())
    })
}

/// One shift-wise layer's mask for [`draw_masks`]: its name, `R` rows of `nk` slots.
pub struct LayerMask {
    pub name: String,
    pub reps: usize,
    pub nk: usize,
    /// `R*nk` entries, rep-major: entry `o*nk + j` is small kernel j of rep channel o.
    pub live: Vec<bool>,
}

/// `masks.png`: for every shift-wise layer a grid of its small kernels, one row per rep
/// channel and one column per long-range slot of the bank (dark = live), titled with the
/// layer's density; the learned sparse connection pattern of a sparse run (SPEC 1.6). A last
/// panel draws `stage_densities` (live kernels over all kernels of each stage) as bars.
/// Written to a temporary file, then renamed.
pub fn draw_masks(path: &Path, layers: &[LayerMask], stage_densities: &[f64]) -> Result<()> {
    let panels = layers.len() + 1;
    let cols = panels.clamp(1, 6);
    let rows = panels.div_ceil(cols).max(1);
    let (cell_w, cell_h) = (220u32, 380u32);
    render(
        path,
        (cell_w * cols as u32, cell_h * rows as u32),
        "the masks",
        |root| {
            let areas = root.split_evenly((rows, cols));
            for (layer, area) in layers.iter().zip(&areas) {
                let live = layer.live.iter().filter(|&&b| b).count();
                let density = live as f64 / layer.live.len().max(1) as f64;
                let title = format!("{} ({:.0} % live)", layer.name, 100.0 * density);
                let mut chart = ChartBuilder::on(area)
                    .caption(title, ("sans-serif", 13))
                    .margin(6)
                    .x_label_area_size(22)
                    .y_label_area_size(30)
                    .build_cartesian_2d(0..layer.nk, 0..layer.reps)?;
                chart
                    .configure_mesh()
                    .disable_mesh()
                    .x_desc("slot")
                    .y_desc("rep channel")
                    .label_style(("sans-serif", 10))
                    .draw()?;
                let cells = (0..layer.reps).flat_map(|o| (0..layer.nk).map(move |j| (o, j)));
                chart.draw_series(cells.map(|(o, j)| {
                    let on = layer.live[o * layer.nk + j];
                    let color = if on {
                        RGBColor(30, 60, 140)
                    } else {
                        RGBColor(235, 235, 235)
                    };
                    Rectangle::new([(j, o), (j + 1, o + 1)], color.filled())
                }))?;
            }
            if let Some(area) = areas.get(layers.len()) {
                let stages = stage_densities.len().max(1);
                let mut chart = ChartBuilder::on(area)
                    .caption("density by stage", ("sans-serif", 13))
                    .margin(6)
                    .x_label_area_size(22)
                    .y_label_area_size(34)
                    // An integer range is inclusive as a discrete axis: stages values 0 ..= stages - 1.
                    .build_cartesian_2d((0..stages - 1).into_segmented(), 0.0..100.0)?;
                let stage_label = |v: &SegmentValue<usize>| match v {
                    SegmentValue::CenterOf(s) | SegmentValue::Exact(s) if *s < stages => {
                        s.to_string()
                    }
                    _ => String::new(),
                };
                chart
                    .configure_mesh()
                    .disable_x_mesh()
                    .light_line_style(WHITE)
                    .y_labels(6)
                    .x_label_formatter(&stage_label)
                    .x_desc("stage")
                    .y_desc("% live")
                    .label_style(("sans-serif", 10))
                    .draw()?;
                chart.draw_series(stage_densities.iter().enumerate().map(|(s, &d)| {
                    let mut bar = Rectangle::new(
                        [
                            (SegmentValue::Exact(s), 0.0),
                            (SegmentValue::Exact(s + 1), 100.0 * d),
                        ],
                        RGBColor(30, 60, 140).filled(),
                    );
                    bar.set_margin(0, 0, 8, 8);
                    bar
                }))?;
            }
            Ok(())
        },
    )
}

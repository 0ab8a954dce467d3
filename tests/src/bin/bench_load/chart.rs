//! The SVG chart of the mixed phase: p99 latency of each operation, second
//! by second (drawn by `plotters`, with text left to the SVG viewer).

use std::path::Path;

use plotters::prelude::*;

use super::record::OpFigures;

/// Draws p99 by second of every operation in `ops` into `path`.
pub fn latency_over_time(path: &Path, title: &str, ops: &[OpFigures]) -> anyhow::Result<()> {
    let seconds = ops
        .iter()
        .flat_map(|o| o.timeline.iter().map(|(s, _)| *s))
        .max()
        .unwrap_or(1)
        .max(1);
    let highest = ops
        .iter()
        .flat_map(|o| o.timeline.iter().map(|(_, v)| *v))
        .fold(1.0f64, f64::max);
    let root = SVGBackend::new(path, (1400, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(draw)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .right_y_label_area_size(0)
        .build_cartesian_2d(0u32..seconds, (0.5f64..highest * 1.5).log_scale())
        .map_err(draw)?;
    chart
        .configure_mesh()
        .x_desc("second of the mixed phase")
        .y_desc("p99 latency, ms (log scale)")
        .draw()
        .map_err(draw)?;
    for (i, op) in ops.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points = op.timeline.iter().map(|&(s, v)| (s, v.max(0.5)));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(draw)?
            .label(op.name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(draw)?;
    root.present().map_err(draw)?;
    Ok(())
}

fn draw<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the chart: {e:?}")
}

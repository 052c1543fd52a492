//! The SVG charts of `cargo xtask bench --sweep`, drawn with plotters: one line per side (Rust,
//! CPython, the bare-OS limit) over the sweep's parameter, both axes logarithmic.

use plotters::prelude::*;

use super::Row;
use crate::Result;

/// Where the charts go: committed with the README that shows them.
const CHART_DIR: &str = "bench/charts";

/// One chart: its file, title, axis labels and the sweep kind it plots.
struct Chart {
    file: &'static str,
    title: &'static str,
    kind: &'static str,
    x_desc: &'static str,
    y_desc: &'static str,
}

const CHARTS: [Chart; 3] = [
    Chart {
        file: "pipe_sizes.svg",
        title: "Connection.send_bytes to a child: throughput by message size",
        kind: "sweep_pipe",
        x_desc: "message size (bytes)",
        y_desc: "MB/s",
    },
    Chart {
        file: "queue_sizes.svg",
        title: "Queue.put to a child: throughput by item size",
        kind: "sweep_queue",
        x_desc: "item size (bytes)",
        y_desc: "MB/s",
    },
    Chart {
        file: "queue_procs.svg",
        title: "Queue with P producers and P consumers",
        kind: "sweep_queue_procs",
        x_desc: "P (producer and consumer processes each)",
        y_desc: "messages/s",
    },
];

/// Draws every chart whose points are among `rows`; returns the files written.
pub(super) fn draw_all(rows: &[Row]) -> Result<Vec<String>> {
    std::fs::create_dir_all(CHART_DIR).map_err(|e| format!("cannot create {CHART_DIR}: {e}"))?;
    let mut written = Vec::new();
    for chart in &CHARTS {
        let points: Vec<(f64, [Option<f64>; 3])> = rows
            .iter()
            .filter_map(|row| {
                let (kind, param) = row.name.split_once(':')?;
                let x: f64 = param.parse().ok()?;
                (kind == chart.kind).then(|| (x, [row.median(0), row.median(1), row.median(2)]))
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        let path = format!("{CHART_DIR}/{}", chart.file);
        draw(chart, &points, &path).map_err(|e| format!("cannot draw {path}: {e}"))?;
        written.push(path);
    }
    Ok(written)
}

/// A byte count as `64 B`, `4 KiB`, `64 MiB`; other numbers as they are.
fn label(x: f64, bytes: bool) -> String {
    if !bytes {
        return format!("{x:.0}");
    }
    let (value, unit) = if x >= f64::from(1u32 << 20) {
        (x / f64::from(1u32 << 20), "MiB")
    } else if x >= 1024.0 {
        (x / 1024.0, "KiB")
    } else {
        (x, "B")
    };
    format!("{value:.0} {unit}")
}

fn draw(
    chart: &Chart,
    points: &[(f64, [Option<f64>; 3])],
    path: &str,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let xs = points.iter().map(|p| p.0);
    let ys = points.iter().flat_map(|p| p.1.iter().flatten().copied());
    let (x_lo, x_hi) = bounds(xs).ok_or("no points")?;
    let (y_lo, y_hi) = bounds(ys).ok_or("no values")?;
    let bytes = chart.kind != "sweep_queue_procs";

    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut ctx = ChartBuilder::on(&root)
        .caption(chart.title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(
            (x_lo * 0.8..x_hi * 1.25).log_scale(),
            (y_lo * 0.5..y_hi * 2.0).log_scale(),
        )?;
    ctx.configure_mesh()
        .x_desc(chart.x_desc)
        .y_desc(chart.y_desc)
        .x_label_formatter(&|x| label(*x, bytes))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;

    let sides: [(&str, RGBColor); 3] = [
        ("Rust (this library)", RGBColor(0xd9, 0x48, 0x1c)),
        ("CPython multiprocessing", RGBColor(0x30, 0x6f, 0xa8)),
        ("bare-OS limit", RGBColor(0x60, 0x60, 0x60)),
    ];
    for (i, (name, color)) in sides.iter().enumerate() {
        let line: Vec<(f64, f64)> = points
            .iter()
            .filter_map(|(x, values)| values[i].map(|y| (*x, y)))
            .collect();
        if line.is_empty() {
            continue;
        }
        let color = *color;
        ctx.draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        ctx.draw_series(line.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    ctx.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// The smallest and largest positive values.
fn bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((f64::min(lo, v), f64::max(hi, v))),
        })
}

//! PNG charts of a run (plotters, bitmap backend): completion speed by prompt length, the server
//! under concurrency, the backends side by side and the team's prompt-cache use.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::Results;
use crate::stats::Stat;

/// A chart could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("chart {file}: {message}")]
pub struct ChartError {
    /// The PNG file.
    pub file: String,
    /// What went wrong.
    pub message: String,
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type DrawResult = Result<(), String>;

const SIZE: (u32, u32) = (1200, 500);
const FONT: &str = "sans-serif";

/// One line of points with their spread.
struct Series<'a> {
    name: &'a str,
    color: RGBColor,
    points: Vec<(f64, Stat)>,
}

/// Writes every chart into `dir`; returns their file names.
pub fn write_all(results: &Results, dir: &Path) -> Result<Vec<String>, ChartError> {
    let mut written = Vec::new();
    let mut draw = |file: &str, f: &dyn Fn(&Area) -> DrawResult| -> Result<(), ChartError> {
        let path = dir.join(file);
        let root = BitMapBackend::new(&path, SIZE).into_drawing_area();
        let fail = |message: String| ChartError { file: file.into(), message };
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        f(&root).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))?;
        written.push(file.to_owned());
        Ok(())
    };
    // A chart only for what ran (`--only` may leave workloads out).
    if !results.completion.is_empty() {
        draw("completion.png", &|root| completion(results, root))?;
    }
    if !results.server.is_empty() {
        draw("server.png", &|root| server(results, root))?;
    }
    if results.backends.iter().any(|b| b.skipped.is_none()) {
        draw("backends.png", &|root| backends(results, root))?;
    }
    if let Some(t) = &results.team {
        draw("team.png", &|root| team(t, root))?;
    }
    Ok(written)
}

fn completion(r: &Results, root: &Area) -> DrawResult {
    let (left, right) = root.split_horizontally(SIZE.0 / 2);
    let x = |row: &crate::report::CompletionRow| f64::from(row.prompt_tokens);
    lines(
        &left,
        "(a) time to first token",
        "prompt tokens",
        "ms",
        &[Series {
            name: "TTFT",
            color: BLUE,
            points: r.completion.iter().map(|c| (x(c), c.ttft_ms)).collect(),
        }],
    )?;
    lines(
        &right,
        "(a) throughput",
        "prompt tokens",
        "tokens/s",
        &[
            Series {
                name: "prompt",
                color: RED,
                points: r.completion.iter().map(|c| (x(c), c.prompt_tokens_per_s)).collect(),
            },
            Series {
                name: "decode",
                color: BLUE,
                points: r.completion.iter().map(|c| (x(c), c.decode_tokens_per_s)).collect(),
            },
        ],
    )
}

fn server(r: &Results, root: &Area) -> DrawResult {
    let (left, right) = root.split_horizontally(SIZE.0 / 2);
    let x = |row: &crate::report::ServerRow| row.clients as f64;
    // agentgen first, then every `--compare` server that ran, each in its own colour.
    let colors = [GREEN, MAGENTA, CYAN, BLACK];
    let others: Vec<_> = r.server_compare.iter().filter(|c| !c.rows.is_empty()).collect();
    let mut aggregate = vec![Series {
        name: "agentgen serve",
        color: BLUE,
        points: r.server.iter().map(|s| (x(s), s.aggregate_tokens_per_s)).collect(),
    }];
    let mut latency = vec![
        Series {
            name: "agentgen p50",
            color: BLUE,
            points: r.server.iter().map(|s| (x(s), s.latency_p50_ms)).collect(),
        },
        Series {
            name: "agentgen p95",
            color: RED,
            points: r.server.iter().map(|s| (x(s), s.latency_p95_ms)).collect(),
        },
    ];
    for (other, color) in others.iter().zip(colors) {
        aggregate.push(Series {
            name: &other.name,
            color,
            points: other.rows.iter().map(|s| (x(s), s.aggregate_tokens_per_s)).collect(),
        });
        latency.push(Series {
            name: &other.name,
            color,
            points: other.rows.iter().map(|s| (x(s), s.latency_p95_ms)).collect(),
        });
    }
    lines(&left, "(c) server: aggregate decode", "concurrent clients", "tokens/s", &aggregate)?;
    lines(&right, "(c) server: request latency", "concurrent clients", "ms", &latency)
}

fn backends(r: &Results, root: &Area) -> DrawResult {
    let (left, right) = root.split_horizontally(SIZE.0 / 2);
    let measured: Vec<_> = r.backends.iter().filter(|b| b.skipped.is_none()).collect();
    let decode: Vec<(String, f64)> = measured
        .iter()
        .map(|b| (b.name.clone(), b.decode_tokens_per_s.map_or(0.0, |s| s.median)))
        .collect();
    let ttft: Vec<(String, f64)> =
        measured.iter().map(|b| (b.name.clone(), b.ttft_ms.map_or(0.0, |s| s.median))).collect();
    bars(&left, "decode tokens/s (higher is better)", "tokens/s", &decode, BLUE)?;
    bars(&right, "time to first token (lower is better)", "ms", &ttft, RED)
}

fn team(t: &crate::report::TeamResult, root: &Area) -> DrawResult {
    let data = vec![
        ("prompt tokens sent".to_owned(), t.prompt_tokens as f64),
        ("served from cache".to_owned(), t.cached_tokens as f64),
        ("evaluated".to_owned(), t.evaluated_tokens as f64),
    ];
    let title = format!(
        "(b) team of {} x {} messages: prompt tokens per conversation",
        t.agents, t.messages
    );
    bars(root, &title, "tokens", &data, GREEN)
}

/// Lines through the medians with min–max whiskers.
fn lines(area: &Area, title: &str, x_desc: &str, y_desc: &str, series: &[Series]) -> DrawResult {
    let all: Vec<&(f64, Stat)> = series.iter().flat_map(|s| &s.points).collect();
    let x_max = all.iter().map(|(x, _)| *x).fold(1.0, f64::max) * 1.08;
    let x_min = all.iter().map(|(x, _)| *x).fold(x_max, f64::min).min(0.0);
    let y_max = all.iter().map(|(_, s)| s.max).fold(1.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x_min..x_max, 0.0..y_max)
        .map_err(|e| e.to_string())?;
    chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).draw().map_err(|e| e.to_string())?;
    for s in series {
        let color = s.color;
        let medians: Vec<(f64, f64)> = s.points.iter().map(|(x, st)| (*x, st.median)).collect();
        chart
            .draw_series(LineSeries::new(medians.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(s.name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(medians.iter().map(|p| Circle::new(*p, 4, color.filled())))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                s.points
                    .iter()
                    .map(|(x, st)| PathElement::new(vec![(*x, st.min), (*x, st.max)], color)),
            )
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

/// One bar per label.
fn bars(
    area: &Area,
    title: &str,
    y_desc: &str,
    data: &[(String, f64)],
    color: RGBColor,
) -> DrawResult {
    let n = data.len().max(1) as f64;
    let y_max = data.iter().map(|(_, v)| *v).fold(1.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5..n - 0.5, 0.0..y_max)
        .map_err(|e| e.to_string())?;
    let labels: Vec<String> = data.iter().map(|(l, _)| l.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(data.len().max(1))
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(y_desc)
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(data.iter().enumerate().map(|(i, (_, v))| {
            let x = i as f64;
            Rectangle::new([(x - 0.3, 0.0), (x + 0.3, *v)], color.filled())
        }))
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(data.iter().enumerate().map(|(i, (_, v))| {
            Text::new(format!("{v:.1}"), (i as f64 - 0.1, *v + y_max * 0.02), (FONT, 16))
        }))
        .map_err(|e| e.to_string())?;
    Ok(())
}

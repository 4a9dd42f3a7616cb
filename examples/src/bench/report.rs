//! The report: sections of tables and notes, printed as text, written as Markdown,
//! and drawn as an SVG chart (plotters).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use plotters::prelude::*;

/// A table of cells already formatted for people.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Table {
        Table { headers: headers.into_iter().map(Into::into).collect(), rows: Vec::new() }
    }

    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }
}

/// One numbered part of the report (the (1)–(6)).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Section {
    pub title: String,
    pub tables: Vec<Table>,
    /// Targets met or missed, caveats, how a figure was obtained.
    pub notes: Vec<String>,
}

impl Section {
    pub fn new(title: impl Into<String>) -> Section {
        Section { title: title.into(), ..Section::default() }
    }

    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }
}

/// A bar of the chart: a case's median and its p10–p90 spread, in microseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    pub label: String,
    pub median_us: f64,
    pub p10_us: f64,
    pub p90_us: f64,
}

/// A line of the growth chart: (x, median µs) points.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub machine: Vec<(String, String)>,
    pub settings: String,
    pub sections: Vec<Section>,
    pub hot_bars: Vec<Bar>,
    pub growth: Vec<Series>,
    /// Hand-written Markdown appended to the report (the profile of the hot path,
    /// kept in `docs/bench/profile.md` so that a re-run does not lose it).
    pub appendix: Option<String>,
}

impl Report {
    pub fn to_markdown(&self, svg_name: Option<&str>) -> String {
        let mut out = String::from("# memdex benchmarks\n\n");
        out.push_str(
            "Produced by `cargo run --release -p memdex-examples --example bench`; every server runs on \
             loopback on the machine below, started by the benchmark itself. Times are medians of many \
             timed iterations after a warm-up (p10–p90 in brackets where shown).\n\n",
        );
        out.push_str("## Machine\n\n| | |\n|---|---|\n");
        for (k, v) in &self.machine {
            let _ = writeln!(out, "| {k} | {} |", v.replace('|', "\\|"));
        }
        let _ = writeln!(out, "\nSettings: {}\n", self.settings);
        if let Some(svg) = svg_name {
            let _ = writeln!(out, "![hot index scan and growth]({svg})\n");
        }
        for section in &self.sections {
            let _ = writeln!(out, "## {}\n", section.title);
            for table in &section.tables {
                out.push_str(&markdown_table(table));
                out.push('\n');
            }
            for note in &section.notes {
                let _ = writeln!(out, "- {note}");
            }
            if !section.notes.is_empty() {
                out.push('\n');
            }
        }
        if let Some(appendix) = &self.appendix {
            out.push_str(appendix.trim_end());
            out.push('\n');
        }
        out
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.machine {
            let _ = writeln!(out, "{k}: {v}");
        }
        let _ = writeln!(out, "settings: {}", self.settings);
        for section in &self.sections {
            let _ = writeln!(out, "\n== {} ==", section.title);
            for table in &section.tables {
                out.push_str(&text_table(table));
            }
            for note in &section.notes {
                let _ = writeln!(out, "  * {note}");
            }
        }
        out
    }

    /// Draws the hot-scan bars (log scale) and the growth lines side by side.
    pub fn write_svg(&self, path: &Path) -> Result<(), String> {
        let root = SVGBackend::new(path, (1100, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (left, right) = root.split_horizontally(560);
        draw_bars(&left, &self.hot_bars).map_err(|e| e.to_string())?;
        draw_growth(&right, &self.growth).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    }
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
type DrawResult = Result<(), DrawingAreaErrorKind<<SVGBackend<'static> as DrawingBackend>::ErrorType>>;

fn draw_bars(area: &Area<'_>, bars: &[Bar]) -> DrawResult {
    let max = bars.iter().map(|b| b.p90_us.max(b.median_us)).fold(1.0, f64::max) * 1.5;
    let min = bars.iter().map(|b| b.p10_us.min(b.median_us)).filter(|v| *v > 0.0).fold(max, f64::min) / 2.0;
    let n = bars.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .caption("(1) hot index scan, 100 objects: median µs (log)", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(70)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..n as f64, (min.max(0.1)..max).log_scale())?;
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 0.01 { labels.get(i).cloned().unwrap_or_default() } else { String::new() }
        })
        .y_desc("µs")
        .draw()?;
    let palette = [RGBColor(31, 119, 180), RGBColor(127, 127, 127), RGBColor(214, 39, 40), RGBColor(44, 160, 44)];
    for (i, b) in bars.iter().enumerate() {
        let x = i as f64;
        let colour = palette[i % palette.len()];
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x + 0.15, min.max(0.1)), (x + 0.85, b.median_us.max(min))],
            colour.filled(),
        )))?;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x + 0.5, b.p10_us.max(min)), (x + 0.5, b.p90_us.max(min))],
            BLACK.stroke_width(2),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{:.0}", b.median_us),
            (x + 0.3, b.median_us.max(min) * 1.08),
            ("sans-serif", 13),
        )))?;
    }
    Ok(())
}

fn draw_growth(area: &Area<'_>, series: &[Series]) -> DrawResult {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let x_max = xs.clone().fold(10.0, f64::max) * 1.3;
    let x_min = xs.fold(x_max, f64::min).max(1.0) / 1.3;
    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let y_max = ys.clone().fold(1.0, f64::max) * 1.5;
    let y_min = ys.fold(y_max, f64::min).max(0.1) / 1.5;
    let mut chart = ChartBuilder::on(area)
        .caption("(2) growth: median µs vs objects per node (log-log)", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((x_min..x_max).log_scale(), (y_min..y_max).log_scale())?;
    chart.configure_mesh().x_desc("objects per node").y_desc("µs").draw()?;
    let palette = [RGBColor(31, 119, 180), RGBColor(127, 127, 127), RGBColor(214, 39, 40), RGBColor(44, 160, 44)];
    for (i, s) in series.iter().enumerate() {
        let colour = palette[i % palette.len()];
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), colour.stroke_width(2)))?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    Ok(())
}

fn markdown_table(t: &Table) -> String {
    let mut out = String::new();
    let esc = |s: &str| s.replace('|', "\\|");
    let _ = writeln!(out, "| {} |", t.headers.iter().map(|h| esc(h)).collect::<Vec<_>>().join(" | "));
    let _ = writeln!(
        out,
        "|{}",
        t.headers.iter().enumerate().map(|(i, _)| if i == 0 { "---|" } else { "---:|" }).collect::<String>()
    );
    for row in &t.rows {
        let _ = writeln!(out, "| {} |", row.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | "));
    }
    out
}

fn text_table(t: &Table) -> String {
    let cols = t.headers.len();
    let mut widths: Vec<usize> = t.headers.iter().map(|h| h.chars().count()).collect();
    for row in &t.rows {
        for (i, c) in row.iter().enumerate().take(cols) {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::from(" ");
        for (i, c) in cells.iter().enumerate().take(cols) {
            let pad = widths[i] - c.chars().count();
            if i == 0 {
                let _ = write!(s, " {c}{} ", " ".repeat(pad));
            } else {
                let _ = write!(s, " {}{c} ", " ".repeat(pad));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(&t.headers);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&line(&rule));
    for row in &t.rows {
        out.push_str(&line(row));
    }
    out
}

/// What the report says about the machine: CPU, cores, memory, kernel, and the
/// versions of the servers and compiler.
pub fn describe_machine(memcached: &str, postgres_bin: &str) -> Vec<(String, String)> {
    let run = |cmd: &str, args: &[&str]| -> String {
        Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "unknown".into())
    };
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split(':').nth(1)))
        .map_or_else(|| "unknown".into(), |s| s.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or_else(|| "unknown".into(), |kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    vec![
        ("CPU".into(), cpu),
        ("cores available".into(), format!("{cores} (shared with other builds while measuring)")),
        ("memory".into(), mem),
        ("kernel".into(), run("uname", &["-sr"])),
        ("memcached".into(), run(memcached, &["-V"])),
        ("PostgreSQL".into(), run(&format!("{postgres_bin}/postgres"), &["-V"])),
        ("rustc".into(), run("rustc", &["-V"])),
        ("date (UTC)".into(), run("date", &["-u", "+%Y-%m-%d %H:%M"])),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut s = Section::new("1. Hot index scan");
        let mut t = Table::new(["case", "median"]);
        t.row(["floor", "10.0 µs"]);
        s.tables.push(t);
        s.note("within 1.5x");
        Report {
            machine: vec![("CPU".into(), "test | cpu".into())],
            settings: "tiny".into(),
            sections: vec![s],
            hot_bars: vec![Bar { label: "floor".into(), median_us: 10.0, p10_us: 9.0, p90_us: 12.0 }],
            growth: vec![Series { label: "memdex".into(), points: vec![(10.0, 5.0), (100.0, 20.0)] }],
            appendix: Some("## Profile\n\nhand-written".into()),
        }
    }

    #[test]
    fn markdown_has_sections_tables_and_escaped_cells() {
        let md = sample().to_markdown(Some("docs/bench/bench.svg"));
        assert!(md.contains("## 1. Hot index scan"));
        assert!(md.contains("| case | median |\n|---|---:|\n| floor | 10.0 µs |"));
        assert!(md.contains("test \\| cpu"));
        assert!(md.contains("- within 1.5x"));
        assert!(md.contains("![hot index scan and growth](docs/bench/bench.svg)"));
        assert!(md.ends_with("## Profile\n\nhand-written\n"));
    }

    #[test]
    fn text_tables_align_columns() {
        let text = text_table(&sample().sections[0].tables[0]);
        assert_eq!(text, "  case    median \n  -----  ------- \n  floor  10.0 µs \n");
    }

    #[test]
    fn svg_is_written() {
        let path = std::env::temp_dir().join(format!("memdex-bench-report-{}.svg", std::process::id()));
        sample().write_svg(&path).expect("svg");
        let svg = std::fs::read_to_string(&path).expect("written");
        let _ = std::fs::remove_file(&path);
        assert!(svg.starts_with("<svg") && svg.contains("hot index scan"));
    }
}

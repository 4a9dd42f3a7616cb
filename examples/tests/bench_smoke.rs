//! Runs the whole benchmark pipeline at tiny sizes so that it cannot rot: servers,
//! probes, baselines, the offload simulation, planning, writes, the build-cost crate
//! generator, and the Markdown and SVG writers. It asserts that the report has every
//! section and its files are written — never a timing.

use memdex_examples::bench;

use std::path::PathBuf;

#[test]
fn tiny_benchmark_produces_every_section() {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let report = bench::run(&bench::Config::tiny(workspace));
    let out = std::env::temp_dir().join(format!("memdex-bench-smoke-{}", std::process::id()));
    let (md_path, svg_path) = (out.join("BENCHMARKS.md"), out.join("bench.svg"));
    bench::write_files(&report, &md_path, &svg_path, "bench.svg").expect("report files are written");
    let markdown = std::fs::read_to_string(&md_path).expect("markdown written");
    let svg = std::fs::read_to_string(&svg_path).expect("svg written");
    let _ = std::fs::remove_dir_all(&out);

    for title in bench::SECTIONS {
        assert!(markdown.contains(&format!("## {title}")), "section {title:?} missing:\n{markdown}");
    }
    assert_eq!(report.sections.len(), bench::SECTIONS.len());
    for section in &report.sections {
        assert!(!section.tables.is_empty(), "section {:?} has no table", section.title);
        assert!(section.tables.iter().all(|t| !t.rows.is_empty()), "section {:?} has an empty table", section.title);
    }
    // The typed floor decodes every value with memdex's own codec: a change of the
    // object format that it did not follow would make it "unavailable" and drop this.
    assert!(markdown.contains("Decoding the rows alone"), "the decoding floor did not run:\n{markdown}");
    assert!(markdown.contains("## Machine"));
    assert!(svg.starts_with("<svg"));
}

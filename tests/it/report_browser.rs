//! report.html in a real browser: Debian's chromium, headless, opens the
//! report `govgate report` wrote, with no console message (the page has
//! no script, fetches nothing, and must trip no content rule), renders
//! every section of report.json with its heading, takes a screenshot
//! (`<target>/report-screenshot.png`) and prints it to PDF
//! (`<target>/report.pdf`), as a user prints it.

use crate::support::target_dir;
use std::path::Path;
use std::process::Command;

/// Runs headless chromium on `page` with `args`, a profile of its own
/// under `profile`; returns (stdout, stderr). Its stderr carries the
/// page's console messages (`--enable-logging=stderr`).
fn chromium(profile: &Path, page: &Path, args: &[String]) -> (String, String) {
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1000,1300",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs (Debian package chromium)");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(output.status.success(), "chromium {args:?}: {stderr}");
    // Console messages are logged as `INFO:CONSOLE(...)` or `:CONSOLE:`
    // lines: the report has no script, so there must be none at all.
    let console: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains(":CONSOLE"))
        .collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    (stdout, stderr)
}

#[tokio::test]
#[ignore = "needs chromium (Debian package chromium); run with: cargo test -- --include-ignored"]
async fn the_report_renders_in_headless_chromium_without_console_errors_and_prints_to_pdf() {
    let (gateway, out) = crate::report_oscal::a_report().await;
    let page = out.join("report.html");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let profile = gateway.dir.path().join("chromium-profile");
    let target = target_dir();

    // The rendered DOM holds every section of report.json, with its heading.
    let (dom, _) = chromium(&profile, &page, &["--dump-dom".to_owned()]);
    assert!(dom.contains("<h1>Period report of "), "{dom}");
    let sections: Vec<&String> = report
        .as_object()
        .unwrap()
        .keys()
        .filter(|key| *key != "format")
        .collect();
    assert!(sections.len() >= 9, "{sections:?}");
    for name in sections {
        let start = format!("<section id=\"{name}\">\n<h2>");
        assert!(dom.contains(&start), "section {name} is not rendered");
    }
    assert!(dom.contains("<svg"), "the charts are rendered");

    // A screenshot, and the page printed to PDF.
    let screenshot = target.join("report-screenshot.png");
    let pdf = target.join("report.pdf");
    for file in [&screenshot, &pdf] {
        let _ = std::fs::remove_file(file);
    }
    chromium(
        &profile,
        &page,
        &[format!("--screenshot={}", screenshot.display())],
    );
    let png = std::fs::read(&screenshot).expect("the screenshot is written");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    chromium(
        &profile,
        &page,
        &[
            format!("--print-to-pdf={}", pdf.display()),
            "--no-pdf-header-footer".to_owned(),
        ],
    );
    let printed = std::fs::read(&pdf).expect("the PDF is written");
    assert!(printed.starts_with(b"%PDF-"), "not a PDF");
    assert!(printed.len() > 20_000, "a PDF of {} bytes", printed.len());
    assert!(
        printed.windows(11).any(|w| w == b"/Type /Page"),
        "no page in the PDF"
    );
}

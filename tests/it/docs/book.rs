//! The docs book builds with mdBook, the way a reader gets it, and renders every page in
//! docs/SUMMARY.md (mdBook is built by tests/control-plane/build.sh).

#[test]
fn the_book_builds_and_renders_every_page() {
    let out = tempfile::tempdir().unwrap();
    let result = std::process::Command::new(test_cluster::tool("mdbook"))
        .arg("build")
        .arg("--dest-dir")
        .arg(out.path())
        .current_dir(crate::support::repo(""))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "mdbook build failed:\n{log}");
    assert!(
        !log.contains("WARN") && !log.contains("ERROR"),
        "mdbook warned:\n{log}"
    );
    let summary = std::fs::read_to_string(crate::support::repo("docs/SUMMARY.md")).unwrap();
    let pages: Vec<&str> = summary
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split_once(".md)").map(|(page, _)| page))
        .collect();
    assert!(pages.len() > 20, "only {} pages in SUMMARY.md", pages.len());
    for page in pages {
        let html = out.path().join(format!("{page}.html"));
        let text = std::fs::read_to_string(&html)
            .unwrap_or_else(|_| panic!("{page}.md was not rendered to {}", html.display()));
        assert!(text.contains("<h1"), "{} has no heading", html.display());
    }
}

//! The documentation as a reader meets it: the book builds (`book`), every link resolves
//! (`links`), the reference pages are rendered from the code (`reference`), and every
//! `keyfront` command the docs show is one the CLI accepts (`commands`).

mod book;
mod commands;
mod links;
mod reference;

use std::path::{Path, PathBuf};

/// Every Markdown file a reader can open: the top-level ones, docs/, examples/ and the chart's.
fn markdown_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if !path.ends_with("node_modules") {
                    walk(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut files = ["README.md", "SECURITY.md", "CHANGELOG.md"]
        .map(crate::support::repo)
        .to_vec();
    for dir in ["docs", "examples", "charts"] {
        walk(&crate::support::repo(dir), &mut files);
    }
    files
}

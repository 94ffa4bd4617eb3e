//! Rules a linter cannot see: every Rust module opens with a `//!` header
//! saying what it owns, and no test is switched off with `#[ignore]` or
//! made to pass by panicking with `#[should_panic]`.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() && name != "target" && !name.starts_with('.') {
            rust_files(&path, files);
        } else if name.ends_with(".rs") {
            files.push(path);
        }
    }
}

fn workspace_files() -> Vec<PathBuf> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    rust_files(&crates, &mut files);
    assert!(files.len() > 10, "found too few Rust files under {}", crates.display());
    files
}

#[test]
fn tidy_every_module_has_header() {
    let missing: Vec<String> = workspace_files()
        .into_iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            let first = text.lines().find(|line| !line.trim().is_empty()).unwrap_or("");
            !first.starts_with("//!")
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(missing.is_empty(), "modules without a //! header: {missing:#?}");
}

#[test]
fn tidy_no_ignored_or_should_panic_tests() {
    let this_file = Path::new(file!()).file_name().unwrap().to_owned();
    let forbidden = [concat!("#[", "ignore"), concat!("#[", "should_panic")];
    let offenders: Vec<String> = workspace_files()
        .into_iter()
        .filter(|path| path.file_name() != Some(&this_file))
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            forbidden.iter().any(|attribute| text.contains(attribute))
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "files with ignored or should_panic tests: {offenders:#?}");
}

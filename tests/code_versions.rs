//! A stored result is never served once the code that produced it changed: a small crate is
//! written to a temporary folder, run, edited the way people edit code, rebuilt and run again.
//! After each edit, the test checks whether `work(5)` computed or loaded, and what it returned.

use std::path::{Path, PathBuf};
use std::process::Command;

const MAIN: &str = r#"
mod helpers;
mod shapes;

use std::sync::atomic::{AtomicU32, Ordering};

static COMPUTED: AtomicU32 = AtomicU32::new(0);
const OFFSET: u64 = 10;

fn local_helper(x: u64) -> u64 {
    helpers::scale(x) + OFFSET
}

#[joblet::cached(dir = "cache")]
fn work(x: u64) -> u64 {
    COMPUTED.fetch_add(1, Ordering::Relaxed);
    local_helper(x) + shapes::Shape { w: x, h: 1 }.area()
}

fn unrelated() -> u64 {
    1
}

fn main() {
    let value = work(5);
    let how = if COMPUTED.load(Ordering::Relaxed) > 0 { "computed" } else { "loaded" };
    println!("{value} {how} {}", unrelated());
}
"#;

const HELPERS: &str = "pub fn scale(x: u64) -> u64 {\n    x * 3\n}\n";

const SHAPES: &str = "pub struct Shape {
    pub w: u64,
    pub h: u64,
}

impl Shape {
    pub fn area(&self) -> u64 {
        self.w * self.h * 2
    }
}
";

/// The crate under edit, and where cargo builds it.
struct Project {
    dir: tempfile::TempDir,
    target: PathBuf,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let manifest = format!(
            "[package]\nname = \"edited\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [dependencies]\njoblet = {{ path = {:?}, default-features = false }}\n\n[workspace]\n",
            root
        );
        std::fs::write(dir.path().join("Cargo.toml"), manifest).unwrap();
        // The workspace's versions, so that nothing new is resolved or downloaded.
        std::fs::copy(root.join("Cargo.lock"), dir.path().join("Cargo.lock")).unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        let project = Project {
            dir,
            // Kept between runs of this test: the dependencies build once.
            target: Path::new(env!("CARGO_TARGET_TMPDIR")).join("code-versions-target"),
        };
        project.write("src/main.rs", MAIN);
        project.write("src/helpers.rs", HELPERS);
        project.write("src/shapes.rs", SHAPES);
        project
    }

    fn write(&self, file: &str, text: &str) {
        std::fs::write(self.dir.path().join(file), text).unwrap();
    }

    /// Replaces `from` by `to` in `file`, which must contain it.
    fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.dir.path().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    /// Builds and runs the crate; returns what it printed: `<value> computed|loaded 1`.
    fn run(&self) -> String {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .args(["run", "--quiet", "--manifest-path"])
            .arg(self.dir.path().join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", &self.target)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "the edited crate failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout.trim().to_owned()
    }
}

#[test]
fn every_edit_to_reached_code_recomputes_and_no_other_does() {
    let p = Project::new();
    assert_eq!(p.run(), "35 computed 1", "scale 15 + OFFSET 10 + area 10");
    assert_eq!(p.run(), "35 loaded 1");

    // Edits that change nothing the function runs: its results stay valid.
    p.edit(
        "src/helpers.rs",
        "pub fn scale",
        "/// Scales.\n// by three\npub fn scale",
    );
    p.edit(
        "src/main.rs",
        "    helpers::scale(x) + OFFSET",
        "    helpers::scale(x)   +   OFFSET // sum",
    );
    assert_eq!(p.run(), "35 loaded 1", "comments, docs and spacing");
    p.edit(
        "src/main.rs",
        "fn unrelated() -> u64 {\n    1",
        "fn unrelated() -> u64 {\n    2",
    );
    assert_eq!(p.run(), "35 loaded 2", "an unrelated function");

    // Edits to what it reaches: each one recomputes, and the new value is the right one.
    p.edit("src/helpers.rs", "x * 3", "x * 4");
    assert_eq!(p.run(), "40 computed 2", "a helper in another module file");
    p.edit("src/main.rs", "OFFSET: u64 = 10", "OFFSET: u64 = 20");
    assert_eq!(p.run(), "50 computed 2", "a const");
    p.edit("src/shapes.rs", "self.h * 2", "self.h * 3");
    assert_eq!(p.run(), "55 computed 2", "a method");
    p.edit("src/main.rs", "OFFSET // sum", "OFFSET + 1");
    assert_eq!(p.run(), "56 computed 2", "a directly called helper");
    assert_eq!(p.run(), "56 loaded 2");

    // Back to code that ran before: its results are still there.
    p.edit("src/helpers.rs", "x * 4", "x * 3");
    p.edit("src/main.rs", "OFFSET: u64 = 20", "OFFSET: u64 = 10");
    p.edit("src/shapes.rs", "self.h * 3", "self.h * 2");
    p.edit("src/main.rs", "OFFSET + 1", "OFFSET");
    assert_eq!(p.run(), "35 loaded 2", "the first version's entry");
}

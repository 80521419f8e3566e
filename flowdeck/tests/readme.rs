//! The README's "Use it in your project" works as written: its code is the code of
//! `examples/standalone`, which CI builds outside the workspace and runs in a browser.

#[test]
fn the_readme_shows_the_standalone_example_as_it_is() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let example =
        std::fs::read_to_string(format!("{root}/examples/standalone/src/main.rs")).unwrap();
    let section = readme
        .split("## Use it in your project")
        .nth(1)
        .expect("the README has a \"Use it in your project\" section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let code = section
        .split("```rust\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the section shows the code");
    // The example's file opens with its doc comment; the code after it is the README's.
    let example: String = example
        .lines()
        .skip_while(|l| l.starts_with("//!"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        code, example,
        "README and examples/standalone/src/main.rs differ"
    );
    assert!(
        section.lines().count() < 60,
        "the section grew long: keep it short enough to copy"
    );
}

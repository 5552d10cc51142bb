//! The README's examples are real: every `amdgpu-cdi ...` command line in its code blocks parses
//! with the CLI definitions, so a renamed flag or subcommand breaks this test, not the reader.

use clap::Parser;

use crate::support::repo_root;

/// The `amdgpu-cdi` command lines of the README's code blocks, continuation lines joined.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in readme.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if !in_block {
            continue;
        }
        let code = line.split(" #").next().unwrap_or("").trim();
        if pending.is_empty() && !code.starts_with("amdgpu-cdi ") {
            continue;
        }
        match code.strip_suffix('\\') {
            Some(head) => pending.push_str(head),
            None => {
                pending.push_str(code);
                commands.push(std::mem::take(&mut pending));
            }
        }
    }
    commands
}

#[test]
fn every_readme_command_line_parses() {
    let commands = readme_commands();
    assert!(commands.len() >= 8, "README commands: {commands:?}");
    for command in &commands {
        let argv = command.split_whitespace();
        if let Err(e) = amdgpu_cdi::cli::Cli::try_parse_from(argv) {
            panic!("README command `{command}` does not parse:\n{e}");
        }
    }
}

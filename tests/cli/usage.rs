//! The top-level command line: the order of `amdgpu-cdi --help` (what users type first, the
//! plumbing last) and the typo tips of a mistyped subcommand, which never offer a hidden one.

use crate::support::amdgpu_cdi;

#[test]
fn help_lists_the_users_commands_first_and_the_plumbing_last() {
    let out = amdgpu_cdi().arg("--help").assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    insta::assert_snapshot!("help-top", stdout);
}

/// `gener` is closer to the hidden `generate-docs` than to `generate` by clap's measure, so clap
/// alone would name it first; `generate-doc` is one letter from it.
#[test]
fn typo_tips_never_name_the_hidden_generate_docs() {
    for typo in ["gener", "generate-doc", "generate-docz"] {
        amdgpu_cdi()
            .arg(typo)
            .assert()
            .code(2)
            .stdout("")
            .stderr(format!(
                "error: unrecognized subcommand '{typo}'\n\n  tip: a similar subcommand exists: \
             'generate'\n\nUsage: amdgpu-cdi <COMMAND>\n\nFor more information, try '--help'.\n"
            ));
    }
}

/// Filtering keeps clap's tips for visible subcommands, and the hidden command still runs.
#[test]
fn typo_tips_for_visible_commands_are_kept() {
    amdgpu_cdi().arg("gpu").assert().code(2).stderr(
        "error: unrecognized subcommand 'gpu'\n\n  tip: a similar subcommand exists: 'gpus'\n\n\
         Usage: amdgpu-cdi <COMMAND>\n\nFor more information, try '--help'.\n",
    );
    amdgpu_cdi()
        .args(["generate-docs", "--help"])
        .assert()
        .success();
}

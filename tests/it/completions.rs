//! `keyfront completions SHELL`: a script each shell accepts, offering every subcommand.

use std::process::Command;

fn completions(shell: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_keyfront"))
        .args(["completions", shell])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn bash_completions_parse_and_offer_every_subcommand() {
    let script = completions("bash");
    for subcommand in [
        "dev",
        "run",
        "crd",
        "emulator",
        "sign",
        "inspect",
        "iam-policy",
        "check-account",
        "status",
        "completions",
    ] {
        assert!(script.contains(subcommand), "{subcommand} is not offered");
    }
    assert!(
        script.contains("--cloudfront-endpoint"),
        "flags are offered too"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keyfront.bash");
    std::fs::write(&file, &script).unwrap();
    let checked = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
}

#[test]
fn every_shell_gets_a_script_and_an_unknown_one_is_named() {
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        assert!(completions(shell).contains("check-account"), "{shell}");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_keyfront"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bash") && stderr.contains("zsh"),
        "{stderr}"
    );
}

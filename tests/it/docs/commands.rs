//! Every `keyfront` command the docs show in a shell block is one the CLI accepts: each is
//! parsed by the real parser (`keyfront::cli::Cli`), values included, so a renamed flag or a
//! changed value format cannot leave a reader with a command that fails.

use clap::Parser as _;
use keyfront::cli::Cli;

/// The commands in a Markdown file's shell blocks: (line, words), continuations joined,
/// comments dropped, and pipelines and lists split at `|`, `&&`, `;` and redirections.
fn shell_commands(markdown: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut shell = false;
    let mut in_block = false;
    let mut pending: Option<(usize, String)> = None;
    for (index, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            in_block = !in_block;
            shell = in_block && ["sh", "bash", "shell", "console"].contains(&info.trim());
            continue;
        }
        if !shell {
            continue;
        }
        let text = trimmed.strip_prefix("$ ").unwrap_or(trimmed);
        let (start, mut joined) = pending.take().unwrap_or((index + 1, String::new()));
        joined.push_str(text);
        if let Some(open) = joined.strip_suffix('\\') {
            pending = Some((start, format!("{open} ")));
            continue;
        }
        let Some(words) = shlex::split(&joined) else {
            continue; // not a plain command (an unbalanced quote in prose-like output)
        };
        let mut command = Vec::new();
        let mut redirect = false;
        for word in words.into_iter().chain([";".to_owned()]) {
            if word.starts_with('#') && command.is_empty() && !redirect {
                break;
            }
            if word.starts_with('#') {
                out.push((start, std::mem::take(&mut command)));
                break;
            }
            if ["|", "&&", "||", ";"].contains(&word.as_str()) {
                out.push((start, std::mem::take(&mut command)));
                redirect = false;
            } else if word.starts_with('>') || word.starts_with("2>") || word == "<" {
                redirect = word.len() <= 2; // `> file`: the file is the next word
            } else if redirect {
                redirect = false;
            } else {
                command.push(word);
            }
        }
    }
    out.retain(|(_, words)| !words.is_empty());
    out
}

/// The keyfront arguments of a command, if it runs keyfront (directly or through cargo).
fn keyfront_args(words: &[String]) -> Option<Vec<String>> {
    if words[0] == "keyfront" {
        return Some(words.to_vec());
    }
    let cargo_run = words.starts_with(&["cargo".into(), "run".into()]);
    let separator = words.iter().position(|w| w == "--")?;
    // `cargo run -p kube-api-double` or `--example` runs something else.
    let other_target = words[..separator]
        .iter()
        .any(|w| ["-p", "--package", "--bin", "--example"].contains(&w.as_str()));
    (cargo_run && !other_target).then(|| {
        std::iter::once("keyfront".to_owned())
            .chain(words[separator + 1..].iter().cloned())
            .collect()
    })
}

#[test]
fn every_keyfront_command_in_the_docs_is_one_the_cli_accepts() {
    let mut refused = Vec::new();
    let mut checked = 0;
    for file in super::markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, words) in shell_commands(&text) {
            let Some(args) = keyfront_args(&words) else {
                continue;
            };
            checked += 1;
            if let Err(error) = Cli::try_parse_from(&args) {
                let first = error.to_string();
                refused.push(format!(
                    "{}:{line}: {}\n    {}",
                    file.display(),
                    args.join(" "),
                    first.lines().next().unwrap_or_default()
                ));
            }
        }
    }
    assert!(checked > 20, "only {checked} keyfront commands found");
    println!("{checked} documented keyfront commands parsed");
    assert!(
        refused.is_empty(),
        "the CLI refuses these documented commands:\n{}",
        refused.join("\n")
    );
}

#[test]
fn commands_are_read_as_a_shell_reads_them() {
    let markdown = "```sh\nkeyfront sign url --url 'https://a b' \\\n  --expires-in 1h > out.txt   # a comment\nexport X=1 && keyfront dev\n```\n```yaml\nkeyfront: not a command\n```\n";
    let commands = shell_commands(markdown);
    assert_eq!(
        commands,
        [
            (
                2,
                [
                    "keyfront",
                    "sign",
                    "url",
                    "--url",
                    "https://a b",
                    "--expires-in",
                    "1h"
                ]
                .map(String::from)
                .to_vec()
            ),
            (4, ["export", "X=1"].map(String::from).to_vec()),
            (4, ["keyfront", "dev"].map(String::from).to_vec()),
        ]
    );
    // The parser refuses what the CLI refuses, so the test above can fail.
    assert!(Cli::try_parse_from(["keyfront", "run", "--resync", "banana"]).is_err());
    assert!(Cli::try_parse_from(["keyfront", "dev", "--interval", "30d"]).is_ok());
}

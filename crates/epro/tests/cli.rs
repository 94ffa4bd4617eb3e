//! The binary's command line: `forms check` reports and exit statuses, and
//! how `serve` fails on bad configuration and bad trials (a message naming
//! the key or file, exit status 2, never a panic).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn epro(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_epro"));
    command.args(args);
    for (name, value) in envs {
        command.env(name, value);
    }
    command.output().expect("failed to run the epro binary")
}

fn workspace(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path).canonicalize().unwrap().display().to_string()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Writes a configuration whose trials directory holds `trial_folders`
/// (name → source folder, linked).
fn config_with_trials(dir: &Path, trial_folders: &[(&str, PathBuf)], extra: &str) -> PathBuf {
    let trials = dir.join("trials");
    std::fs::create_dir_all(&trials).unwrap();
    for (name, source) in trial_folders {
        std::os::unix::fs::symlink(source, trials.join(name)).unwrap();
    }
    let path = dir.join("epro.toml");
    std::fs::write(
        &path,
        format!("[http]\nlisten = \"127.0.0.1:0\"\n[trials]\ndirectory = \"trials\"\n[database]\nurl = \"sqlite://var/epro.db\"\n{extra}"),
    )
    .unwrap();
    path
}

#[test]
fn forms_check_reports_demo_forms_valid() {
    let phq9 = workspace("examples/trials/demo/lforms__phq9.json");
    let gad7 = workspace("examples/trials/demo/rkof__GAD-7.json");

    let output = epro(&["forms", "check", &phq9, &gad7], &[]);

    assert_eq!(output.status.code(), Some(0), "{}{}", stdout(&output), stderr(&output));
    let report = stdout(&output);
    assert!(report.contains("lforms__phq9.json: valid"), "{report}");
    assert!(report.contains("rkof__GAD-7.json: valid"), "{report}");
    assert!(report.contains("calculated item computed on the server"), "PHQ-9's total is evaluated: {report}");
    assert!(!report.contains("not evaluated yet"), "nothing in the demo forms is left unevaluated: {report}");
}

#[test]
fn forms_check_rejects_trailing_comma_with_position() {
    let broken = workspace("fixtures/real/rkof__SkipLogicExample.invalid.json");
    let valid = workspace("examples/trials/demo/rkof__SliderExample.json");

    let output = epro(&["forms", "check", &valid, &broken], &[]);

    assert_eq!(output.status.code(), Some(1), "one invalid file makes the exit status 1");
    let report = stdout(&output);
    assert!(report.contains("rkof__SliderExample.json: valid"), "{report}");
    assert!(report.contains("rkof__SkipLogicExample.invalid.json: invalid"), "{report}");
    assert!(report.contains("line 82, column 7"), "line and column: {report}");
}

#[test]
fn forms_check_rejects_unknown_extension() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("form.yaml");
    std::fs::write(&file, "items: []").unwrap();

    let output = epro(&["forms", "check", file.to_str().unwrap()], &[]);

    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains(".json (FHIR Questionnaire) or .toml"), "{}", stdout(&output));
}

#[test]
fn serve_refuses_half_loaded_trial() {
    let dir = tempfile::tempdir().unwrap();
    let broken_trial = dir.path().join("broken");
    std::fs::create_dir(&broken_trial).unwrap();
    std::fs::copy(workspace("fixtures/real/rkof__SkipLogicExample.invalid.json"), broken_trial.join("skip.json"))
        .unwrap();
    std::fs::write(
        broken_trial.join("trial.toml"),
        "id = \"broken\"\ntitle = { en = \"Broken\", zh-CN = \"损坏\" }\n[[forms]]\nid = \"skip\"\nversion = \"1\"\nfile = \"skip.json\"\n",
    )
    .unwrap();
    let config = config_with_trials(
        dir.path(),
        &[("demo", PathBuf::from(workspace("examples/trials/demo"))), ("broken", broken_trial)],
        "",
    );

    let output = epro(&["serve", "--config", config.to_str().unwrap()], &[]);

    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("skip.json:82:"), "names file, line and column: {message}");
    assert!(!message.contains("panicked"), "{message}");
    assert!(!dir.path().join("var/epro.db").exists(), "nothing was opened or stored");
}

#[test]
fn serve_names_bad_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_trials(dir.path(), &[], "[outbox]\nbatch_size = \"many\"\n");

    let output = epro(&["serve", "--config", config.to_str().unwrap()], &[]);

    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("outbox.batch_size"), "{message}");
    assert!(message.contains("epro.toml"), "{message}");
    assert!(!message.contains("panicked"), "{message}");
}

#[test]
fn serve_names_bad_environment_override() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_trials(dir.path(), &[], "");

    let output = epro(&["serve", "--config", config.to_str().unwrap()], &[("EPRO_HTTP__LISTEN", "nowhere")]);

    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("http.listen"), "{message}");
    assert!(message.contains("EPRO_HTTP__LISTEN"), "names the variable: {message}");
}

#[test]
fn serve_reports_missing_config_file() {
    let output = epro(&["serve", "--config", "/nonexistent/epro.toml"], &[]);

    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("/nonexistent/epro.toml"), "{}", stderr(&output));
}

#[test]
fn serve_applies_environment_override() {
    let dir = tempfile::tempdir().unwrap();
    // Hold the configured port, so the server can start only if the
    // environment variable replaces the address.
    let occupied = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = config_with_trials(
        dir.path(),
        &[("demo", PathBuf::from(workspace("examples/trials/demo")))],
        "[telemetry]\nlog_format = \"json\"\n",
    );
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("127.0.0.1:0", &occupied.local_addr().unwrap().to_string())).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_epro"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("EPRO_HTTP__LISTEN", "127.0.0.1:0")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let built = std::io::BufRead::lines(stderr)
        .map_while(Result::ok)
        .find(|line| line.contains("Server built"))
        .expect("the server must start with the overridden address");
    child.kill().unwrap();
    child.wait().unwrap();

    let event: serde_json::Value = serde_json::from_str(&built).unwrap();
    let address = event["address"].as_str().unwrap();
    assert_ne!(address, occupied.local_addr().unwrap().to_string(), "{built}");
    assert!(address.starts_with("127.0.0.1:"), "{built}");
}

#[test]
fn dead_letters_empty_on_new_database() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("var")).unwrap();
    let config = config_with_trials(dir.path(), &[("demo", PathBuf::from(workspace("examples/trials/demo")))], "");

    let output = epro(&["outbox", "dead-letters", "--config", config.to_str().unwrap()], &[]);

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "");
    assert!(stderr(&output).contains("0 dead-lettered event(s) listed"), "{}", stderr(&output));
}

#[test]
fn outbox_replay_of_unknown_event_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("var")).unwrap();
    let config = config_with_trials(dir.path(), &[("demo", PathBuf::from(workspace("examples/trials/demo")))], "");
    let unknown = "0190f0a8-3a55-7c2e-9e61-8d1b2f4a6c01";

    let output = epro(
        &[
            "outbox",
            "replay",
            "--config",
            config.to_str().unwrap(),
            "--event-id",
            unknown,
            "--reason",
            "consumer fixed",
        ],
        &[],
    );

    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains(unknown), "{}", stderr(&output));
    assert!(stderr(&output).contains("nothing was changed"), "{}", stderr(&output));
}

#[test]
fn outbox_replay_needs_a_selection_and_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("var")).unwrap();
    let config = config_with_trials(dir.path(), &[("demo", PathBuf::from(workspace("examples/trials/demo")))], "");
    let config = config.to_str().unwrap();

    let no_selection = epro(&["outbox", "replay", "--config", config, "--reason", "fixed"], &[]);
    let blank_reason = epro(&["outbox", "replay", "--config", config, "--dead-letters", "--reason", "  "], &[]);
    let both = epro(
        &[
            "outbox",
            "replay",
            "--config",
            config,
            "--dead-letters",
            "--event-id",
            "0190f0a8-3a55-7c2e-9e61-8d1b2f4a6c01",
            "--reason",
            "fixed",
        ],
        &[],
    );

    assert_eq!(no_selection.status.code(), Some(2), "{}", stderr(&no_selection));
    assert!(stderr(&no_selection).contains("--dead-letters"), "{}", stderr(&no_selection));
    assert_eq!(blank_reason.status.code(), Some(2), "{}", stderr(&blank_reason));
    assert!(stderr(&blank_reason).contains("--reason must not be blank"), "{}", stderr(&blank_reason));
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
    assert!(stderr(&both).contains("cannot be used with"), "{}", stderr(&both));
}

#[test]
fn database_commands_need_only_the_database_section() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("var")).unwrap();
    let config = dir.path().join("epro.toml");
    // No trials directory on disk and a webhook sink without its secret: the
    // server could not start, but the database commands have what they need.
    std::fs::write(
        &config,
        "[database]\nurl = \"sqlite://var/epro.db\"\n[trials]\ndirectory = \"missing\"\n\
         [outbox]\nsink = { type = \"webhook\", url = \"http://127.0.0.1:9/hook\" }\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();

    let migrate = epro(&["migrate", "--config", config], &[]);
    let listed = epro(&["outbox", "dead-letters", "--config", config], &[]);
    let serve = epro(&["serve", "--config", config], &[]);

    assert_eq!(migrate.status.code(), Some(0), "{}", stderr(&migrate));
    assert!(dir.path().join("var/epro.db").is_file(), "migrate created the database");
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    assert_eq!(serve.status.code(), Some(2), "serve still checks everything: {}", stderr(&serve));
    assert!(stderr(&serve).contains("secret"), "{}", stderr(&serve));
}

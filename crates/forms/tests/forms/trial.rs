//! Trial files, trials built from them, and the catalog.

use std::time::Duration;

use epro_forms::{AlertPolicy, Catalog, Form, Localized, LookupError, Trial, TrialFile, parse_trial_file};

use crate::common::{form, local_fixture};

const TWO_VERSIONS: &str = r#"
id = "diary-study"
title = { en = "Diary study", zh-CN = "日记研究" }

[[forms]]
id = "diary"
version = "1"
file = "forms/diary-v1.toml"

[[forms]]
id = "phq9"
version = "2024.1"
file = "phq9.json"
title = { en = "PHQ-9", zh-CN = "PHQ-9 抑郁症筛查量表" }

[[forms]]
id = "diary"
version = "2"
file = "forms/diary-v2.toml"
"#;

fn tiny_form(title: &str) -> Form {
    form(&format!("title = \"{title}\"\n[[items]]\nlink_id = \"a\"\ntype = \"boolean\"\n"))
}

fn build(file: TrialFile) -> Trial {
    let forms = file.forms.iter().map(|entry| tiny_form(&entry.file)).collect();
    Trial::from_file(file, forms).expect("form count matches")
}

fn error_paths(text: &str) -> Vec<(String, String)> {
    let errors = parse_trial_file(text).expect_err("trial file is invalid");
    errors.into_iter().map(|notice| (notice.path, notice.message)).collect()
}

#[test]
fn demo_trial_file_parses() {
    let file = parse_trial_file(&local_fixture("demo-trial.toml")).expect("valid trial file");
    assert_eq!(file.id, "demo");
    assert_eq!(file.title, Localized { en: "Demo trial".to_owned(), zh_cn: "演示试验".to_owned() });
    assert_eq!(file.forms.len(), 1);
    let entry = &file.forms[0];
    assert_eq!((entry.id.as_str(), entry.version.as_str(), entry.file.as_str()), ("phq9", "1", "lforms__phq9.json"));
    assert_eq!(entry.format(), Some(epro_forms::FormFormat::FhirJson));
    let title = entry.title.as_ref().expect("title given");
    assert_eq!(title.zh_cn, "PHQ-9 抑郁症筛查量表");
}

#[test]
fn trial_last_listed_version_is_current() {
    let trial = build(parse_trial_file(TWO_VERSIONS).expect("valid trial file"));

    let current = trial.form("diary", None).expect("diary exists");
    assert_eq!(current.version, "2");
    assert!(current.current);
    let older = trial.form("diary", Some("1")).expect("version 1 exists");
    assert!(!older.current);
    assert_eq!(older.form.title.as_deref(), Some("forms/diary-v1.toml"));
}

#[test]
fn trial_lookup_errors() {
    let trial = build(parse_trial_file(TWO_VERSIONS).expect("valid trial file"));
    assert_eq!(trial.form("gad7", None).err(), Some(LookupError::UnknownForm));
    assert_eq!(trial.form("diary", Some("3")).err(), Some(LookupError::UnknownVersion));
}

#[test]
fn trial_single_form_only_with_one_id() {
    let several = build(parse_trial_file(TWO_VERSIONS).expect("valid trial file"));
    assert!(several.single_form().is_none());

    let demo = build(parse_trial_file(&local_fixture("demo-trial.toml")).expect("valid trial file"));
    assert_eq!(demo.single_form().map(|form| form.id.as_str()), Some("phq9"));
}

#[test]
fn trial_title_falls_back_to_form() {
    let trial = build(parse_trial_file(TWO_VERSIONS).expect("valid trial file"));
    let diary = trial.form("diary", None).expect("diary exists");
    assert_eq!(diary.title.en, "forms/diary-v2.toml");
    assert_eq!(diary.title.zh_cn, "forms/diary-v2.toml");
    let phq9 = trial.form("phq9", None).expect("phq9 exists");
    assert_eq!(phq9.title.en, "PHQ-9");
}

#[test]
fn trial_from_file_checks_form_count() {
    let file = parse_trial_file(TWO_VERSIONS).expect("valid trial file");
    let error = Trial::from_file(file, vec![tiny_form("only one")]).expect_err("count mismatch");
    assert_eq!(error, "trial diary-study lists 3 forms but 1 were loaded");
}

#[test]
fn trial_file_invalid_ids_reported_with_path() {
    let text = r#"
id = "demo trial"
title = { en = "Demo", zh-CN = "演示" }

[[forms]]
id = "phq/9"
version = ""
file = "phq9.json"
"#;
    let errors = error_paths(text);
    let paths: Vec<&str> = errors.iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(paths, ["id", "forms[0].id", "forms[0].version"]);
    assert!(errors[0].1.contains("\"demo trial\" is not a valid id"));
}

#[test]
fn trial_file_id_length_limit() {
    let long = "a".repeat(65);
    let text = format!(
        "id = \"{long}\"\ntitle = {{ en = \"A\", zh-CN = \"甲\" }}\n[[forms]]\nid = \"{}\"\nversion = \"1\"\nfile = \"a.json\"\n",
        "b".repeat(64)
    );
    assert_eq!(error_paths(&text).len(), 1);
}

#[test]
fn trial_file_duplicate_version_rejected() {
    let text = r#"
id = "demo"
title = { en = "Demo", zh-CN = "演示" }
[[forms]]
id = "phq9"
version = "1"
file = "a.json"
[[forms]]
id = "phq9"
version = "1"
file = "b.json"
"#;
    assert_eq!(
        error_paths(text),
        [("forms[1]".to_owned(), "form phq9 version 1 is already listed at forms[0]".to_owned())]
    );
}

#[test]
fn trial_file_titles_need_both_languages() {
    let text = r#"
id = "demo"
title = { en = "Demo" }
[[forms]]
id = "phq9"
version = "1"
file = "a.json"
title = { en = "", zh-CN = "量表" }
"#;
    let paths: Vec<String> = error_paths(text).into_iter().map(|(path, _)| path).collect();
    assert_eq!(paths, ["title.zh-CN", "forms[0].title.en"]);
}

#[test]
fn trial_file_paths_must_stay_inside() {
    for file in ["../secret.json", "/etc/form.json", "forms/../../x.toml", "C:\\forms\\a.json", "form.xml"] {
        let text = format!(
            "id = \"demo\"\ntitle = {{ en = \"Demo\", zh-CN = \"演示\" }}\n[[forms]]\nid = \"a\"\nversion = \"1\"\nfile = '{file}'\n"
        );
        let errors = error_paths(&text);
        assert_eq!(errors.len(), 1, "{file}: {errors:?}");
        assert_eq!(errors[0].0, "forms[0].file", "{file}");
    }
}

#[test]
fn trial_file_unknown_keys_and_syntax() {
    let text = "id = \"demo\"\ntitle = { en = \"D\", zh-CN = \"演\" }\nowner = \"x\"\n[[forms]]\nid = \"a\"\nversion = \"1\"\nfile = \"a.json\"\npath = \"b\"\n";
    let paths: Vec<String> = error_paths(text).into_iter().map(|(path, _)| path).collect();
    assert_eq!(paths, ["owner", "forms[0].path"]);

    let errors = parse_trial_file("id = \"demo\"\n[[forms]\n").expect_err("syntax error");
    assert_eq!(errors[0].line, Some(2));
    assert!(errors[0].column.is_some());
}

#[test]
fn trial_file_without_forms_rejected() {
    let errors = error_paths("id = \"demo\"\ntitle = { en = \"Demo\", zh-CN = \"演示\" }\n");
    assert_eq!(errors[0].0, "forms");
}

/// A valid trial file with one form and `alerts` appended as written.
fn with_alerts(alerts: &str) -> String {
    format!(
        "id = \"demo\"\ntitle = {{ en = \"Demo\", zh-CN = \"演示\" }}\n{alerts}\n\
         [[forms]]\nid = \"a\"\nversion = \"1\"\nfile = \"a.json\"\n"
    )
}

#[test]
fn trial_alert_deadline_defaults_to_an_hour() {
    let file = parse_trial_file(TWO_VERSIONS).expect("valid trial file");
    let trial = build(file.clone());

    assert_eq!(file.alerts, AlertPolicy::default());
    assert_eq!(trial.alerts.acknowledge_within, Duration::from_secs(3600));
    assert_eq!(AlertPolicy::DEFAULT_ACKNOWLEDGE_WITHIN, Duration::from_secs(3600));
}

#[test]
fn trial_alert_deadline_in_minutes_or_seconds() {
    let cases = [
        ("[alerts]\nacknowledge_within_minutes = 30", 1800),
        ("[alerts]\nacknowledge_within_seconds = 2", 2),
        ("[alerts]\nacknowledge_within_minutes = 525600", 31_536_000),
        ("[alerts]", 3600),
    ];
    for (alerts, seconds) in cases {
        let file = parse_trial_file(&with_alerts(alerts)).unwrap_or_else(|errors| panic!("{alerts}: {errors:?}"));
        assert_eq!(file.alerts.acknowledge_within, Duration::from_secs(seconds), "{alerts}");
    }
}

#[test]
fn trial_alert_deadline_rejects_bad_values() {
    let cases = [
        ("[alerts]\nacknowledge_within_minutes = 0", "alerts.acknowledge_within_minutes", "is 0, but must be from 1"),
        ("[alerts]\nacknowledge_within_minutes = -5", "alerts.acknowledge_within_minutes", "is -5, but must be"),
        ("[alerts]\nacknowledge_within_minutes = 525601", "alerts.acknowledge_within_minutes", "to 525600"),
        ("[alerts]\nacknowledge_within_seconds = 0", "alerts.acknowledge_within_seconds", "is 0"),
        ("[alerts]\nacknowledge_within_minutes = 1.5", "alerts.acknowledge_within_minutes", "whole number"),
        ("[alerts]\nacknowledge_within_minutes = \"60\"", "alerts.acknowledge_within_minutes", "whole number"),
        ("[alerts]\nacknowledge_within_minutes = 5\nacknowledge_within_seconds = 5", "alerts", "not both"),
        ("[alerts]\nacknowledge_within_hours = 1", "alerts.acknowledge_within_hours", "unknown key"),
        ("alerts = 60", "alerts", "must be a table"),
    ];
    for (alerts, path, message) in cases {
        let errors = error_paths(&with_alerts(alerts));
        assert_eq!(errors.len(), 1, "{alerts}: {errors:?}");
        assert_eq!(errors[0].0, path, "{alerts}");
        assert!(errors[0].1.contains(message), "{alerts}: {}", errors[0].1);
    }
}

#[test]
fn catalog_finds_trials() {
    let first = build(parse_trial_file(TWO_VERSIONS).expect("valid"));
    let second = build(parse_trial_file(&local_fixture("demo-trial.toml")).expect("valid"));
    let catalog = Catalog::new(vec![first, second]).expect("valid catalog");

    assert_eq!(catalog.trial("demo").map(|trial| trial.forms.len()), Some(1));
    assert!(catalog.trial("missing").is_none());
    let ids: Vec<&str> = catalog.trials().map(|trial| trial.id.as_str()).collect();
    assert_eq!(ids, ["diary-study", "demo"]);
}

#[test]
fn catalog_rejects_duplicate_trial() {
    let first = build(parse_trial_file(&local_fixture("demo-trial.toml")).expect("valid"));
    let second = first.clone();
    let error = Catalog::new(vec![first, second]).expect_err("duplicate id");
    assert_eq!(error, "duplicate trial id \"demo\"");
}

#[test]
fn catalog_rejects_two_current_versions() {
    let mut trial = build(parse_trial_file(TWO_VERSIONS).expect("valid"));
    for published in &mut trial.forms {
        published.current = true;
    }
    let error = Catalog::new(vec![trial]).expect_err("two current versions");
    assert_eq!(error, "trial diary-study has 2 current versions of form diary, expected exactly 1");
}

#[test]
fn catalog_rejects_duplicate_form_version() {
    let mut trial = build(parse_trial_file(TWO_VERSIONS).expect("valid"));
    trial.forms[2].version = "1".to_owned();
    let error = Catalog::new(vec![trial]).expect_err("duplicate version");
    assert_eq!(error, "trial diary-study lists form diary version 1 twice");
}

#[test]
fn catalog_accepts_form_with_every_version_retired() {
    let mut trial = build(parse_trial_file(TWO_VERSIONS).expect("valid"));
    let retired_at = time::macros::datetime!(2026-12-01 09:00 UTC);
    for published in trial.forms.iter_mut().filter(|published| published.id == "diary") {
        published.current = false;
        published.retired_at = Some(retired_at);
    }

    let catalog = Catalog::new(vec![trial]).expect("a withdrawn form is valid");

    let trial = catalog.trial("diary-study").expect("trial");
    assert!(trial.current_form("diary").is_none());
    let fallback = trial.form("diary", None).expect("the last version stands in");
    assert_eq!(fallback.version, "2");
    assert_eq!(fallback.retired_at, Some(retired_at));
}

#[test]
fn catalog_rejects_retired_current_version() {
    let mut trial = build(parse_trial_file(TWO_VERSIONS).expect("valid"));
    let last = trial.forms.iter_mut().rfind(|published| published.id == "diary").expect("diary");
    last.retired_at = Some(time::macros::datetime!(2026-12-01 09:00 UTC));

    let error = Catalog::new(vec![trial]).expect_err("a retired version cannot be current");

    assert_eq!(error, "trial diary-study marks retired form diary version 2 as current");
}

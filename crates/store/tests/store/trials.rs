//! The trial catalogue: trials with sites, form versions published and retired, their
//! audit rows, the generation that other instances poll, and the triggers that keep
//! every row but a retirement immutable.

use epro_store::{
    AuditFilter, AuditRecord, AuditVerification, FORM_PUBLISHED, FORM_RETIRED, FormRetirement, FormSourceFormat,
    FormVersion, NewFormVersion, NewSite, NewTrial, PublishOutcome, RetireOutcome, SITE_ADDED, SiteAddition,
    SiteOutcome, Store, TRIAL_CREATED, TrialOutcome,
};
use sha2::{Digest, Sha256};

use crate::support::{Backend, TestStore, backend_tests};

backend_tests!(
    create_trial_writes_sites_and_audit_rows,
    create_trial_again_is_unchanged_or_conflict,
    add_site_reports_existing_site,
    publish_keeps_document_byte_for_byte,
    publish_same_content_is_unchanged,
    publish_other_content_conflicts,
    publish_into_unknown_trial_writes_nothing,
    retire_records_reason_and_audit_row,
    retire_twice_keeps_first,
    retire_unknown_version_not_found,
    retire_blank_reason_changes_nothing,
    retired_version_is_never_reused,
    snapshot_lists_versions_in_publication_order,
    second_store_sees_publish,
    catalog_rows_reject_delete_and_rewrites,
);

/// A FHIR Questionnaire with odd spacing and a non-ASCII title, so that a store that
/// reformats or re-encodes the text fails the byte-for-byte checks.
const DOCUMENT: &str = "{\"resourceType\": \"Questionnaire\",  \"title\": \"疼痛\",\n \"status\": \"active\"}\n";

fn new_trial(trial_id: &str, sites: &[(&str, &str)]) -> NewTrial {
    NewTrial {
        trial_id: trial_id.to_owned(),
        title_en: "Pain study".to_owned(),
        title_zh_cn: "疼痛研究".to_owned(),
        acknowledge_within_seconds: 3600,
        sites: sites
            .iter()
            .map(|(id, name)| NewSite {
                site_id: (*id).to_owned(),
                name: (*name).to_owned(),
                name_zh_cn: Some(format!("{name}（中文）")),
            })
            .collect(),
        actor: "operator".to_owned(),
        request_id: Some("req-trial".to_owned()),
    }
}

fn new_form(trial_id: &str, form_id: &str, version: &str, source: &str) -> NewFormVersion {
    NewFormVersion {
        trial_id: trial_id.to_owned(),
        form_id: form_id.to_owned(),
        version: version.to_owned(),
        format: FormSourceFormat::FhirJson,
        source: source.to_owned(),
        rules: r#"{"scores":[{"id":"total","expression":"ordinal_sum()"}]}"#.to_owned(),
        actor: "operator".to_owned(),
        request_id: Some("req-publish".to_owned()),
    }
}

fn retirement(form_id: &str, version: &str, reason: &str) -> FormRetirement {
    FormRetirement {
        trial_id: "T1".to_owned(),
        form_id: form_id.to_owned(),
        version: version.to_owned(),
        reason: reason.to_owned(),
        actor: "operator".to_owned(),
        request_id: Some("req-retire".to_owned()),
    }
}

async fn created_trial(store: &Store) {
    let outcome = store.create_trial(new_trial("T1", &[])).await.expect("create trial");
    assert!(matches!(outcome, TrialOutcome::Created(_)), "{outcome:?}");
}

async fn published(store: &Store, form_id: &str, version: &str, source: &str) -> FormVersion {
    match store.publish_form(new_form("T1", form_id, version, source)).await.expect("publish") {
        PublishOutcome::Published(form) => form,
        other => panic!("expected a new version, got {other:?}"),
    }
}

async fn audit_rows(store: &Store, action: &str) -> Vec<AuditRecord> {
    let filter = AuditFilter { trial_id: Some("T1".to_owned()), limit: 1000, ..AuditFilter::default() };
    let rows = store.audit_events(filter).await.expect("read audit");
    rows.into_iter().filter(|row| row.action == action).collect()
}

async fn assert_chain_intact(store: &Store) {
    let verification = store.audit_verify().await.expect("verify");
    assert!(matches!(verification, AuditVerification::Intact { .. }), "{verification:?}");
}

async fn create_trial_writes_sites_and_audit_rows(backend: Backend) {
    let test = TestStore::open(backend).await;
    let before = test.store.catalog_generation().await.expect("generation");

    let outcome =
        test.store.create_trial(new_trial("T1", &[("S02", "Site two"), ("S01", "Site one")])).await.expect("create");

    let TrialOutcome::Created(trial) = outcome else { panic!("expected a new trial, got {outcome:?}") };
    assert_eq!(trial.trial_id, "T1");
    assert_eq!(trial.title_zh_cn, "疼痛研究");
    assert_eq!(trial.acknowledge_within_seconds, 3600);
    assert_eq!(trial.created_by, "operator");
    let site_ids: Vec<&str> = trial.sites.iter().map(|site| site.site_id.as_str()).collect();
    assert_eq!(site_ids, ["S01", "S02"]);
    assert_eq!(trial.sites[0].name_zh_cn.as_deref(), Some("Site one（中文）"));
    let snapshot = test.store.catalog_snapshot().await.expect("snapshot");
    assert_eq!(snapshot.trials[0].sites[0].name_zh_cn.as_deref(), Some("Site one（中文）"), "read back");
    assert_eq!(test.store.catalog_generation().await.expect("generation"), before + 3);

    let created = audit_rows(&test.store, TRIAL_CREATED).await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].entity, "trial");
    assert_eq!(created[0].entity_id, "T1");
    let after: serde_json::Value = serde_json::from_str(created[0].after_value.as_deref().unwrap()).unwrap();
    assert_eq!(after["acknowledgeWithinSeconds"], 3600);
    assert_eq!(after["title"]["zh-CN"], "疼痛研究");
    let added = audit_rows(&test.store, SITE_ADDED).await;
    assert_eq!(added.len(), 2);
    assert_eq!(added[0].entity_id, "S02");
    assert_chain_intact(&test.store).await;
}

async fn create_trial_again_is_unchanged_or_conflict(backend: Backend) {
    let test = TestStore::open(backend).await;
    test.store.create_trial(new_trial("T1", &[("S01", "Site one")])).await.expect("create");
    let generation = test.store.catalog_generation().await.expect("generation");

    let same = test.store.create_trial(new_trial("T1", &[])).await.expect("create again");
    let same_site = test.store.create_trial(new_trial("T1", &[("S01", "Site one")])).await.expect("create again");
    let mut retitled = new_trial("T1", &[]);
    retitled.title_en = "Other study".to_owned();
    let other_title = test.store.create_trial(retitled).await.expect("create again");
    let other_site = test.store.create_trial(new_trial("T1", &[("S01", "Renamed")])).await.expect("create again");

    assert!(matches!(same, TrialOutcome::Unchanged(_)), "{same:?}");
    assert!(matches!(same_site, TrialOutcome::Unchanged(_)), "{same_site:?}");
    let TrialOutcome::Conflict(stored) = other_title else { panic!("expected a conflict, got {other_title:?}") };
    assert_eq!(stored.title_en, "Pain study");
    assert!(matches!(other_site, TrialOutcome::Conflict(_)), "{other_site:?}");
    assert_eq!(test.store.catalog_generation().await.expect("generation"), generation);
    assert_eq!(audit_rows(&test.store, TRIAL_CREATED).await.len(), 1);
}

async fn add_site_reports_existing_site(backend: Backend) {
    let test = TestStore::open(backend).await;
    created_trial(&test.store).await;
    let addition = |trial_id: &str, name: &str| SiteAddition {
        trial_id: trial_id.to_owned(),
        site: NewSite { site_id: "S07".to_owned(), name: name.to_owned(), name_zh_cn: None },
        actor: "operator".to_owned(),
        request_id: None,
    };

    let added = test.store.add_site(addition("T1", "Beijing")).await.expect("add");
    let again = test.store.add_site(addition("T1", "Beijing")).await.expect("add again");
    let renamed = test.store.add_site(addition("T1", "Shanghai")).await.expect("add renamed");
    let unknown = test.store.add_site(addition("T9", "Beijing")).await.expect("add to unknown trial");

    let SiteOutcome::Added(site) = added else { panic!("expected a new site, got {added:?}") };
    assert_eq!((site.site_id.as_str(), site.name.as_str(), site.added_by.as_str()), ("S07", "Beijing", "operator"));
    assert!(matches!(again, SiteOutcome::Unchanged(_)), "{again:?}");
    let SiteOutcome::Conflict(stored) = renamed else { panic!("expected a conflict, got {renamed:?}") };
    assert_eq!(stored.name, "Beijing");
    assert_eq!(unknown, SiteOutcome::UnknownTrial);
    assert_eq!(audit_rows(&test.store, SITE_ADDED).await.len(), 1);
    assert_eq!(test.count("trial_sites", "true").await, 1);
}

async fn publish_keeps_document_byte_for_byte(backend: Backend) {
    let test = TestStore::open(backend).await;
    created_trial(&test.store).await;
    let before = test.store.catalog_generation().await.expect("generation");

    let form = published(&test.store, "pain", "1", DOCUMENT).await;

    assert_eq!(form.source, DOCUMENT);
    assert_eq!(form.source_sha256, <[u8; 32]>::from(Sha256::digest(DOCUMENT.as_bytes())));
    assert_eq!(form.format, FormSourceFormat::FhirJson);
    assert_eq!(form.published_by, "operator");
    assert!(!form.is_retired());
    let rules: serde_json::Value = serde_json::from_str(&form.rules).expect("rules are JSON");
    assert_eq!(rules["scores"][0]["id"], "total");
    assert_eq!(test.store.catalog_generation().await.expect("generation"), before + 1);

    let rows = audit_rows(&test.store, FORM_PUBLISHED).await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].entity.as_str(), rows[0].entity_id.as_str()), ("form_version", "pain/1"));
    assert_eq!(rows[0].request_id.as_deref(), Some("req-publish"));
    let after: serde_json::Value = serde_json::from_str(rows[0].after_value.as_deref().unwrap()).unwrap();
    let hex: String = form.source_sha256.iter().map(|byte| format!("{byte:02x}")).collect();
    assert_eq!(after["sourceSha256"], hex);
    assert_eq!(after["format"], "fhir-json");
    assert!(!rows[0].after_value.as_deref().unwrap().contains("Questionnaire"), "the document stays out of audit");
    assert_chain_intact(&test.store).await;
}

async fn publish_same_content_is_unchanged(backend: Backend) {
    let test = TestStore::open(backend).await;
    created_trial(&test.store).await;
    let first = published(&test.store, "pain", "1", DOCUMENT).await;
    let generation = test.store.catalog_generation().await.expect("generation");
    let mut reformatted_rules = new_form("T1", "pain", "1", DOCUMENT);
    reformatted_rules.rules = r#"{ "scores": [ { "expression": "ordinal_sum()", "id": "total" } ] }"#.to_owned();

    let again = test.store.publish_form(new_form("T1", "pain", "1", DOCUMENT)).await.expect("publish again");
    let same_rules = test.store.publish_form(reformatted_rules).await.expect("publish again");

    assert_eq!(again, PublishOutcome::Unchanged(first.clone()));
    assert_eq!(same_rules, PublishOutcome::Unchanged(first));
    assert_eq!(test.store.catalog_generation().await.expect("generation"), generation);
    assert_eq!(audit_rows(&test.store, FORM_PUBLISHED).await.len(), 1);
}

async fn publish_other_content_conflicts(backend: Backend) {
    let test = TestStore::open(backend).await;
    created_trial(&test.store).await;
    let first = published(&test.store, "pain", "1", DOCUMENT).await;
    let mut other_rules = new_form("T1", "pain", "1", DOCUMENT);
    other_rules.rules = "{}".to_owned();
    let mut other_format = new_form("T1", "pain", "1", DOCUMENT);
    other_format.format = FormSourceFormat::NativeToml;

    let other_document = DOCUMENT.replace("疼痛", "Pain");
    let outcomes = [
        test.store.publish_form(new_form("T1", "pain", "1", &other_document)).await.expect("publish"),
        test.store.publish_form(other_rules).await.expect("publish"),
        test.store.publish_form(other_format).await.expect("publish"),
    ];

    for outcome in outcomes {
        assert_eq!(outcome, PublishOutcome::Conflict(first.clone()));
    }
    assert_eq!(test.count("form_versions", "true").await, 1);
    assert_eq!(audit_rows(&test.store, FORM_PUBLISHED).await.len(), 1);
}

async fn publish_into_unknown_trial_writes_nothing(backend: Backend) {
    let test = TestStore::open(backend).await;

    let outcome = test.store.publish_form(new_form("T9", "pain", "1", DOCUMENT)).await.expect("publish");

    assert_eq!(outcome, PublishOutcome::UnknownTrial);
    assert_eq!(test.count("form_versions", "true").await, 0);
    assert_eq!(test.store.catalog_generation().await.expect("generation"), 0);
}

async fn retire_records_reason_and_audit_row(backend: Backend) {
    let test = TestStore::open(backend).await;
    created_trial(&test.store).await;
    let form = published(&test.store, "pain", "1", DOCUMENT).await;
    let generation = test.store.catalog_generation().await.expect("generation");

    let outcome = test.store.retire_form(retirement("pain", "1", "Item 3 was worded ambiguously")).await;

    let RetireOutcome::Retired(retired) = outcome.expect("retire") else { panic!("expected a retirement") };
    let stamp = retired.retirement.clone().expect("retired");
    assert_eq!(stamp.reason, "Item 3 was worded ambiguously");
    assert_eq!(stamp.retired_by, "operator");
    assert!(stamp.retired_at >= form.published_at);
    assert_eq!(FormVersion { retirement: None, ..retired }, form, "only the retirement changed");
    assert_eq!(test.store.catalog_generation().await.expect("generation"), generation + 1);

    let rows = audit_rows(&test.store, FORM_RETIRED).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].entity_id, "pain/1");
    assert_eq!(rows[0].reason.as_deref(), Some("Item 3 was worded ambiguously"));
    assert_eq!(rows[0].before_value.as_deref(), Some(r#"{"status":"active"}"#));
    let after: serde_json::Value = serde_json::from_str(rows[0].after_value.as_deref().unwrap()).unwrap();
    assert_eq!(after["status"], "retired");
    assert_chain_intact(&test.store).await;
}

async fn retire_twice_keeps_first(backend: Backend) {
    let test = TestStore::open(backend).await;
    created_trial(&test.store).await;
    published(&test.store, "pain", "1", DOCUMENT).await;
    let RetireOutcome::Retired(first) = test.store.retire_form(retirement("pain", "1", "first")).await.unwrap() else {
        panic!("expected a retirement")
    };

    let again = test.store.retire_form(retirement("pain", "1", "second")).await.expect("retire again");

    assert_eq!(again, RetireOutcome::AlreadyRetired(first));
    assert_eq!(audit_rows(&test.store, FORM_RETIRED).await.len(), 1);
}

async fn retire_unknown_version_not_found(backend: Backend) {
    let test = TestStore::open(backend).await;
    created_trial(&test.store).await;
    published(&test.store, "pain", "1", DOCUMENT).await;

    let unknown_version = test.store.retire_form(retirement("pain", "2", "typo")).await.expect("retire");
    let unknown_form = test.store.retire_form(retirement("mood", "1", "typo")).await.expect("retire");

    assert_eq!(unknown_version, RetireOutcome::NotFound);
    assert_eq!(unknown_form, RetireOutcome::NotFound);
}

async fn retire_blank_reason_changes_nothing(backend: Backend) {
    let test = TestStore::open(backend).await;
    created_trial(&test.store).await;
    published(&test.store, "pain", "1", DOCUMENT).await;
    let generation = test.store.catalog_generation().await.expect("generation");

    let result = test.store.retire_form(retirement("pain", "1", " \t\n")).await;

    assert!(result.is_err(), "{result:?}");
    assert_eq!(test.count("form_versions", "retired_at IS NULL").await, 1);
    assert_eq!(test.store.catalog_generation().await.expect("generation"), generation);
    assert!(audit_rows(&test.store, FORM_RETIRED).await.is_empty());
}

async fn retired_version_is_never_reused(backend: Backend) {
    let test = TestStore::open(backend).await;
    created_trial(&test.store).await;
    published(&test.store, "pain", "1", DOCUMENT).await;
    test.store.retire_form(retirement("pain", "1", "withdrawn")).await.expect("retire");

    let same = test.store.publish_form(new_form("T1", "pain", "1", DOCUMENT)).await.expect("publish same");
    let other = test.store.publish_form(new_form("T1", "pain", "1", "{}")).await.expect("publish other");

    let PublishOutcome::Unchanged(same) = same else { panic!("expected the retired version, got {same:?}") };
    assert!(same.is_retired(), "republishing does not revive a retired version");
    let PublishOutcome::Conflict(other) = other else { panic!("expected a conflict, got {other:?}") };
    assert_eq!(other.source, DOCUMENT);
    assert_eq!(test.count("form_versions", "true").await, 1);
}

async fn snapshot_lists_versions_in_publication_order(backend: Backend) {
    let test = TestStore::open(backend).await;
    created_trial(&test.store).await;
    test.store.create_trial(new_trial("A0", &[("S01", "Site one")])).await.expect("create");
    published(&test.store, "pain", "2", DOCUMENT).await;
    published(&test.store, "pain", "1", DOCUMENT).await;
    test.store.retire_form(retirement("pain", "2", "superseded")).await.expect("retire");

    let snapshot = test.store.catalog_snapshot().await.expect("snapshot");

    assert_eq!(snapshot.generation, test.store.catalog_generation().await.expect("generation"));
    let trial_ids: Vec<&str> = snapshot.trials.iter().map(|trial| trial.trial_id.as_str()).collect();
    assert_eq!(trial_ids, ["A0", "T1"]);
    assert_eq!(snapshot.trials[0].sites.len(), 1);
    let versions: Vec<(&str, bool)> =
        snapshot.forms.iter().map(|form| (form.version.as_str(), form.is_retired())).collect();
    assert_eq!(versions, [("2", true), ("1", false)]);
    assert!(snapshot.forms[0].seq < snapshot.forms[1].seq);
    assert_eq!(snapshot.forms[1].source, DOCUMENT);
}

/// A second store on the same database stands in for another instance: it sees the
/// first one's publication through the generation and the snapshot.
async fn second_store_sees_publish(backend: Backend) {
    let test = TestStore::open(backend).await;
    let other = Store::open(test.config.clone()).await.expect("open a second store");
    created_trial(&test.store).await;
    let seen = other.catalog_generation().await.expect("generation");

    published(&test.store, "pain", "1", DOCUMENT).await;

    assert_eq!(other.catalog_generation().await.expect("generation"), seen + 1);
    let snapshot = other.catalog_snapshot().await.expect("snapshot");
    assert_eq!(snapshot.forms.len(), 1);
    assert_eq!(snapshot.forms[0].source, DOCUMENT);
    other.close().await;
}

async fn catalog_rows_reject_delete_and_rewrites(backend: Backend) {
    let test = TestStore::open(backend).await;
    test.store.create_trial(new_trial("T1", &[("S01", "Site one")])).await.expect("create");
    published(&test.store, "pain", "1", DOCUMENT).await;
    published(&test.store, "pain", "2", DOCUMENT).await;
    test.store.retire_form(retirement("pain", "1", "withdrawn")).await.expect("retire");
    let later = if test.is_postgres() { "now() + interval '1 day'" } else { "'2999-01-01T00:00:00.000000Z'" };

    let cases = [
        ("DELETE FROM trials".to_owned(), "never deleted"),
        ("UPDATE trials SET title_en = 'Other'".to_owned(), "immutable"),
        ("DELETE FROM trial_sites".to_owned(), "never deleted"),
        ("UPDATE trial_sites SET name = 'Other'".to_owned(), "immutable"),
        ("DELETE FROM form_versions WHERE version = '2'".to_owned(), "never deleted"),
        ("UPDATE form_versions SET source = '{}' WHERE version = '2'".to_owned(), "immutable"),
        ("UPDATE form_versions SET version = '3' WHERE version = '2'".to_owned(), "immutable"),
        (format!("UPDATE form_versions SET retired_at = {later} WHERE version = '1'"), "final"),
        ("UPDATE form_versions SET retire_reason = 'edited' WHERE version = '1'".to_owned(), "final"),
        ("UPDATE catalog_generation SET generation = 0".to_owned(), "only grows"),
        ("DELETE FROM catalog_generation".to_owned(), "never deleted"),
    ];
    for (sql, message) in cases {
        let error = test.rejected(&sql).await;
        assert!(error.contains(message), "{sql}: {error}");
    }
    assert_eq!(test.count("form_versions", "true").await, 2);
    assert_eq!(test.count("form_versions", "retired_at IS NULL").await, 1);
}

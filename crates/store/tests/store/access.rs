//! Staff accounts, enrolments and tokens: what each change stores, the credential a
//! digest finds, revocation, site filters of listings, and the audit rows, which name
//! token ids and never tokens.

use epro_store::{
    AccessChange, AccessOutcome, AlertFilter, AuditFilter, AuditVerification, ChangeOrigin, Credential,
    EnrolmentFilter, NewToken, PATIENT_ENROLLED, PATIENT_TOKENS_REVOKED, Role, RoleGrant, STAFF_CREATED,
    STAFF_TOKENS_REVOKED, TokenDigest,
};
use time::{Duration, OffsetDateTime};
use tokio::task::JoinSet;

use crate::support::{Backend, TestStore, backend_tests, new_alert, submission, submit_created};

backend_tests!(multi_thread: concurrent_enrolments_store_one);
backend_tests!(
    staff_token_finds_grants_until_revoked,
    patient_enrolment_and_token_lifecycle,
    invalid_grant_stores_nothing,
    alerts_filter_by_site,
    access_rows_reject_delete_and_rewrites,
);

fn origin() -> ChangeOrigin {
    ChangeOrigin { actor: "staff:admin-1".to_owned(), request_id: Some("req-1".to_owned()) }
}

fn token(seed: u8, days: i64) -> NewToken {
    NewToken {
        token_id: format!("00000000-0000-4000-8000-0000000000{seed:02x}"),
        digest: TokenDigest([seed; 32]),
        expires_at: Some(OffsetDateTime::now_utc() + Duration::days(days)),
    }
}

fn grant(role: Role, trial: Option<&str>, site: Option<&str>) -> RoleGrant {
    RoleGrant { role, trial_id: trial.map(str::to_owned), site_id: site.map(str::to_owned) }
}

async fn enrol(test: &TestStore, patient: &str, site: &str, seed: u8) -> AccessOutcome {
    let change = AccessChange::EnrolPatient {
        trial_id: "TRIAL-A".to_owned(),
        patient_id: patient.to_owned(),
        site_id: site.to_owned(),
        token: token(seed, 30),
    };
    test.store.change_access(change, origin()).await.expect("enrol")
}

async fn staff_token_finds_grants_until_revoked(backend: Backend) {
    let test = TestStore::open(backend).await;
    let grants = vec![grant(Role::DataManager, Some("TRIAL-A"), None), grant(Role::Admin, None, None)];
    let change = AccessChange::CreateStaff {
        staff_id: "dm-1".to_owned(),
        display_name: "Data manager".to_owned(),
        grants: grants.clone(),
        token: token(1, 30),
    };

    let created = test.store.change_access(change.clone(), origin()).await.expect("create");
    let again = test.store.change_access(change, origin()).await.expect("create again");
    let found = test.store.credential(TokenDigest([1; 32])).await.expect("look up");
    let unknown = test.store.credential(TokenDigest([9; 32])).await.expect("look up unknown");

    assert_eq!(created, AccessOutcome::Done);
    assert_eq!(again, AccessOutcome::AlreadyExists);
    assert_eq!(unknown, None);
    let Some(Credential::Staff { staff_id, grants: found_grants, revoked_at, .. }) = found else {
        panic!("the digest does not find the staff token: {found:?}");
    };
    assert_eq!(staff_id, "dm-1");
    let mut expected = grants;
    expected.sort();
    assert_eq!(found_grants, expected);
    assert_eq!(revoked_at, None);

    let revoke = AccessChange::RevokeStaffTokens { staff_id: "dm-1".to_owned() };
    let revoked = test.store.change_access(revoke.clone(), origin()).await.expect("revoke");
    let nothing_left = test.store.change_access(revoke, origin()).await.expect("revoke again");
    let after = test.store.credential(TokenDigest([1; 32])).await.expect("look up").expect("still found");

    assert_eq!(revoked, AccessOutcome::Revoked(1));
    assert_eq!(nothing_left, AccessOutcome::Revoked(0));
    assert_eq!(after.invalid_reason(OffsetDateTime::now_utc()), Some("revoked"));
    let members = test.store.staff_members(Some("dm-1"), OffsetDateTime::now_utc()).await.expect("list");
    assert_eq!(members[0].active_tokens, 0);

    let rows = test.store.audit_events(AuditFilter { limit: 10, ..AuditFilter::default() }).await.expect("audit");
    let actions: Vec<&str> = rows.iter().map(|row| row.action.as_str()).collect();
    assert_eq!(actions, [STAFF_CREATED, STAFF_TOKENS_REVOKED], "a revocation of nothing writes no row");
    assert_eq!(rows[0].actor, "staff:admin-1");
    assert!(rows[0].after_value.as_deref().unwrap().contains("\"tokenId\""), "{rows:?}");
    let hex_digest = "01".repeat(32);
    assert!(rows.iter().all(|row| !format!("{row:?}").contains(&hex_digest)), "a digest reached the audit trail");
    let verification = test.store.audit_verify().await.expect("verify");
    assert!(matches!(verification, AuditVerification::Intact { entries: 2, .. }), "{verification:?}");
}

async fn patient_enrolment_and_token_lifecycle(backend: Backend) {
    let test = TestStore::open(backend).await;

    assert_eq!(enrol(&test, "P-001", "site-01", 1).await, AccessOutcome::Done);
    assert_eq!(enrol(&test, "P-001", "site-02", 2).await, AccessOutcome::AlreadyExists);
    let issue = AccessChange::IssuePatientToken {
        trial_id: "TRIAL-A".to_owned(),
        patient_id: "P-001".to_owned(),
        token: token(3, 1),
    };
    assert_eq!(test.store.change_access(issue, origin()).await.expect("issue"), AccessOutcome::Done);
    let missing = AccessChange::IssuePatientToken {
        trial_id: "TRIAL-A".to_owned(),
        patient_id: "P-404".to_owned(),
        token: token(4, 1),
    };
    assert_eq!(test.store.change_access(missing, origin()).await.expect("issue"), AccessOutcome::NotFound);

    let enrolment = test.store.enrolment("TRIAL-A", "P-001").await.expect("read").expect("enrolled");
    assert_eq!((enrolment.site_id.as_str(), enrolment.active_tokens), ("site-01", 2));
    let Some(Credential::Patient { patient_id, site_id, .. }) =
        test.store.credential(TokenDigest([3; 32])).await.expect("look up")
    else {
        panic!("the second token does not find the patient");
    };
    assert_eq!((patient_id.as_str(), site_id.as_str()), ("P-001", "site-01"));

    let revoke = AccessChange::RevokePatientTokens { trial_id: "TRIAL-A".to_owned(), patient_id: "P-001".to_owned() };
    assert_eq!(test.store.change_access(revoke, origin()).await.expect("revoke"), AccessOutcome::Revoked(2));
    let enrolment = test.store.enrolment("TRIAL-A", "P-001").await.expect("read").expect("enrolled");
    assert_eq!(enrolment.active_tokens, 0);

    let filter = AuditFilter { patient_id: Some("P-001".to_owned()), limit: 10, ..AuditFilter::default() };
    let rows = test.store.audit_events(filter).await.expect("audit");
    let actions: Vec<&str> = rows.iter().map(|row| row.action.as_str()).collect();
    assert_eq!(actions, [PATIENT_ENROLLED, "patient.token_issued", PATIENT_TOKENS_REVOKED]);
    assert_eq!(rows[0].trial_id.as_deref(), Some("TRIAL-A"));
    let revoked_ids = rows[2].before_value.as_deref().unwrap();
    assert!(
        revoked_ids.contains(&token(1, 0).token_id) && revoked_ids.contains(&token(3, 0).token_id),
        "{revoked_ids}"
    );

    let page = EnrolmentFilter {
        trial_id: "TRIAL-A".to_owned(),
        site_id: Some("site-02".to_owned()),
        patient_id: None,
        after: None,
        limit: 10,
    };
    assert!(test.store.enrolments(page, OffsetDateTime::now_utc()).await.expect("list").is_empty());
}

async fn invalid_grant_stores_nothing(backend: Backend) {
    let test = TestStore::open(backend).await;
    let change = AccessChange::CreateStaff {
        staff_id: "inv-1".to_owned(),
        display_name: "Investigator".to_owned(),
        grants: vec![grant(Role::Investigator, Some("TRIAL-A"), None)],
        token: token(1, 30),
    };

    let result = test.store.change_access(change, origin()).await;

    assert!(result.is_err(), "an investigator without a site was stored: {result:?}");
    assert!(test.store.staff_members(None, OffsetDateTime::now_utc()).await.expect("list").is_empty());
    assert_eq!(test.store.credential(TokenDigest([1; 32])).await.expect("look up"), None);
    let rows = test.store.audit_events(AuditFilter { limit: 10, ..AuditFilter::default() }).await.expect("audit");
    assert!(rows.is_empty(), "{rows:?}");
}

async fn alerts_filter_by_site(backend: Backend) {
    let test = TestStore::open(backend).await;
    for (seed, patient) in [(1, "P-001"), (2, "P-002"), (3, "P-003")] {
        let mut new = submission(seed);
        new.patient_id = patient.to_owned();
        new.alerts = vec![new_alert(&new, "phq9-item9")];
        submit_created(&test.store, new).await;
    }
    enrol(&test, "P-001", "site-01", 1).await;
    enrol(&test, "P-002", "site-02", 2).await;

    let patients =
        |alerts: Vec<epro_store::Alert>| alerts.into_iter().map(|alert| alert.patient_id).collect::<Vec<_>>();
    let one_site = AlertFilter { site_ids: Some(vec!["site-01".to_owned()]), ..AlertFilter::new("TRIAL-A", 10) };
    let both_sites = AlertFilter {
        site_ids: Some(vec!["site-01".to_owned(), "site-02".to_owned()]),
        ..AlertFilter::new("TRIAL-A", 10)
    };

    assert_eq!(patients(test.store.alerts(one_site).await.expect("list")), ["P-001"]);
    assert_eq!(patients(test.store.alerts(both_sites).await.expect("list")), ["P-001", "P-002"]);
    let all = test.store.alerts(AlertFilter::new("TRIAL-A", 10)).await.expect("list");
    assert_eq!(patients(all), ["P-001", "P-002", "P-003"], "without a site filter the unenrolled patient shows");
}

async fn access_rows_reject_delete_and_rewrites(backend: Backend) {
    let test = TestStore::open(backend).await;
    enrol(&test, "P-001", "site-01", 1).await;

    let cases = [
        ("DELETE FROM patients", "never deleted"),
        ("UPDATE patients SET site_id = 'site-02'", "immutable"),
        ("DELETE FROM patient_tokens", "never deleted"),
        ("UPDATE patient_tokens SET expires_at = created_at", "immutable"),
    ];
    for (sql, message) in cases {
        let error = test.rejected(sql).await;
        assert!(error.contains(message), "{sql}: {error}");
    }
    assert_eq!(test.store.enrolment("TRIAL-A", "P-001").await.expect("read").unwrap().site_id, "site-01");
}

async fn concurrent_enrolments_store_one(backend: Backend) {
    let test = TestStore::open(backend).await;
    let mut tasks = JoinSet::new();
    for seed in 1..=8u8 {
        let store = test.store.clone();
        tasks.spawn(async move {
            let change = AccessChange::EnrolPatient {
                trial_id: "TRIAL-A".to_owned(),
                patient_id: "P-001".to_owned(),
                site_id: "site-01".to_owned(),
                token: token(seed, 30),
            };
            store.change_access(change, origin()).await.expect("enrol")
        });
    }
    let outcomes = tasks.join_all().await;

    let done = outcomes.iter().filter(|outcome| **outcome == AccessOutcome::Done).count();
    assert_eq!(done, 1, "{outcomes:?}");
    assert_eq!(outcomes.len() - done, 7);
    let filter = AuditFilter { limit: 20, ..AuditFilter::default() };
    assert_eq!(test.store.audit_events(filter).await.expect("audit").len(), 1);
}

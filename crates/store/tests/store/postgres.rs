//! What only the PostgreSQL backend has: migrations shared by several instances, the
//! schema version check, TRUNCATE triggers, and the behaviour when the database cannot
//! be reached or the connection is cut.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use epro_store::{SCHEMA_VERSION, Store, StoreConfig, StoreError, SubmitOutcome};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

use crate::support::{Backend, TestDatabase, TestStore, submission};

/// Upper bound for an operation that must fail fast rather than hang. It only guards
/// against a hang: the store's own pool timeout is 2 s.
const HANG_GUARD: Duration = Duration::from_secs(30);

/// Returns the server URL, or prints that the test is skipped.
fn server_url() -> Option<String> {
    match Backend::postgres()? {
        Backend::Postgres(url) => Some(url),
        Backend::Sqlite => None,
    }
}

/// Four instances starting at once on a fresh database all open, and each migration is
/// applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_concurrently() {
    let Some(url) = server_url() else { return };
    let database = TestDatabase::create(Backend::Postgres(url)).await;

    let mut opening = JoinSet::new();
    for _ in 0..4 {
        let config = database.config();
        opening.spawn(async move { Store::open(config).await });
    }
    let mut stores = Vec::new();
    while let Some(opened) = opening.join_next().await {
        stores.push(opened.expect("open task").expect("open store"));
    }

    let versions = database.rows("SELECT version, name FROM epro_schema_migrations ORDER BY version").await;
    let expected: Vec<Vec<Option<String>>> = [
        "initial",
        "rules",
        "outbox_claims",
        "audit_reason",
        "audit_chain",
        "export_sequence",
        "alerts",
        "access",
        "corrections",
        "trials",
    ]
    .iter()
    .take(SCHEMA_VERSION as usize)
    .enumerate()
    .map(|(index, name)| vec![Some((index + 1).to_string()), Some((*name).to_owned())])
    .collect();
    assert_eq!(versions, expected);
    assert_eq!(stores.len(), 4);
    for store in &stores {
        assert!(store.ping().await.is_ok());
        store.close().await;
    }
}

/// A database migrated by a newer build is rejected with an error naming the newer
/// migration.
#[tokio::test]
async fn open_rejects_newer_schema() {
    let Some(url) = server_url() else { return };
    let test = TestStore::open(Backend::Postgres(url)).await;
    test.store.close().await;
    let newer = SCHEMA_VERSION + 1;
    test.database
        .client()
        .execute(
            "INSERT INTO epro_schema_migrations (version, name) VALUES ($1, 'from_the_future')",
            &[&(newer as i32)],
        )
        .await
        .expect("record a newer migration");

    let error = Store::open(test.config.clone()).await.expect_err("a newer schema must be refused");

    let message = format!("{error:#}");
    assert!(message.contains("newer than this build"), "{message}");
    assert!(message.contains("from_the_future"), "{message}");
}

/// PostgreSQL's TRUNCATE skips row triggers, so the append-only tables have statement
/// triggers for it.
#[tokio::test]
async fn append_only_tables_reject_truncate() {
    let Some(url) = server_url() else { return };
    let test = TestStore::open(Backend::Postgres(url)).await;
    test.store.submit(submission(1)).await.expect("submit");

    for (table, message) in [
        ("audit_events", "audit_events is append-only: truncate rejected"),
        ("derived_records", "derived_records is append-only: truncate rejected"),
        ("data_query_events", "data_query_events is append-only: truncate rejected"),
        ("data_queries", "data_queries are never deleted: truncate rejected"),
        ("alerts", "alerts are never deleted: truncate rejected"),
        ("submissions", "submissions is append-only: truncate rejected"),
    ] {
        let error = test.rejected(&format!("TRUNCATE {table} CASCADE")).await;
        assert!(error.contains(message), "{table}: {error}");
    }
    assert_eq!(test.count("audit_events", "true").await, 1);
    assert_eq!(test.count("submissions", "true").await, 1);
}

/// The columns keep their constraints for writers other than the store.
#[tokio::test]
async fn constraints_reject_invalid_rows() {
    let Some(url) = server_url() else { return };
    let test = TestStore::open(Backend::Postgres(url)).await;
    let new = submission(1);
    test.store.submit(new.clone()).await.expect("submit");
    let insert_submission = |raw_answers: &str, hash_bytes: usize| {
        format!(
            "INSERT INTO submissions (
                 submission_id, trial_id, form_id, form_version, patient_id, completed_at,
                 completed_at_offset_seconds, received_at, source, raw_answers, normalized_answers,
                 content_sha256
             ) VALUES ('direct', 'T', 'f', '1', 'p', now(), 0, now(), 'native', '{raw_answers}', '{{}}',
                 decode(repeat('00', {hash_bytes}), 'hex'))"
        )
    };

    let invalid_json = test.rejected(&insert_submission("{not json", 32)).await;
    let short_hash = test.rejected(&insert_submission("{}", 31)).await;
    let empty_actor = test
        .rejected(
            "INSERT INTO audit_events (occurred_at, actor, action, entity, entity_id)
             VALUES (now(), '', 'test', 'none', '0')",
        )
        .await;
    let orphan_event = test
        .rejected(&format!(
            "INSERT INTO outbox_events (event_id, event_type, occurred_at, trial_id, patient_id, submission_id, payload)
             VALUES ('{}', 'test', now(), 'T', 'p', 'no-such-submission', '{{}}')",
            uuid::Uuid::now_v7()
        ))
        .await;
    let params_array = test
        .rejected(&format!(
            "INSERT INTO data_queries (query_id, submission_id, trial_id, form_id, form_version, patient_id,
                 item, code, rule, params, status, origin, created_at, updated_at)
             VALUES ('q', '{}', 'T', 'f', '1', 'p', '', 'code', '', '[]', 'open', 'intake', now(), now())",
            new.submission_id
        ))
        .await;

    assert!(invalid_json.contains("submissions_raw_answers_json"), "{invalid_json}");
    assert!(short_hash.contains("content_sha256"), "{short_hash}");
    assert!(empty_actor.contains("audit_events_actor_not_empty"), "{empty_actor}");
    assert!(orphan_event.contains("foreign key"), "{orphan_event}");
    assert!(params_array.contains("data_queries_params_object"), "{params_array}");
}

/// A store pointed at a port where nothing listens fails to open with
/// [`StoreError::Unavailable`] instead of hanging. It needs no server.
#[tokio::test]
async fn unreachable_database_is_unavailable() {
    let port = free_port().await;
    let config = StoreConfig::postgres(format!("postgres://postgres@127.0.0.1:{port}/postgres"));

    let opened = tokio::time::timeout(HANG_GUARD, Store::open(config)).await.expect("open must not hang");

    let error = opened.expect_err("nothing listens on the port");
    let store_error = error.downcast_ref::<StoreError>();
    assert!(matches!(store_error, Some(StoreError::Unavailable(_))), "{error:#}");
    assert!(format!("{error:#}").contains(&format!("127.0.0.1:{port}")), "{error:#}");
}

/// The URL's password never appears in the configuration's `Debug` text.
#[test]
fn postgres_config_debug_hides_password() {
    let config = StoreConfig::postgres("postgres://epro:s3cret-pw@db.internal:5433/trials");

    let text = format!("{config:?}");

    assert!(!text.contains("s3cret-pw"), "{text}");
    assert!(text.contains("db.internal:5433/trials"), "{text}");
}

/// Submissions through a proxy that is cut and restored: while cut, submits and pings
/// fail with [`StoreError::Unavailable`] rather than hang. After the restore the same
/// store works again without being reopened. Every acknowledged submission is stored,
/// and retrying the unacknowledged ones with the same ids stores each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_connection_recovers() {
    let Some(url) = server_url() else { return };
    let database = TestDatabase::create(Backend::Postgres(url.clone())).await;
    let TestDatabase::Postgres { url: database_url, .. } = &database else { unreachable!("created on PostgreSQL") };
    let proxy = Proxy::start(upstream_address(&url)).await;
    let store = Store::open(StoreConfig::postgres(through_proxy(database_url, proxy.address)))
        .await
        .expect("open through the proxy");

    let before_cut: Vec<_> = (0..50).map(submission).collect();
    for new in &before_cut {
        let outcome = store.submit(new.clone()).await.expect("submit before the cut");
        assert!(matches!(outcome, SubmitOutcome::Created(_)), "{outcome:?}");
    }

    // Cut the connection while submissions are in flight, once 20 of the 150 have
    // returned.
    let around_cut: Vec<_> = (100..250).map(submission).collect();
    let mut tasks = JoinSet::new();
    for (index, new) in around_cut.iter().cloned().enumerate() {
        let store = store.clone();
        tasks.spawn(async move { (index, store.submit(new).await) });
    }
    let mut acknowledged = HashSet::new();
    let mut unacknowledged = Vec::new();
    let mut answered = 0;
    while let Some(result) = tokio::time::timeout(HANG_GUARD, tasks.join_next()).await.expect("submits must not hang") {
        let (index, outcome) = result.expect("submit task");
        match outcome {
            Ok(SubmitOutcome::Created(_)) => {
                acknowledged.insert(index);
            }
            Err(StoreError::Unavailable(_)) => unacknowledged.push(index),
            other => panic!("submission {index}: {other:?}"),
        }
        answered += 1;
        if answered == 20 {
            proxy.cut().await;
        }
    }

    let while_cut = tokio::time::timeout(HANG_GUARD, store.submit(submission(999))).await.expect("no hang");
    let ping_while_cut = tokio::time::timeout(HANG_GUARD, store.ping()).await.expect("no hang");
    assert!(matches!(while_cut, Err(StoreError::Unavailable(_))), "{while_cut:?}");
    assert!(matches!(ping_while_cut, Err(StoreError::Unavailable(_))), "{ping_while_cut:?}");

    proxy.restore().await;
    for index in unacknowledged.iter().copied() {
        let outcome = submit_until_available(&store, &around_cut[index]).await;
        assert!(
            matches!(outcome, SubmitOutcome::Created(_) | SubmitOutcome::Replayed(_)),
            "retry of submission {index}: {outcome:?}"
        );
    }
    let after = submit_until_available(&store, &submission(1000)).await;
    assert!(matches!(after, SubmitOutcome::Created(_)), "{after:?}");

    assert!(acknowledged.len() >= 20, "only {} acknowledged before the cut", acknowledged.len());
    for new in before_cut.iter().chain(&around_cut) {
        let id = &new.submission_id;
        assert_eq!(database.count("submissions", &format!("submission_id = '{id}'")).await, 1, "submission {id}");
        assert_eq!(database.count("outbox_events", &format!("submission_id = '{id}'")).await, 1, "outbox of {id}");
    }
    store.close().await;
    proxy.stop().await;
}

/// Submits `new` until the store returns something other than
/// [`StoreError::Unavailable`], at most 50 times, 100 ms apart.
async fn submit_until_available(store: &Store, new: &epro_store::NewSubmission) -> SubmitOutcome {
    for _ in 0..50 {
        match store.submit(new.clone()).await {
            Ok(outcome) => return outcome,
            Err(StoreError::Unavailable(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(other) => panic!("submission {}: {other:?}", new.submission_id),
        }
    }
    panic!("submission {} still unavailable after 50 tries", new.submission_id);
}

/// Returns a port on 127.0.0.1 that was free a moment ago: bound, read and released.
async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// Returns the URL `url` with its host and port replaced by `proxy`.
fn through_proxy(url: &str, proxy: SocketAddr) -> String {
    let scheme_end = url.find("://").expect("TEST_EPRO_POSTGRES_URL must be a postgres:// URL for this test") + 3;
    let authority_end = url[scheme_end..].find(['/', '?']).map_or(url.len(), |position| scheme_end + position);
    let authority = &url[scheme_end..authority_end];
    let user = authority.rfind('@').map_or("", |at| &authority[..=at]);
    format!("{}{user}{proxy}{}", &url[..scheme_end], &url[authority_end..])
}

/// Returns the host and port of the server in `url`.
fn upstream_address(url: &str) -> String {
    let config = tokio_postgres::Config::from_str(url).expect("parse the server URL");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

/// A TCP proxy on 127.0.0.1 in front of the PostgreSQL server. Cutting it closes every
/// proxied connection and stops listening, so new connections are refused; restoring
/// it listens again on the same port.
struct Proxy {
    address: SocketAddr,
    upstream: String,
    /// The accept loop and every proxied connection, aborted by [`Proxy::cut`].
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let address = listener.local_addr().expect("proxy address");
        let proxy = Proxy { address, upstream, tasks: Arc::new(Mutex::new(JoinSet::new())) };
        proxy.serve(listener).await;
        proxy
    }

    async fn serve(&self, listener: TcpListener) {
        let upstream = self.upstream.clone();
        let tasks = Arc::clone(&self.tasks);
        self.tasks.lock().await.spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                let upstream = upstream.clone();
                tasks.lock().await.spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
    }

    /// Closes every connection and stops listening.
    async fn cut(&self) {
        self.tasks.lock().await.abort_all();
        // Aborted tasks drop their sockets when they are next polled; wait for that.
        while self.tasks.lock().await.join_next().await.is_some() {}
    }

    /// Listens again on the same port.
    async fn restore(&self) {
        let socket = TcpSocket::new_v4().expect("create socket");
        socket.set_reuseaddr(true).expect("set SO_REUSEADDR");
        socket.bind(self.address).expect("bind the proxy's port again");
        let listener = socket.listen(64).expect("listen");
        self.serve(listener).await;
    }

    async fn stop(self) {
        self.cut().await;
    }
}

/// A database that refuses new connections (`ALLOW_CONNECTIONS false`, SQLSTATE 55000
/// at login) is unavailable, not an internal error, and the store recovers once it
/// accepts them again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_refusing_connections_is_unavailable() {
    let Some(url) = server_url() else { return };
    let test = TestStore::open(Backend::Postgres(url.clone())).await;
    test.store.submit(submission(1)).await.expect("submit before");
    let TestDatabase::Postgres { client, .. } = &test.database else { unreachable!("created on PostgreSQL") };
    let name: String = client.query_one("SELECT current_database()", &[]).await.expect("name").get(0);
    // A database cannot refuse connections to itself, so an administrator's
    // connection to the server's own database does it.
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("admin connection");
    tokio::spawn(connection);

    admin.batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false")).await.expect("refuse logins");
    admin
        .batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ))
        .await
        .expect("end the store's connections");
    let mut refused = Vec::new();
    for pain in 2..4 {
        refused.push(tokio::time::timeout(HANG_GUARD, test.store.submit(submission(pain))).await.expect("no hang"));
    }
    let read = tokio::time::timeout(HANG_GUARD, test.store.outbox_dead_letters(None, 10)).await.expect("no hang");
    admin.batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).await.expect("allow logins");
    let after = test.store.submit(submission(5)).await;

    for result in &refused {
        assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    }
    assert!(matches!(read, Err(StoreError::Unavailable(_))), "{read:?}");
    assert!(matches!(after, Ok(SubmitOutcome::Created(_))), "{after:?}");
}

/// A statement cut off by `statement_timeout`, set in the URL's `options`, is
/// unavailable (retry later), not an internal error: here the submission waits behind
/// another session's lock on the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_is_unavailable() {
    let Some(url) = server_url() else { return };
    let database = TestDatabase::create(Backend::Postgres(url)).await;
    let TestDatabase::Postgres { url: database_url, client, .. } = &database else {
        unreachable!("created on PostgreSQL")
    };
    let separator = if database_url.contains('?') { '&' } else { '?' };
    let config = StoreConfig::postgres(format!("{database_url}{separator}options=-c%20statement_timeout%3D300"));
    let store = Store::open(config).await.expect("open store");

    client.batch_execute("BEGIN; LOCK TABLE submissions IN ACCESS EXCLUSIVE MODE").await.expect("lock the table");
    let blocked = tokio::time::timeout(HANG_GUARD, store.submit(submission(1))).await.expect("no hang");
    client.batch_execute("ROLLBACK").await.expect("release the lock");
    let after = store.submit(submission(2)).await;

    assert!(matches!(blocked, Err(StoreError::Unavailable(_))), "{blocked:?}");
    assert!(matches!(after, Ok(SubmitOutcome::Created(_))), "{after:?}");
    store.close().await;
}

/// Two instances appending to one database at once, through group commits, query
/// changes and replays, still build one chain: `seq` without gaps, every link intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_audit_chain() {
    let Some(url) = server_url() else { return };
    let database = TestDatabase::create(Backend::Postgres(url)).await;
    let first = Store::open(database.config()).await.expect("open the first instance");
    let second = Store::open(database.config()).await.expect("open the second instance");

    let mut writers = JoinSet::new();
    for (index, store) in [first.clone(), second.clone(), first.clone(), second.clone()].into_iter().enumerate() {
        writers.spawn(async move {
            for pain in 0..50 {
                let mut new = submission(index as u32 * 1_000 + pain);
                new.queries = vec![crate::support::new_query("pain", "rule_violated", "pain-max")];
                let SubmitOutcome::Created(receipt) = store.submit(new).await.expect("submit") else {
                    panic!("a new submission was not created");
                };
                let change = epro_store::QueryStatusChange {
                    query_id: receipt.queries[0].query_id.clone(),
                    status: epro_store::QueryStatus::Answered,
                    comment: "confirmed".to_owned(),
                    actor: "staff:S-001".to_owned(),
                    request_id: None,
                };
                store.update_query_status(change).await.expect("change status");
            }
        });
    }
    while let Some(written) = writers.join_next().await {
        written.expect("writer task");
    }

    let verification = first.audit_verify().await.expect("verify");
    let seqs = database.rows("SELECT seq FROM audit_events ORDER BY seq").await;

    assert!(
        matches!(verification, epro_store::AuditVerification::Intact { entries: 400, head: Some((400, _)) }),
        "{verification:?}"
    );
    let expected: Vec<Vec<Option<String>>> = (1..=400).map(|seq: i64| vec![Some(seq.to_string())]).collect();
    assert_eq!(seqs, expected, "seq numbers the rows of both instances without gaps");
    first.close().await;
    second.close().await;
}

/// `epro serve` can run as a role with the grants of `deploy/postgres/service-role.sql`
/// and `run_migrations = false`: every kind of write works, and the role cannot
/// update, delete or truncate audit rows.
#[tokio::test]
async fn service_role_writes_but_cannot_change_audit_trail() {
    use epro_store::{AccessChange, AccessOutcome, AlertAcknowledgement, ChangeOrigin, NewToken, TokenDigest};

    let Some(url) = server_url() else { return };
    let owner = TestStore::open(Backend::Postgres(url)).await;
    owner.store.close().await;
    let role = format!("epro_app_{}", uuid::Uuid::new_v4().simple());
    let grants =
        include_str!("../../../../deploy/postgres/service-role.sql").replace(":\"role\"", &format!("\"{role}\""));
    let client = owner.database.client();
    client.batch_execute(&format!("CREATE ROLE {role} LOGIN")).await.expect("create role");
    client.batch_execute(&grants).await.expect("the documented grants apply");

    let owner_url = owner.config.backend.location();
    let TestDatabase::Postgres { url: database_url, .. } = &owner.database else { unreachable!() };
    let role_url = database_url.replacen("://postgres@", &format!("://{role}@"), 1);
    assert_ne!(&role_url, database_url, "the test expects the server URL to name user postgres: {owner_url}");

    let mut migrating = StoreConfig::postgres(role_url.clone());
    migrating.run_migrations = true;
    let refused = Store::open(migrating).await;
    assert!(refused.is_err(), "the service role must not be able to run migrations");

    let mut config = StoreConfig::postgres(role_url.clone());
    config.run_migrations = false;
    let store = Store::open(config).await.expect("the service role opens a migrated database");

    let mut new = submission(1);
    new.alerts = vec![crate::support::new_alert(&new, "item9")];
    new.queries = vec![crate::support::new_query("pain", "out_of_range", "pain-range")];
    crate::support::submit_created(&store, new.clone()).await;
    let alert = store.alerts(epro_store::AlertFilter::new("TRIAL-A", 10)).await.expect("list alerts").remove(0);
    let acknowledgement = AlertAcknowledgement {
        alert_id: alert.alert_id,
        comment: "Called the patient.".to_owned(),
        actor: "staff:inv-1".to_owned(),
        request_id: None,
    };
    store.acknowledge_alert(acknowledgement).await.expect("acknowledge as the service role");
    let claimed = store.outbox_claim("relay-1", 10, Duration::from_secs(30)).await.expect("claim");
    let seqs: Vec<i64> = claimed.iter().map(|event| event.seq).collect();
    store.outbox_mark_delivered(&seqs).await.expect("mark delivered");
    let receipt = store.correct(crate::corrections::correction(&new, 1, 3, 4)).await.expect("correct");
    assert!(matches!(receipt, epro_store::CorrectionOutcome::Created(_)), "{receipt:?}");
    store.sign(crate::corrections::signature(&new, 2)).await.expect("sign");
    let token = NewToken { token_id: "t-1".to_owned(), digest: TokenDigest([7; 32]), expires_at: None };
    let origin = ChangeOrigin { actor: "cli".to_owned(), request_id: None };
    let create = AccessChange::CreateStaff {
        staff_id: "inv-1".to_owned(),
        display_name: "Investigator".to_owned(),
        grants: vec![epro_store::RoleGrant { role: epro_store::Role::Admin, trial_id: None, site_id: None }],
        token,
    };
    assert_eq!(store.change_access(create, origin.clone()).await.expect("create staff"), AccessOutcome::Done);
    let revoke = AccessChange::RevokeStaffTokens { staff_id: "inv-1".to_owned() };
    assert_eq!(store.change_access(revoke, origin).await.expect("revoke"), AccessOutcome::Revoked(1));
    store.close().await;

    let service = crate::support::connect(&role_url).await;
    for sql in ["UPDATE audit_events SET actor = 'mallory'", "DELETE FROM audit_events", "TRUNCATE audit_events"] {
        let error = service.batch_execute(sql).await.expect_err(sql);
        let message = error.as_db_error().map(|db| db.message().to_owned()).unwrap_or_else(|| error.to_string());
        assert!(message.contains("permission denied for table audit_events"), "{sql}: {message}");
    }
    drop(service);

    let verifier = Store::open(owner.config.clone()).await.expect("reopen as owner");
    let verification = verifier.audit_verify().await.expect("verify");
    assert!(matches!(verification, epro_store::AuditVerification::Intact { .. }), "{verification:?}");
    verifier.close().await;
    client.batch_execute(&format!("DROP OWNED BY {role}")).await.expect("drop the role's grants");
    client.batch_execute(&format!("DROP ROLE {role}")).await.expect("drop role");
}

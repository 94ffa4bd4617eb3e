//! `epro staff`: staff accounts and their tokens from the command line, for the
//! first administrator and for recovery when nobody can sign in.
//!
//! Tokens are printed once, as JSON on standard output, and kept only as their
//! SHA-256. Every change writes the same audit row as the API, with actor `cli`.

use anyhow::{Context as _, bail};
use epro_http::auth::{TokenKind, new_token};
use epro_store::{AccessChange, AccessOutcome, ChangeOrigin, NewToken, Store};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cli::StaffCommand;

/// Actor of the audit rows written by `epro staff`.
const CLI_ACTOR: &str = "cli";

/// Runs one `epro staff` subcommand.
///
/// # Errors
///
/// Fails when the configuration or the database cannot be opened, the account
/// exists (create) or does not (issue, revoke), or the write fails.
pub fn run(command: StaffCommand) -> anyhow::Result<()> {
    match command {
        StaffCommand::Create { config, id, name, roles, expires_in_days } => {
            crate::outbox_cli::with_store(&config, async |store| {
                let (token, new_token) = token(expires_in_days)?;
                let change = AccessChange::CreateStaff {
                    staff_id: id.clone(),
                    display_name: name.clone(),
                    grants: roles.clone(),
                    token: new_token.clone(),
                };
                match change_access(store, change).await? {
                    AccessOutcome::Done => print_token(&id, &token, &new_token),
                    AccessOutcome::AlreadyExists => {
                        bail!("staff account {id} exists already; use `epro staff issue-token --id {id}`")
                    }
                    outcome => bail!("unexpected outcome {outcome:?}"),
                }
            })
        }
        StaffCommand::IssueToken { config, id, expires_in_days } => {
            crate::outbox_cli::with_store(&config, async |store| {
                let (token, new_token) = token(expires_in_days)?;
                let change = AccessChange::IssueStaffToken { staff_id: id.clone(), token: new_token.clone() };
                match change_access(store, change).await? {
                    AccessOutcome::Done => print_token(&id, &token, &new_token),
                    AccessOutcome::NotFound => bail!("no staff account has id {id}; see `epro staff list`"),
                    outcome => bail!("unexpected outcome {outcome:?}"),
                }
            })
        }
        StaffCommand::RevokeTokens { config, id } => crate::outbox_cli::with_store(&config, async |store| {
            let change = AccessChange::RevokeStaffTokens { staff_id: id.clone() };
            match change_access(store, change).await? {
                AccessOutcome::Revoked(revoked) => {
                    println!("{}", json!({ "staffId": id, "revoked": revoked }));
                    Ok(())
                }
                AccessOutcome::NotFound => bail!("no staff account has id {id}; see `epro staff list`"),
                outcome => bail!("unexpected outcome {outcome:?}"),
            }
        }),
        StaffCommand::List { config } => crate::outbox_cli::with_store(&config, async |store| {
            let members = store.staff_members(None, OffsetDateTime::now_utc()).await.context("failed to list staff")?;
            for member in members {
                let roles: Vec<_> = member
                    .grants
                    .iter()
                    .map(|grant| json!({ "role": grant.role.as_str(), "trialId": grant.trial_id, "siteId": grant.site_id }))
                    .collect();
                println!(
                    "{}",
                    json!({
                        "staffId": member.staff_id,
                        "displayName": member.display_name,
                        "roles": roles,
                        "activeTokens": member.active_tokens,
                    })
                );
            }
            Ok(())
        }),
    }
}

fn token(expires_in_days: u32) -> anyhow::Result<(String, NewToken)> {
    let (token, digest) = new_token(TokenKind::Staff)?;
    let expires_at = OffsetDateTime::now_utc() + time::Duration::days(i64::from(expires_in_days));
    let token_id = uuid::Uuid::new_v4().hyphenated().to_string();
    Ok((token, NewToken { token_id, digest, expires_at: Some(expires_at) }))
}

async fn change_access(store: &Store, change: AccessChange) -> anyhow::Result<AccessOutcome> {
    let origin = ChangeOrigin { actor: CLI_ACTOR.to_owned(), request_id: None };
    store.change_access(change, origin).await.context("failed to write the change")
}

fn print_token(staff_id: &str, token: &str, new_token: &NewToken) -> anyhow::Result<()> {
    let expires_at = new_token.expires_at.map(|at| at.format(&Rfc3339)).transpose()?;
    println!(
        "{}",
        json!({ "staffId": staff_id, "token": token, "tokenId": new_token.token_id, "expiresAt": expires_at })
    );
    eprintln!("epro: the token is shown only now; store it in a password manager");
    Ok(())
}

//! Reads of `data_queries`: one query by id, the queries of one submission, and the
//! filtered listing by trial with its `query_id` cursor.

use anyhow::Context as _;
use rusqlite::types::ToSql;
use rusqlite::{Connection, OptionalExtension as _, Row};

use crate::columns::parse_timestamp;
use crate::model::{DataQuery, QueryFilter};
use crate::reader::site_condition;

/// Column list shared by every read of `data_queries`, in the order
/// [`QueryColumns::from_row`] expects.
const QUERY_COLUMNS: &str = "query_id, submission_id, trial_id, form_id, form_version, patient_id,
    item, code, rule, params, status, origin, created_at, updated_at, version";

/// Reads one data query by id.
///
/// # Errors
///
/// Fails on a database error or a row that this crate could not have written.
pub(crate) fn data_query(connection: &Connection, query_id: &str) -> anyhow::Result<Option<DataQuery>> {
    let columns = connection
        .prepare_cached(&format!("SELECT {QUERY_COLUMNS} FROM data_queries WHERE query_id = ?1"))?
        .query_row([query_id], QueryColumns::from_row)
        .optional()
        .with_context(|| format!("failed to read data query {query_id}"))?;
    columns.map(QueryColumns::decode).transpose()
}

/// Reads every data query of one submission, in `query_id` order.
///
/// # Errors
///
/// Fails on a database error or a row that this crate could not have written.
pub(crate) fn submission_queries(connection: &Connection, submission_id: &str) -> anyhow::Result<Vec<DataQuery>> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {QUERY_COLUMNS} FROM data_queries WHERE submission_id = ?1 ORDER BY query_id"
    ))?;
    let rows = statement
        .query_map([submission_id], QueryColumns::from_row)
        .with_context(|| format!("failed to query data queries of submission {submission_id}"))?;
    collect(rows)
}

/// Reads up to `filter.limit` data queries of a trial that match every filter given, in
/// `query_id` order after the cursor.
///
/// Only the conditions of the filters given are put into the statement, so that SQLite
/// can choose the index for exactly those conditions.
///
/// # Errors
///
/// Fails on a database error or a row that this crate could not have written.
pub(crate) fn data_queries(connection: &Connection, filter: &QueryFilter) -> anyhow::Result<Vec<DataQuery>> {
    let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
    let status = filter.status.map(|status| status.as_str());

    let mut sql = format!("SELECT {QUERY_COLUMNS} FROM data_queries WHERE trial_id = ?");
    let mut values: Vec<&dyn ToSql> = vec![&filter.trial_id];
    if let Some(status) = &status {
        sql.push_str(" AND status = ?");
        values.push(status);
    }
    if let Some(form_id) = &filter.form_id {
        sql.push_str(" AND form_id = ?");
        values.push(form_id);
    }
    if let Some(patient_id) = &filter.patient_id {
        sql.push_str(" AND patient_id = ?");
        values.push(patient_id);
    }
    let site_condition = filter.site_ids.as_ref().map(|site_ids| site_condition(site_ids.len()));
    if let (Some(condition), Some(site_ids)) = (&site_condition, &filter.site_ids) {
        sql.push_str(condition);
        values.push(&filter.trial_id);
        values.extend(site_ids.iter().map(|site_id| site_id as &dyn ToSql));
    }
    if let Some(item) = &filter.item {
        sql.push_str(" AND item = ?");
        values.push(item);
    }
    if let Some(after) = &filter.after {
        sql.push_str(" AND query_id > ?");
        values.push(after);
    }
    sql.push_str(" ORDER BY query_id LIMIT ?");
    values.push(&limit);

    let mut statement = connection.prepare_cached(&sql)?;
    let rows = statement
        .query_map(values.as_slice(), QueryColumns::from_row)
        .with_context(|| format!("failed to query data queries of trial {}", filter.trial_id))?;
    collect(rows)
}

fn collect(rows: impl Iterator<Item = rusqlite::Result<QueryColumns>>) -> anyhow::Result<Vec<DataQuery>> {
    let mut queries = Vec::new();
    for row in rows {
        let columns = row.context("failed to read data query")?;
        queries.push(columns.decode()?);
    }
    Ok(queries)
}

/// A `data_queries` row as stored, before decoding.
struct QueryColumns {
    query_id: String,
    submission_id: String,
    trial_id: String,
    form_id: String,
    form_version: String,
    patient_id: String,
    item: String,
    code: String,
    rule: String,
    params: String,
    status: String,
    origin: String,
    created_at: String,
    updated_at: String,
    version: u32,
}

impl QueryColumns {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(QueryColumns {
            query_id: row.get(0)?,
            submission_id: row.get(1)?,
            trial_id: row.get(2)?,
            form_id: row.get(3)?,
            form_version: row.get(4)?,
            patient_id: row.get(5)?,
            item: row.get(6)?,
            code: row.get(7)?,
            rule: row.get(8)?,
            params: row.get(9)?,
            status: row.get(10)?,
            origin: row.get(11)?,
            created_at: row.get(12)?,
            updated_at: row.get(13)?,
            version: row.get(14)?,
        })
    }

    fn decode(self) -> anyhow::Result<DataQuery> {
        let query_id = self.query_id.clone();
        self.decode_fields().with_context(|| format!("invalid stored data query {query_id}"))
    }

    fn decode_fields(self) -> anyhow::Result<DataQuery> {
        Ok(DataQuery {
            query_id: self.query_id,
            submission_id: self.submission_id,
            trial_id: self.trial_id,
            form_id: self.form_id,
            form_version: self.form_version,
            patient_id: self.patient_id,
            version: self.version,
            item: self.item,
            code: self.code,
            rule: self.rule,
            params: self.params,
            status: self.status.parse()?,
            origin: self.origin.parse()?,
            created_at: parse_timestamp(&self.created_at)?,
            updated_at: parse_timestamp(&self.updated_at)?,
        })
    }
}

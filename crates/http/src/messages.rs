//! The message catalogue: the text a patient app, site staff or an operator
//! reads for every error code, in Simplified Chinese and English.
//!
//! Every message names the field and says how to fix it. Codes and JSON keys
//! stay English in both languages; only the sentences change. Adding an
//! error variant without a message here fails to compile, because every
//! match below is exhaustive.

use epro_forms::{Expected, Hint, Localized, Problem};

use crate::admission::Limit;
use crate::error::{ApiError, Detail, EnvelopeProblem, FieldError};
use crate::language::Language;

/// Renders the top-level message of an error response.
pub fn error_message(language: Language, error: &ApiError) -> String {
    use Language::{En, ZhCn};
    match (error, language) {
        (ApiError::InvalidJson { line, column }, En) => {
            format!("The request body is not valid JSON (line {line}, column {column}). Fix the JSON syntax and send it again.")
        }
        (ApiError::InvalidJson { line, column }, ZhCn) => {
            format!("请求正文不是有效的 JSON（第 {line} 行，第 {column} 列）。请修正 JSON 语法后重新提交。")
        }
        (ApiError::NestingTooDeep { max_depth }, En) => {
            format!("The request body nests arrays or objects more than {max_depth} levels deep. Flatten the data.")
        }
        (ApiError::NestingTooDeep { max_depth }, ZhCn) => {
            format!("请求正文中数组或对象的嵌套超过 {max_depth} 层。请减少嵌套层级。")
        }
        (ApiError::InvalidEnvelope(errors), En) => {
            format!("The request has {} invalid field(s); see errors for each one.", errors.len())
        }
        (ApiError::InvalidEnvelope(errors), ZhCn) => {
            format!("请求中有 {} 个字段无效，详见 errors 中的逐项说明。", errors.len())
        }
        (ApiError::Unauthorized, En) => "A valid token is required: send Authorization: Bearer <token>. Staff tokens start with epro_s_, patient tokens with epro_p_. An expired or revoked token needs a new one: patients ask their site, staff ask an administrator.".to_owned(),
        (ApiError::Unauthorized, ZhCn) => "需要有效的令牌：请通过 Authorization: Bearer <令牌> 请求头发送。工作人员令牌以 epro_s_ 开头，受试者令牌以 epro_p_ 开头。令牌过期或被吊销时需要新令牌：受试者请联系研究中心，工作人员请联系管理员。".to_owned(),
        (ApiError::Forbidden { permission: crate::auth::Permission::ReadAudit }, En) => {
            "Your token does not allow this request: the whole audit trail is for administrators. Data managers and monitors add trialId=<their trial> to read that trial's rows.".to_owned()
        }
        (ApiError::Forbidden { permission: crate::auth::Permission::ReadAudit }, ZhCn) => {
            "您的令牌无权执行此请求：完整的稽查轨迹仅供管理员读取。数据管理员和监查员请加上 trialId=<所负责的试验> 以读取该试验的记录。".to_owned()
        }
        (ApiError::Forbidden { permission }, En) => format!(
            "Your token does not allow this request: it needs the permission {permission} for this trial, site or patient. Ask an administrator for the role you need; a patient token works only for its own patient and trial."
        ),
        (ApiError::Forbidden { permission }, ZhCn) => format!(
            "您的令牌无权执行此请求：需要对该试验、研究中心或受试者拥有 {permission} 权限。请联系管理员授予所需角色；受试者令牌只能用于其本人及所属试验。"
        ),
        (ApiError::StaffExists { staff_id }, En) => {
            format!("A staff account with id \"{staff_id}\" exists already; nothing was changed. Choose another staffId, or issue a new token for this account.")
        }
        (ApiError::StaffExists { staff_id }, ZhCn) => {
            format!("id 为“{staff_id}”的工作人员账号已存在，未做任何更改。请换用其他 staffId，或为该账号签发新令牌。")
        }
        (ApiError::StaffNotFound { staff_id }, En) => format!("No staff account has id \"{staff_id}\". Check the staff id."),
        (ApiError::StaffNotFound { staff_id }, ZhCn) => format!("不存在 id 为“{staff_id}”的工作人员账号。请检查 id。"),
        (ApiError::PatientAlreadyEnrolled { patient_id }, En) => format!(
            "Patient \"{patient_id}\" is already enrolled in this trial; nothing was changed. To replace a lost token, issue a new token for the patient."
        ),
        (ApiError::PatientAlreadyEnrolled { patient_id }, ZhCn) => {
            format!("受试者“{patient_id}”已入组本试验，未做任何更改。如需替换丢失的令牌，请为该受试者签发新令牌。")
        }
        (ApiError::PatientNotEnrolled { patient_id }, En) => {
            format!("Patient \"{patient_id}\" is not enrolled in this trial. Enrol the patient first.")
        }
        (ApiError::PatientNotEnrolled { patient_id }, ZhCn) => {
            format!("受试者“{patient_id}”未入组本试验。请先为其办理入组。")
        }
        (ApiError::UnknownSite { trial_id, site_id }, En) => format!(
            "Trial \"{trial_id}\" has no site \"{site_id}\"; nothing was changed. Use one of the sites listed in the trial file."
        ),
        (ApiError::UnknownSite { trial_id, site_id }, ZhCn) => {
            format!("试验“{trial_id}”中没有研究中心“{site_id}”，未做任何更改。请使用试验文件中列出的研究中心。")
        }
        (ApiError::UnknownTrial { trial_id }, En) => {
            format!("No trial with id \"{trial_id}\" exists. Check the trial id.")
        }
        (ApiError::UnknownTrial { trial_id }, ZhCn) => {
            format!("不存在 id 为“{trial_id}”的试验。请检查试验 id。")
        }
        (ApiError::UnknownForm { trial_id, form_id }, En) => {
            format!("Trial \"{trial_id}\" has no form \"{form_id}\". Check the form id.")
        }
        (ApiError::UnknownForm { trial_id, form_id }, ZhCn) => {
            format!("试验“{trial_id}”中没有表单“{form_id}”。请检查表单 id。")
        }
        (ApiError::UnknownVersion { form_id, version }, En) => {
            format!("Form \"{form_id}\" has no version \"{version}\". Omit formVersion to use the current version, or update the app.")
        }
        (ApiError::UnknownVersion { form_id, version }, ZhCn) => {
            format!("表单“{form_id}”没有版本“{version}”。请省略 formVersion 以使用当前版本，或更新应用。")
        }
        (ApiError::SubmissionNotFound, En) => "No submission with this id is stored.".to_owned(),
        (ApiError::SubmissionNotFound, ZhCn) => "没有存储此 id 的提交记录。".to_owned(),
        (ApiError::QueryNotFound, En) => "No data query has this id.".to_owned(),
        (ApiError::QueryNotFound, ZhCn) => "不存在此 id 的数据质疑。".to_owned(),
        (ApiError::QueryUnchanged { status }, En) => {
            format!("The query is already {status}; nothing was changed.")
        }
        (ApiError::QueryUnchanged { status }, ZhCn) => {
            format!("该质疑已处于 {status} 状态，未做任何更改。")
        }
        (ApiError::AlertNotFound, En) => "No alert has this id.".to_owned(),
        (ApiError::AlertNotFound, ZhCn) => "不存在此 id 的警报。".to_owned(),
        (ApiError::AlertAlreadyAcknowledged { acknowledged_at }, En) => match rfc3339(*acknowledged_at) {
            Some(at) => format!(
                "The alert was already acknowledged at {at}; an acknowledgement is final and nothing was changed. Read the alert to see who acknowledged it."
            ),
            None => "The alert was already acknowledged; an acknowledgement is final and nothing was changed.".to_owned(),
        },
        (ApiError::AlertAlreadyAcknowledged { acknowledged_at }, ZhCn) => match rfc3339(*acknowledged_at) {
            Some(at) => format!("该警报已于 {at} 确认。确认不可更改，本次未做任何更改。请查看该警报以了解确认人。"),
            None => "该警报已被确认。确认不可更改，本次未做任何更改。".to_owned(),
        },
        (ApiError::VersionNotFound { version }, En) => format!(
            "The submission has no version \"{version}\". Read the submission to see its versions; they are numbered from 1."
        ),
        (ApiError::VersionNotFound { version }, ZhCn) => {
            format!("该提交没有版本“{version}”。请读取该提交以查看其版本；版本号从 1 开始。")
        }
        (ApiError::CorrectionReasonRequired(_), En) => {
            "The correction was not stored: \"reason\" is required. Say why the data changes, for example \"transcription error confirmed with the patient\".".to_owned()
        }
        (ApiError::CorrectionReasonRequired(_), ZhCn) => {
            "更正未保存：必须填写“reason”。请说明数据为何更改，例如“经与患者核实为录入错误”。".to_owned()
        }
        (ApiError::CorrectionConflict { base_version, current_version }, En) => format!(
            "The correction was not stored: it is based on version {base_version}, but the current version is {current_version}. Read version {current_version}, apply your change to it and send it with \"baseVersion\": {current_version}."
        ),
        (ApiError::CorrectionConflict { base_version, current_version }, ZhCn) => format!(
            "更正未保存：它基于版本 {base_version}，但当前版本为 {current_version}。请读取版本 {current_version}，在其基础上修改，并以 \"baseVersion\": {current_version} 重新发送。"
        ),
        (ApiError::SignatureCredentialInvalid(_), En) => {
            "Nothing was signed: the re-entered credential does not match yours. Enter your own credential in \"credential\" again.".to_owned()
        }
        (ApiError::SignatureCredentialInvalid(_), ZhCn) => {
            "未签名：重新输入的凭证与您的凭证不符。请在“credential”中重新输入您本人的凭证。".to_owned()
        }
        (ApiError::SignatureVersionNotCurrent { version, current_version }, En) => format!(
            "Version {version} was not signed because it is not the current version: the current version is {current_version}. Review version {current_version} and sign that one."
        ),
        (ApiError::SignatureVersionNotCurrent { version, current_version }, ZhCn) => format!(
            "版本 {version} 不是当前版本，因此未签名：当前版本为 {current_version}。请审阅版本 {current_version} 并对其签名。"
        ),
        (ApiError::FormVersionRetired { form_id, version, retired_at }, En) => format!(
            "Form \"{form_id}\" version \"{version}\" was retired at {} and the form has no active version, so it takes no new submissions; nothing was stored. Contact the study team.",
            rfc3339_at(*retired_at)
        ),
        (ApiError::FormVersionRetired { form_id, version, retired_at }, ZhCn) => format!(
            "表单“{form_id}”的版本“{version}”已于 {} 停用，且该表单没有仍在使用的版本，不再接收新的提交，本次未保存任何数据。请联系研究团队。",
            rfc3339_at(*retired_at)
        ),
        (ApiError::InvalidForm(errors), En) => format!(
            "The form was not published: it has {} problem(s); see errors for each one with its place in the document.",
            errors.len()
        ),
        (ApiError::InvalidForm(errors), ZhCn) => {
            format!("表单未发布：共有 {} 处问题，详见 errors 中的逐项说明及其在文档中的位置。", errors.len())
        }
        (ApiError::FormVersionConflict { form_id, version }, En) => format!(
            "Form \"{form_id}\" version \"{version}\" is already published with different content, and a published version never changes; nothing was changed. Publish the changed form as a new version."
        ),
        (ApiError::FormVersionConflict { form_id, version }, ZhCn) => format!(
            "表单“{form_id}”的版本“{version}”已以不同的内容发布，已发布的版本不可更改，本次未做任何更改。请将修改后的表单作为新版本发布。"
        ),
        (ApiError::FormVersionAlreadyRetired { form_id, version, retired_at }, En) => format!(
            "Form \"{form_id}\" version \"{version}\" was already retired at {}; a retirement is final and nothing was changed.",
            rfc3339_at(*retired_at)
        ),
        (ApiError::FormVersionAlreadyRetired { form_id, version, retired_at }, ZhCn) => format!(
            "表单“{form_id}”的版本“{version}”已于 {} 停用。停用不可撤销，本次未做任何更改。",
            rfc3339_at(*retired_at)
        ),
        (ApiError::TrialConflict { trial_id }, En) => format!(
            "Trial \"{trial_id}\" already exists with a different title, alert deadline or sites; nothing was changed. Read the trial, and add sites with POST /v1/trials/{trial_id}/sites."
        ),
        (ApiError::TrialConflict { trial_id }, ZhCn) => format!(
            "试验“{trial_id}”已存在，但标题、警报确认时限或研究中心不同，本次未做任何更改。请先查看该试验；新增研究中心请使用 POST /v1/trials/{trial_id}/sites。"
        ),
        (ApiError::SiteConflict { site_id }, En) => format!(
            "Site \"{site_id}\" already exists in this trial under a different name; nothing was changed. Use a new siteId for a new site."
        ),
        (ApiError::SiteConflict { site_id }, ZhCn) => format!(
            "本试验中已有 id 为“{site_id}”但名称不同的研究中心，本次未做任何更改。新的研究中心请使用新的 siteId。"
        ),
        (ApiError::RouteNotFound, En) => "No endpoint has this path. Check the URL.".to_owned(),
        (ApiError::RouteNotFound, ZhCn) => "不存在此路径的接口。请检查 URL。".to_owned(),
        (ApiError::MethodNotAllowed, En) => "This endpoint does not accept this HTTP method.".to_owned(),
        (ApiError::MethodNotAllowed, ZhCn) => "此接口不接受该 HTTP 方法。".to_owned(),
        (ApiError::Conflict { submission_id }, En) => format!(
            "A different submission with id \"{submission_id}\" is already stored; nothing was changed. Send new answers with a new submissionId."
        ),
        (ApiError::Conflict { submission_id }, ZhCn) => format!(
            "已存储一条 id 为“{submission_id}”但内容不同的提交，本次未做任何更改。新的答案请使用新的 submissionId 提交。"
        ),
        (ApiError::PayloadTooLarge { max_bytes }, En) => {
            format!("The request body is larger than {max_bytes} bytes. Send a smaller body.")
        }
        (ApiError::PayloadTooLarge { max_bytes }, ZhCn) => {
            format!("请求正文超过 {max_bytes} 字节。请缩小后重新提交。")
        }
        (ApiError::UnsupportedMediaType { accepted }, En) => {
            format!("Set Content-Type to one of: {}.", accepted.join(", "))
        }
        (ApiError::UnsupportedMediaType { accepted }, ZhCn) => {
            format!("请将 Content-Type 设置为以下之一：{}。", accepted.join("、"))
        }
        (ApiError::Validation(errors), En) => format!(
            "The submission was not stored: {} answer(s) need correcting; see errors for each one.",
            errors.len()
        ),
        (ApiError::Validation(errors), ZhCn) => {
            format!("提交未保存：有 {} 处答案需要修改，详见 errors 中的逐项说明。", errors.len())
        }
        (ApiError::InvalidFields(errors), En) => format!(
            "Nothing was changed: {} field(s) of the request need correcting; see errors for each one.",
            errors.len()
        ),
        (ApiError::InvalidFields(errors), ZhCn) => {
            format!("未做任何更改：请求中有 {} 个字段需要修改，详见 errors 中的逐项说明。", errors.len())
        }
        (ApiError::UnsupportedContentEncoding, En) => {
            "Content-Encoding must be gzip or identity. Send the body uncompressed or gzip-compressed.".to_owned()
        }
        (ApiError::UnsupportedContentEncoding, ZhCn) => {
            "Content-Encoding 只能是 gzip 或 identity。请发送未压缩或 gzip 压缩的请求正文。".to_owned()
        }
        (ApiError::IncompleteBody, En) => {
            "The request body ended before its declared length. Send the whole body again.".to_owned()
        }
        (ApiError::IncompleteBody, ZhCn) => "请求正文在达到声明的长度之前就中断了。请重新发送完整的正文。".to_owned(),
        (ApiError::InvalidCompressedBody, En) => {
            "The request body is not valid gzip data. Compress it again or send it uncompressed without Content-Encoding.".to_owned()
        }
        (ApiError::InvalidCompressedBody, ZhCn) => {
            "请求正文不是有效的 gzip 数据。请重新压缩，或去掉 Content-Encoding 后发送未压缩的正文。".to_owned()
        }
        (ApiError::Overloaded { .. }, En) => {
            "The server is busy and did not process the request; nothing was stored. Retry in a moment, with the same submissionId when submitting.".to_owned()
        }
        (ApiError::Overloaded { .. }, ZhCn) => {
            "服务器繁忙，未处理本次请求，也未保存任何数据。请稍后重试；如为提交答案，请使用相同的 submissionId。".to_owned()
        }
        (ApiError::TimedOut { timeout_seconds }, En) => format!(
            "The server did not finish the request within {timeout_seconds} seconds. A submission may or may not have been stored: retry with the same submissionId, which never stores it twice."
        ),
        (ApiError::TimedOut { timeout_seconds }, ZhCn) => format!(
            "服务器未能在 {timeout_seconds} 秒内处理完本次请求，提交可能已保存，也可能未保存。请使用相同的 submissionId 重试，同一提交不会被重复保存。"
        ),
        (ApiError::RateLimited { limit: Limit::RatePatient, retry_after_seconds }, En) => format!(
            "Too many submissions for this patient in the last minute; this one was not stored. Retry after {retry_after_seconds} second(s) with the same submissionId."
        ),
        (ApiError::RateLimited { limit: Limit::RatePatient, retry_after_seconds }, ZhCn) => format!(
            "该患者在一分钟内的提交次数过多，本次提交未保存。请在 {retry_after_seconds} 秒后使用相同的 submissionId 重试。"
        ),
        (ApiError::RateLimited { retry_after_seconds, .. }, En) => format!(
            "Too many requests from this client; this one was not processed and nothing was stored. Retry after {retry_after_seconds} second(s), with the same submissionId when submitting."
        ),
        (ApiError::RateLimited { retry_after_seconds, .. }, ZhCn) => format!(
            "此客户端的请求过于频繁，本次请求未处理，也未保存任何数据。请在 {retry_after_seconds} 秒后重试；如为提交答案，请使用相同的 submissionId。"
        ),
        (ApiError::ShuttingDown, En) => {
            "The server is restarting and did not store the submission. Retry in a moment with the same submissionId.".to_owned()
        }
        (ApiError::ShuttingDown, ZhCn) => {
            "服务器正在重启，本次提交未保存。请稍后使用相同的 submissionId 重试。".to_owned()
        }
        (ApiError::Unavailable, En) => {
            "The database is not reachable at the moment and nothing new was stored. Retry in a few seconds, with the same submissionId when submitting.".to_owned()
        }
        (ApiError::Unavailable, ZhCn) => {
            "数据库暂时无法访问，本次请求未保存任何新数据。请几秒后重试；如为提交答案，请使用相同的 submissionId。".to_owned()
        }
        (ApiError::Unexpected(_) | ApiError::Panicked, En) => {
            "An internal error occurred and the submission may not be stored. Retry with the same submissionId; if it persists, quote the requestId to support.".to_owned()
        }
        (ApiError::Unexpected(_) | ApiError::Panicked, ZhCn) => {
            "发生内部错误，提交可能未保存。请使用相同的 submissionId 重试；如仍失败，请向技术支持提供 requestId。".to_owned()
        }
    }
}

/// Renders the text of a stored data query from its code and parameters.
pub fn query_message(language: Language, item: &str, code: &str, params: &str) -> String {
    let params = serde_json::from_str(params).unwrap_or(serde_json::Value::Null);
    if code == crate::intake::STALE_FORM_VERSION {
        return stale_version_message(language, &params);
    }
    match crate::query_params::decode(code, &params) {
        Some(problem) => answer_message(language, item, &problem),
        None => match language {
            Language::En => format!("Data query \"{code}\" on item \"{item}\"."),
            Language::ZhCn => format!("第“{item}”题的数据质疑“{code}”。"),
        },
    }
}

/// Renders the text of a stored alert for site staff: the message of its rule in the
/// trial file, or, when the published form no longer has the rule, a sentence that
/// names the rule and its severity.
pub fn alert_message(language: Language, message: Option<&Localized>, rule: &str, severity: &str) -> String {
    match (message, language) {
        (Some(message), Language::En) => message.en.clone(),
        (Some(message), Language::ZhCn) => message.zh_cn.clone(),
        (None, Language::En) => format!("Alert \"{rule}\" (severity {severity}) was raised on this submission."),
        (None, Language::ZhCn) => format!("此提交触发了警报“{rule}”（严重程度 {severity}）。"),
    }
}

/// Formats an optional instant as RFC 3339 for a message.
fn rfc3339(instant: Option<time::OffsetDateTime>) -> Option<String> {
    instant?.format(&time::format_description::well_known::Rfc3339).ok()
}

/// Formats an instant in RFC 3339, UTC, for a message.
fn rfc3339_at(instant: time::OffsetDateTime) -> String {
    rfc3339(Some(instant.to_offset(time::UtcOffset::UTC))).unwrap_or_else(|| instant.to_string())
}

/// Renders the message of one field-level finding.
pub fn field_message(language: Language, field: &FieldError) -> String {
    match &field.detail {
        Detail::Answer(problem) => answer_message(language, &field.item, problem),
        Detail::Envelope(problem) => envelope_message(language, &field.item, problem),
        Detail::FormNotice { message, line, column } => {
            form_notice_message(language, &field.path, message, *line, *column)
        }
    }
}

/// Renders a problem of a form document. The forms library words its problems
/// in English only, so the Chinese text gives the place in Chinese and quotes the
/// English detail.
fn form_notice_message(
    language: Language,
    path: &str,
    message: &str,
    line: Option<usize>,
    column: Option<usize>,
) -> String {
    match (language, line, column) {
        (Language::En, Some(line), Some(column)) => {
            format!("Line {line}, column {column} of the form: {message}. Fix the document and publish it again.")
        }
        (Language::ZhCn, Some(line), Some(column)) => {
            format!("表单第 {line} 行第 {column} 列有误（英文说明：{message}）。请修正文档后重新发布。")
        }
        (Language::En, ..) if path.is_empty() => {
            format!("The form: {message}. Fix the document and publish it again.")
        }
        (Language::ZhCn, ..) if path.is_empty() => {
            format!("表单有误（英文说明：{message}）。请修正文档后重新发布。")
        }
        (Language::En, ..) => format!("At {path} of the form: {message}. Fix the document and publish it again."),
        (Language::ZhCn, ..) => {
            format!("表单中 {path} 处有误（英文说明：{message}）。请修正文档后重新发布。")
        }
    }
}

/// Renders the text of a `stale_form_version` query, raised when a submission
/// named a retired version while a newer one was active.
fn stale_version_message(language: Language, params: &serde_json::Value) -> String {
    let text = |key: &str| params.get(key).and_then(serde_json::Value::as_str).unwrap_or("?").to_owned();
    let (version, retired_at, current) = (text("version"), text("retiredAt"), text("currentVersion"));
    match language {
        Language::En => format!(
            "The app sent this submission for form version \"{version}\", which was retired at {retired_at}; the current version is \"{current}\". It was validated against version \"{version}\" and stored. Check the answers against the current version, and ask the site to update the patient's app."
        ),
        Language::ZhCn => format!(
            "应用按表单版本“{version}”发送了本次提交，该版本已于 {retired_at} 停用，当前版本为“{current}”。本次提交已按版本“{version}”校验并保存。请对照当前版本核查答案，并请研究中心更新患者的应用。"
        ),
    }
}

fn envelope_message(language: Language, field: &str, problem: &EnvelopeProblem) -> String {
    use Language::{En, ZhCn};
    match (problem, language) {
        (EnvelopeProblem::Missing, En) => format!("\"{field}\" is required. Add it to the request."),
        (EnvelopeProblem::Missing, ZhCn) => format!("缺少必填字段“{field}”。请在请求中添加。"),
        (EnvelopeProblem::InvalidQueryStatus, En) => {
            format!("\"{field}\" must be one of open, answered or closed.")
        }
        (EnvelopeProblem::InvalidQueryStatus, ZhCn) => format!("“{field}”必须是 open、answered 或 closed 之一。"),
        (EnvelopeProblem::InvalidAlertStatus, En) => format!("\"{field}\" must be open or acknowledged."),
        (EnvelopeProblem::InvalidAlertStatus, ZhCn) => format!("“{field}”必须是 open 或 acknowledged。"),
        (EnvelopeProblem::Blank, En) => {
            format!("\"{field}\" contains only spaces, tabs or line breaks. Write the text it asks for.")
        }
        (EnvelopeProblem::Blank, ZhCn) => format!("“{field}”只有空格、制表符或换行符。请填写所需的内容。"),
        (EnvelopeProblem::TooLong { max_length }, En) => {
            format!("\"{field}\" is longer than {max_length} characters. Shorten it.")
        }
        (EnvelopeProblem::TooLong { max_length }, ZhCn) => {
            format!("“{field}”超过 {max_length} 个字符。请缩短。")
        }
        (EnvelopeProblem::InvalidQueryParameters { accepted, max_limit: Some(max) }, En) => format!(
            "The query parameters are invalid. Use only {}; limit is a number from 1 to {max}.",
            accepted.join(", ")
        ),
        (EnvelopeProblem::InvalidQueryParameters { accepted, max_limit: None }, En) => {
            format!("The query parameters are invalid. Use only {}.", accepted.join(", "))
        }
        (EnvelopeProblem::InvalidQueryParameters { accepted, max_limit: Some(max) }, ZhCn) => {
            format!("查询参数无效。只能使用 {}；limit 为 1 至 {max} 的数字。", accepted.join("、"))
        }
        (EnvelopeProblem::InvalidQueryParameters { accepted, max_limit: None }, ZhCn) => {
            format!("查询参数无效。只能使用 {}。", accepted.join("、"))
        }
        (EnvelopeProblem::WrongType { expected }, En) => {
            format!("\"{field}\" must be {}.", english_json_type(expected))
        }
        (EnvelopeProblem::WrongType { expected }, ZhCn) => {
            format!("“{field}”必须是{}。", chinese_json_type(expected))
        }
        (EnvelopeProblem::UnknownField, En) => {
            format!("\"{field}\" is not a field of this request. Remove it or check its spelling.")
        }
        (EnvelopeProblem::UnknownField, ZhCn) => {
            format!("“{field}”不是此请求的字段。请删除或检查拼写。")
        }
        (EnvelopeProblem::InvalidSubmissionId { uuid_only: true }, En) => {
            format!("\"{field}\" must be a UUID generated by the app, such as 0b6f3c2e-8d4a-4f7e-9a51-2c7d9e1f4a3b.")
        }
        (EnvelopeProblem::InvalidSubmissionId { uuid_only: true }, ZhCn) => {
            format!("“{field}”必须是由应用生成的 UUID，例如 0b6f3c2e-8d4a-4f7e-9a51-2c7d9e1f4a3b。")
        }
        (EnvelopeProblem::InvalidSubmissionId { uuid_only: false }, En) => {
            format!("\"{field}\" must be a UUID or a FHIR id (1 to 64 letters, digits, '-' or '.').")
        }
        (EnvelopeProblem::InvalidSubmissionId { uuid_only: false }, ZhCn) => {
            format!("“{field}”必须是 UUID 或 FHIR id（1 至 64 个字母、数字、“-”或“.”）。")
        }
        (EnvelopeProblem::InvalidId, En) => {
            format!("\"{field}\" must be 1 to 64 characters of letters, digits, '.', '_' or '-'.")
        }
        (EnvelopeProblem::InvalidId, ZhCn) => {
            format!("“{field}”必须由 1 至 64 个字母、数字、“.”、“_”或“-”组成。")
        }
        (EnvelopeProblem::InvalidDateTime, En) => {
            format!("\"{field}\" is not a valid RFC 3339 date-time. Use the form 2026-12-04T20:15:00+08:00.")
        }
        (EnvelopeProblem::InvalidDateTime, ZhCn) => {
            format!("“{field}”不是有效的 RFC 3339 日期时间。请使用 2026-12-04T20:15:00+08:00 这样的格式。")
        }
        (EnvelopeProblem::MissingOffset, En) => format!(
            "\"{field}\" has no known UTC offset (none, or -00:00), so the moment is ambiguous. Add the device's offset, for example +08:00 or Z."
        ),
        (EnvelopeProblem::MissingOffset, ZhCn) => {
            format!(
                "“{field}”缺少已知的时区偏移（未提供或为 -00:00），无法确定具体时刻。请加上设备的时区偏移，例如 +08:00 或 Z。"
            )
        }
        (EnvelopeProblem::OffsetWithoutColon, En) => format!(
            "The UTC offset of \"{field}\" must be written with hours and minutes separated by a colon, for example +05:30 instead of +0530 or +05."
        ),
        (EnvelopeProblem::OffsetWithoutColon, ZhCn) => {
            format!("“{field}”的时区偏移必须写成“时:分”形式，例如用 +05:30 代替 +0530 或 +05。")
        }
        (EnvelopeProblem::InFuture { clock_skew_seconds }, En) => format!(
            "\"{field}\" is more than {clock_skew_seconds} seconds in the future. Check the device's clock and time zone."
        ),
        (EnvelopeProblem::InFuture { clock_skew_seconds }, ZhCn) => {
            format!("“{field}”比当前时间晚 {clock_skew_seconds} 秒以上。请检查设备的时钟和时区设置。")
        }
        (EnvelopeProblem::FormContentNotObject, En) => {
            format!("\"{field}\" must be a string that holds a JSON object of answers, such as \"{{\\\"q1\\\": 2}}\".")
        }
        (EnvelopeProblem::FormContentNotObject, ZhCn) => {
            format!("“{field}”必须是内容为 JSON 对象的字符串，例如 \"{{\\\"q1\\\": 2}}\"。")
        }
        (EnvelopeProblem::NotQuestionnaireResponse, En) => format!(
            "\"{field}\" must be \"QuestionnaireResponse\": this endpoint takes FHIR R4 QuestionnaireResponse resources."
        ),
        (EnvelopeProblem::NotQuestionnaireResponse, ZhCn) => {
            format!("“{field}”必须为“QuestionnaireResponse”：此接口只接收 FHIR R4 QuestionnaireResponse 资源。")
        }
        (EnvelopeProblem::UnsupportedStatus { status }, En) => format!(
            "\"{field}\" is \"{status}\"; only completed or amended responses are accepted. Submit when the patient has finished."
        ),
        (EnvelopeProblem::UnsupportedStatus { status }, ZhCn) => {
            format!("“{field}”为“{status}”；只接受 completed 或 amended 状态的答卷。请在患者填写完成后提交。")
        }
        (EnvelopeProblem::FormRequired { form_ids }, En) => {
            format!("This trial has several forms, so \"{field}\" is required. Use one of: {}.", form_ids.join(", "))
        }
        (EnvelopeProblem::FormRequired { form_ids }, ZhCn) => {
            format!("该试验包含多个表单，因此必须提供“{field}”。可选值：{}。", form_ids.join("、"))
        }
        (EnvelopeProblem::NumberOutOfRange, En) => format!(
            "\"{field}\" contains a number too large to store (beyond about ±1.8e308). Check the value the app sends."
        ),
        (EnvelopeProblem::NumberOutOfRange, ZhCn) => {
            format!("“{field}”中有数值过大，无法存储（超过约 ±1.8e308）。请检查应用发送的数值。")
        }
        (EnvelopeProblem::DuplicateKey, En) => format!(
            "The key \"{field}\" appears more than once in the same JSON object, so its value is ambiguous. Send each key once."
        ),
        (EnvelopeProblem::DuplicateKey, ZhCn) => {
            format!("同一个 JSON 对象中键“{field}”出现了多次，取值不明确。每个键只能发送一次。")
        }
        (EnvelopeProblem::FhirResourceAsJson, En) => format!(
            "The body looks like a FHIR resource (it has \"{field}\"). Send FHIR QuestionnaireResponse resources with Content-Type: application/fhir+json."
        ),
        (EnvelopeProblem::FhirResourceAsJson, ZhCn) => format!(
            "请求正文看起来是 FHIR 资源（含有“{field}”）。发送 FHIR QuestionnaireResponse 资源时请使用 Content-Type: application/fhir+json。"
        ),
        (EnvelopeProblem::QuestionnaireMismatch { expected }, En) => format!(
            "\"{field}\" names another questionnaire than this form ({expected}). Post the response to the form it was filled in on."
        ),
        (EnvelopeProblem::QuestionnaireMismatch { expected }, ZhCn) => {
            format!("“{field}”指向的问卷与该表单（{expected}）不同。请把答卷提交到填写时使用的表单。")
        }
        (EnvelopeProblem::PatientMismatch, En) => format!(
            "\"{field}\" and the patientId query parameter name different patients. Send one, or make them agree."
        ),
        (EnvelopeProblem::PatientMismatch, ZhCn) => {
            format!("“{field}”与查询参数 patientId 指向不同的患者。请只提供其中之一，或使两者一致。")
        }
        (EnvelopeProblem::NotOneOf { allowed }, En) => {
            format!("\"{field}\" must be one of: {}.", allowed.join(", "))
        }
        (EnvelopeProblem::NotOneOf { allowed }, ZhCn) => format!("“{field}”必须是以下之一：{}。", allowed.join("、")),
        (EnvelopeProblem::RoleScope { role, needed: true }, En) => {
            format!("\"{field}\" is required for role {role}. Add it.")
        }
        (EnvelopeProblem::RoleScope { role, needed: true }, ZhCn) => format!("角色 {role} 必须填写“{field}”。请补充。"),
        (EnvelopeProblem::RoleScope { role, needed: false }, En) => format!(
            "\"{field}\" does not apply to role {role}: admin covers every trial, data_manager and monitor a whole trial, investigator and site_staff one site. Remove it."
        ),
        (EnvelopeProblem::RoleScope { role, needed: false }, ZhCn) => format!(
            "“{field}”不适用于角色 {role}：admin 覆盖所有试验，data_manager 和 monitor 覆盖整个试验，investigator 和 site_staff 只覆盖一个研究中心。请删除该字段。"
        ),
        (EnvelopeProblem::OutOfRange { min, max }, En) => {
            format!("\"{field}\" must be a whole number from {min} to {max}.")
        }
        (EnvelopeProblem::OutOfRange { min, max }, ZhCn) => format!("“{field}”必须是 {min} 到 {max} 之间的整数。"),
        (EnvelopeProblem::InvalidOption { allowed }, En) => {
            format!("The query parameter \"{field}\" must be one of: {}.", allowed.join(", "))
        }
        (EnvelopeProblem::InvalidOption { allowed }, ZhCn) => {
            format!("查询参数“{field}”必须是以下之一：{}。", allowed.join("、"))
        }
        (EnvelopeProblem::InvalidCursor, En) => format!(
            "The query parameter \"{field}\" is not a cursor of this server. Pass the Epro-Next-Cursor header of an earlier export unchanged, or leave \"{field}\" out to export every submission."
        ),
        (EnvelopeProblem::InvalidCursor, ZhCn) => format!(
            "查询参数“{field}”不是本服务器生成的游标。请原样传入之前某次导出返回的 Epro-Next-Cursor 响应头，或省略“{field}”以导出全部提交记录。"
        ),
        (EnvelopeProblem::UnknownParameter { accepted }, En) => format!(
            "\"{field}\" is not a query parameter of this endpoint. Use only {}, or check the spelling.",
            accepted.join(", ")
        ),
        (EnvelopeProblem::UnknownParameter { accepted }, ZhCn) => {
            format!("“{field}”不是此接口的查询参数。只能使用 {}，或请检查拼写。", accepted.join("、"))
        }
        (EnvelopeProblem::DuplicateParameter, En) => {
            format!("The query parameter \"{field}\" is given more than once, so its value is ambiguous. Send it once.")
        }
        (EnvelopeProblem::DuplicateParameter, ZhCn) => {
            format!("查询参数“{field}”出现了多次，取值不明确。请只发送一次。")
        }
        (EnvelopeProblem::CsvOnly { format }, En) => format!(
            "The query parameter \"{field}\" applies to CSV exports only. Leave it out with format={format}, or use format=csv."
        ),
        (EnvelopeProblem::CsvOnly { format }, ZhCn) => {
            format!("查询参数“{field}”只适用于 CSV 导出。使用 format={format} 时请省略它，或改用 format=csv。")
        }
        (EnvelopeProblem::NoChange, En) => format!(
            "\"{field}\" changes no answer of the base version. Send only the items whose answers change, with their new values."
        ),
        (EnvelopeProblem::NoChange, ZhCn) => {
            format!("“{field}”没有更改基础版本中的任何答案。请只发送答案有变化的题目及其新值。")
        }
        (EnvelopeProblem::CredentialMismatch, En) => {
            format!("\"{field}\" does not match the credential of this request. Re-enter your own credential to sign.")
        }
        (EnvelopeProblem::CredentialMismatch, ZhCn) => {
            format!("“{field}”与本次请求的凭证不符。请重新输入您本人的凭证以签名。")
        }
    }
}

fn answer_message(language: Language, item: &str, problem: &Problem) -> String {
    use Language::{En, ZhCn};
    match (problem, language) {
        (Problem::Required, En) => format!("Item \"{item}\" is required. Answer it before submitting."),
        (Problem::Required, ZhCn) => format!("第“{item}”题为必答题。请作答后再提交。"),
        (Problem::UnknownItem, En) => format!(
            "\"{item}\" is not an item of this form version. Remove it, or check the form version the app uses."
        ),
        (Problem::UnknownItem, ZhCn) => {
            format!("“{item}”不是该表单版本中的题目。请删除，或检查应用所用的表单版本。")
        }
        (Problem::WrongType { expected, hint }, _) => wrong_type_message(language, item, *expected, hint.as_ref()),
        (Problem::OutOfRange { min, max }, En) => match (min, max) {
            (Some(min), Some(max)) => format!("The answer to \"{item}\" must be between {min} and {max}."),
            (Some(min), None) => format!("The answer to \"{item}\" must be at least {min}."),
            (None, Some(max)) => format!("The answer to \"{item}\" must be at most {max}."),
            (None, None) => format!("The answer to \"{item}\" is out of range."),
        },
        (Problem::OutOfRange { min, max }, ZhCn) => match (min, max) {
            (Some(min), Some(max)) => format!("第“{item}”题的答案必须在 {min} 到 {max} 之间。"),
            (Some(min), None) => format!("第“{item}”题的答案不能小于 {min}。"),
            (None, Some(max)) => format!("第“{item}”题的答案不能大于 {max}。"),
            (None, None) => format!("第“{item}”题的答案超出允许范围。"),
        },
        (Problem::NotAnOption { allowed }, En) => {
            format!("The answer to \"{item}\" is not one of its options. Use one of: {}.", shorten_list(allowed, ", "))
        }
        (Problem::NotAnOption { allowed }, ZhCn) => {
            format!("第“{item}”题的答案不在选项中。请使用以下之一：{}。", shorten_list(allowed, "、"))
        }
        (Problem::TooLong { max_length, length }, En) => {
            format!("The answer to \"{item}\" has {length} characters; at most {max_length} are allowed. Shorten it.")
        }
        (Problem::TooLong { max_length, length }, ZhCn) => {
            format!("第“{item}”题的答案有 {length} 个字符，最多允许 {max_length} 个。请缩短。")
        }
        (Problem::PatternMismatch { pattern }, En) => {
            format!("The answer to \"{item}\" does not have the required format (pattern {pattern}).")
        }
        (Problem::PatternMismatch { pattern }, ZhCn) => {
            format!("第“{item}”题的答案格式不符合要求（格式 {pattern}）。")
        }
        (Problem::TooManyDecimals { max_decimal_places }, En) => {
            format!("The answer to \"{item}\" has too many decimal places; at most {max_decimal_places} are allowed.")
        }
        (Problem::TooManyDecimals { max_decimal_places }, ZhCn) => {
            format!("第“{item}”题的答案小数位过多，最多允许 {max_decimal_places} 位小数。")
        }
        (Problem::TooFewRepeats { min, count }, En) => {
            format!("\"{item}\" has {count} answer(s); at least {min} are required.")
        }
        (Problem::TooFewRepeats { min, count }, ZhCn) => {
            format!("“{item}”有 {count} 个答案，至少需要 {min} 个。")
        }
        (Problem::TooManyRepeats { max, count }, En) => {
            format!("\"{item}\" has {count} answer(s); at most {max} are allowed.")
        }
        (Problem::TooManyRepeats { max, count }, ZhCn) => {
            format!("“{item}”有 {count} 个答案，最多允许 {max} 个。")
        }
        (Problem::NotAnswerable, En) => {
            format!("\"{item}\" is a display text or a group and takes no answer of its own. Remove the value.")
        }
        (Problem::NotAnswerable, ZhCn) => {
            format!("“{item}”是说明文字或题组，本身不接受答案。请删除该值。")
        }
        (Problem::UnitNotAllowed { allowed }, En) => {
            format!("The unit of the answer to \"{item}\" is not allowed. Use one of: {}.", shorten_list(allowed, ", "))
        }
        (Problem::UnitNotAllowed { allowed }, ZhCn) => {
            format!("第“{item}”题答案的单位不被允许。请使用以下之一：{}。", shorten_list(allowed, "、"))
        }
        (Problem::AnsweredWhileDisabled, En) => format!(
            "Item \"{item}\" is not asked with the answers given (its skip logic turns it off), so it must stay empty. Remove the answer, or check the answers it depends on."
        ),
        (Problem::AnsweredWhileDisabled, ZhCn) => format!(
            "根据已给出的答案，第“{item}”题不应作答（跳题逻辑已将其关闭）。请删除该答案，或检查它所依赖的题目答案。"
        ),
        (Problem::RuleViolated { rule, message, .. }, En) => format!("{} (rule {rule})", message.en),
        (Problem::RuleViolated { rule, message, .. }, ZhCn) => format!("{}（规则 {rule}）", message.zh_cn),
        (Problem::ScoreMismatch { score, computed, sent }, En) if computed.is_empty() => format!(
            "The app sent a value for the score \"{score}\" ({sent}), but it cannot be computed from these answers. The sent value is kept for review."
        ),
        (Problem::ScoreMismatch { score, computed, sent }, ZhCn) if computed.is_empty() => {
            format!("应用发送了评分“{score}”的值（{sent}），但根据这些答案无法计算该评分。发送的值保留以供核查。")
        }
        (Problem::ScoreMismatch { score, computed, sent }, En) => format!(
            "The score \"{score}\" sent by the app ({sent}) differs from the score computed from the answers ({computed}). The computed score counts; the sent value is kept for review."
        ),
        (Problem::ScoreMismatch { score, computed, sent }, ZhCn) => format!(
            "应用发送的评分“{score}”（{sent}）与根据答案计算的评分（{computed}）不一致。系统采用计算所得的评分，发送的值保留以供核查。"
        ),
    }
}

fn wrong_type_message(language: Language, item: &str, expected: Expected, hint: Option<&Hint>) -> String {
    use Language::{En, ZhCn};
    let base = match language {
        En => format!("The answer to \"{item}\" must be {}.", english_expected(expected)),
        ZhCn => format!("第“{item}”题的答案必须是{}。", chinese_expected(expected)),
    };
    let Some(hint) = hint else {
        return base;
    };
    let fix = match (hint, language) {
        (Hint::QuotedNumber, En) => "Send the number without quotes, for example 5 instead of \"5\".".to_owned(),
        (Hint::QuotedNumber, ZhCn) => "请直接发送数字，不要加引号，例如用 5 而不是 \"5\"。".to_owned(),
        (Hint::DecimalComma, En) => {
            "Use a dot as the decimal separator, for example 72.5 instead of \"72,5\".".to_owned()
        }
        (Hint::DecimalComma, ZhCn) => "请使用小数点作为小数分隔符，例如用 72.5 而不是 \"72,5\"。".to_owned(),
        (Hint::FractionalInteger, En) => "Send a whole number without a fraction.".to_owned(),
        (Hint::FractionalInteger, ZhCn) => "请发送不带小数部分的整数。".to_owned(),
        (Hint::DateFormat, En) => "Write the date as YYYY-MM-DD, for example 2026-12-04.".to_owned(),
        (Hint::DateFormat, ZhCn) => "请按 YYYY-MM-DD 格式书写日期，例如 2026-12-04。".to_owned(),
        (Hint::DateTimeFormat, En) => "Write the date-time as 2026-12-04T20:15:00+08:00.".to_owned(),
        (Hint::DateTimeFormat, ZhCn) => "请按 2026-12-04T20:15:00+08:00 格式书写日期时间。".to_owned(),
        (Hint::MissingOffset, En) => "Add the UTC offset, for example +08:00 or Z.".to_owned(),
        (Hint::MissingOffset, ZhCn) => "请加上时区偏移，例如 +08:00 或 Z。".to_owned(),
        (Hint::TimeFormat, En) => "Write the time as hh:mm:ss, for example 08:30:00.".to_owned(),
        (Hint::TimeFormat, ZhCn) => "请按 hh:mm:ss 格式书写时间，例如 08:30:00。".to_owned(),
        (Hint::QuantityObject, En) => "Send an object such as {\"value\": 70.5, \"unit\": \"kg\"}.".to_owned(),
        (Hint::QuantityObject, ZhCn) => "请发送对象，例如 {\"value\": 70.5, \"unit\": \"kg\"}。".to_owned(),
        (Hint::FhirValueType { expected, found }, En) => format!("Use {expected} instead of {found}."),
        (Hint::FhirValueType { expected, found }, ZhCn) => format!("请使用 {expected}，而不是 {found}。"),
    };
    match language {
        En => format!("{base} {fix}"),
        ZhCn => format!("{base}{fix}"),
    }
}

fn english_expected(expected: Expected) -> &'static str {
    match expected {
        Expected::Boolean => "true or false",
        Expected::Integer => "a whole number",
        Expected::Decimal => "a number",
        Expected::String => "a text string",
        Expected::Date => "a date (YYYY-MM-DD)",
        Expected::DateTime => "a date-time with a UTC offset",
        Expected::Time => "a time of day (hh:mm:ss)",
        Expected::Option => "one of the item's option codes",
        Expected::Quantity => "a quantity object with a value and a unit",
        Expected::Group => "an object of the group's items (or an array of them when the group repeats)",
        Expected::Answers => "an array of answers",
    }
}

fn chinese_expected(expected: Expected) -> &'static str {
    match expected {
        Expected::Boolean => " true 或 false",
        Expected::Integer => "整数",
        Expected::Decimal => "数字",
        Expected::String => "文本字符串",
        Expected::Date => "日期（YYYY-MM-DD）",
        Expected::DateTime => "带时区偏移的日期时间",
        Expected::Time => "时间（hh:mm:ss）",
        Expected::Option => "该题的选项代码之一",
        Expected::Quantity => "包含数值和单位的数量对象",
        Expected::Group => "由题组内各题组成的对象（题组可重复时为对象数组）",
        Expected::Answers => "答案数组",
    }
}

fn english_json_type(expected: &str) -> &'static str {
    match expected {
        "string" => "a string",
        "object" => "a JSON object",
        "array" => "an array",
        "number" => "a number",
        "positive integer" => "a whole number of 1 or more",
        _ => "a value of another type",
    }
}

fn chinese_json_type(expected: &str) -> &'static str {
    match expected {
        "string" => "字符串",
        "object" => " JSON 对象",
        "array" => "数组",
        "number" => "数字",
        "positive integer" => "大于等于 1 的整数",
        _ => "其他类型的值",
    }
}

/// Lists at most ten allowed values so a message stays readable.
fn shorten_list(values: &[String], separator: &str) -> String {
    const SHOWN: usize = 10;
    let mut list = values.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(separator);
    if values.len() > SHOWN {
        list.push_str(separator);
        list.push('…');
    }
    list
}

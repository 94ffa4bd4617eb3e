//! How a query-raising finding is kept in `data_queries.params` and read
//! back: the finding's parameters as a JSON object, never the answers, so
//! the message can be rendered later in any language.

use epro_forms::{Localized, Problem, Severity};
use serde_json::{Value, json};

/// Encodes the parameters of a finding that raises a data query.
pub fn encode(problem: &Problem) -> Value {
    match problem {
        Problem::RuleViolated { rule, severity, message } => json!({
            "rule": rule,
            "severity": match severity { Severity::Reject => "reject", Severity::Query => "query" },
            "message": { "en": message.en, "zh-CN": message.zh_cn },
        }),
        Problem::ScoreMismatch { score, computed, sent } => {
            json!({ "score": score, "computed": computed, "sent": sent })
        }
        _ => json!({}),
    }
}

/// Rebuilds the finding from its stored code and parameters, or `None` for a
/// code this version does not render (a newer release wrote it).
pub fn decode(code: &str, params: &Value) -> Option<Problem> {
    let text = |key: &str| params.get(key).and_then(Value::as_str).map(str::to_owned);
    match code {
        "rule_violated" => {
            let message = params.get("message")?;
            Some(Problem::RuleViolated {
                rule: text("rule")?,
                severity: if text("severity").as_deref() == Some("reject") {
                    Severity::Reject
                } else {
                    Severity::Query
                },
                message: Localized {
                    en: message.get("en")?.as_str()?.to_owned(),
                    zh_cn: message.get("zh-CN")?.as_str()?.to_owned(),
                },
            })
        }
        "score_mismatch" => {
            Some(Problem::ScoreMismatch { score: text("score")?, computed: text("computed")?, sent: text("sent")? })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_round_trip() {
        let problems = [
            Problem::RuleViolated {
                rule: "min-max".to_owned(),
                severity: Severity::Query,
                message: Localized { en: "Min above max".to_owned(), zh_cn: "最小值大于最大值".to_owned() },
            },
            Problem::ScoreMismatch { score: "H1/TS".to_owned(), computed: "10".to_owned(), sent: "13".to_owned() },
        ];
        for problem in problems {
            let decoded = decode(problem.code(), &encode(&problem));
            assert_eq!(decoded.as_ref(), Some(&problem));
        }
        assert_eq!(decode("stale_form_version", &json!({})), None);
    }
}

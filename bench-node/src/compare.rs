//! The comparison operators of a setting test, applied to typed values.

use std::fmt;

use serde::Deserialize;

use crate::value::Value;

/// What a setting test asks of the effective value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// The setting has a value (from a flag, a config file or a default).
    Set,
    /// The setting has no value at all.
    Unset,
    Eq,
    Noteq,
    Gt,
    Gte,
    Lt,
    Lte,
    /// A list contains the element, a map has the key, a string the substring.
    Has,
    Nothave,
    Regex,
    /// Every element of the list is one of the allowed ones.
    ValidElements,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Set => "is set",
            Op::Unset => "is not set",
            Op::Eq => "is equal to",
            Op::Noteq => "is not equal to",
            Op::Gt => "is greater than",
            Op::Gte => "is greater or equal to",
            Op::Lt => "is lower than",
            Op::Lte => "is lower or equal to",
            Op::Has => "has",
            Op::Nothave => "does not have",
            Op::Regex => "matches",
            Op::ValidElements => "contains only elements from",
        })
    }
}

impl Op {
    /// Whether the operator needs an expected value in the definition.
    pub fn needs_operand(self) -> bool {
        !matches!(self, Op::Set | Op::Unset)
    }

    /// Applies the operator. `actual` is `None` when no source gives the
    /// setting a value. Errors describe an operand the operator cannot use.
    pub fn apply(self, actual: Option<&Value>, expected: Option<&Value>) -> Result<bool, String> {
        let Some(actual) = actual else {
            // Absent values only satisfy "unset" and the negative operators:
            // an unset list does not have the forbidden element.
            return Ok(matches!(self, Op::Unset | Op::Nothave | Op::Noteq));
        };
        if self == Op::Set {
            return Ok(true);
        }
        if self == Op::Unset {
            return Ok(false);
        }
        let expected = expected.ok_or_else(|| format!("operator '{self}' needs a value"))?;
        match self {
            Op::Eq => Ok(actual == expected),
            Op::Noteq => Ok(actual != expected),
            Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
                let ord = order(actual, expected)?;
                Ok(match self {
                    Op::Gt => ord.is_gt(),
                    Op::Gte => ord.is_ge(),
                    Op::Lt => ord.is_lt(),
                    _ => ord.is_le(),
                })
            }
            Op::Has => has(actual, expected),
            Op::Nothave => has(actual, expected).map(|b| !b),
            Op::Regex => {
                let Value::String(pattern) = expected else {
                    return Err("regex operand must be a string".into());
                };
                let re = regex::Regex::new(pattern).map_err(|e| format!("bad regex: {e}"))?;
                Ok(re.is_match(&actual.to_string()))
            }
            Op::ValidElements => match (actual, expected) {
                (Value::List(items), Value::List(allowed)) => {
                    Ok(items.iter().all(|item| allowed.contains(item)))
                }
                _ => Err("valid_elements compares two lists".into()),
            },
            Op::Set | Op::Unset => unreachable!("handled above"),
        }
    }
}

fn order(actual: &Value, expected: &Value) -> Result<std::cmp::Ordering, String> {
    match (actual, expected) {
        (Value::Int(a), Value::Int(b)) => Ok(a.cmp(b)),
        (Value::Duration(a), Value::Duration(b)) => Ok(a.cmp(b)),
        _ => Err(format!(
            "cannot order '{actual}' against '{expected}': not numbers or durations"
        )),
    }
}

fn has(actual: &Value, expected: &Value) -> Result<bool, String> {
    let needle = expected.to_string();
    Ok(match actual {
        Value::List(items) => items.contains(&needle),
        Value::Map(map) => map.contains_key(&needle),
        Value::String(s) => s.contains(&needle),
        other => return Err(format!("'has' does not apply to '{other}'")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn list(items: &[&str]) -> Value {
        Value::List(items.iter().map(|s| (*s).to_string()).collect())
    }

    #[test]
    fn durations_compare_by_length_not_text() {
        let zero = Value::Duration(Duration::ZERO);
        // kube-bench's string compare lets "0s" pass "not equal to 0".
        assert_eq!(Op::Noteq.apply(Some(&zero), Some(&zero)), Ok(false));
        let five_min = Value::Duration(Duration::from_secs(300));
        let four_h = Value::Duration(Duration::from_secs(4 * 3600));
        assert_eq!(Op::Lt.apply(Some(&five_min), Some(&four_h)), Ok(true));
        assert_eq!(Op::Gte.apply(Some(&five_min), Some(&four_h)), Ok(false));
    }

    #[test]
    fn absent_values_satisfy_only_negative_ops() {
        assert_eq!(Op::Unset.apply(None, None), Ok(true));
        assert_eq!(Op::Set.apply(None, None), Ok(false));
        assert_eq!(
            Op::Nothave.apply(None, Some(&Value::String("x".into()))),
            Ok(true)
        );
        assert_eq!(Op::Eq.apply(None, Some(&Value::Bool(false))), Ok(false));
    }

    #[test]
    fn lists_and_maps() {
        let modes = list(&["Node", "RBAC"]);
        let rbac = Value::String("RBAC".into());
        assert_eq!(Op::Has.apply(Some(&modes), Some(&rbac)), Ok(true));
        // Element match, not substring: "Node" is not "NodeRestriction".
        let plugins = list(&["NodeRestriction"]);
        assert_eq!(
            Op::Has.apply(Some(&plugins), Some(&Value::String("Node".into()))),
            Ok(false)
        );
        let allowed = list(&["a", "b"]);
        assert_eq!(
            Op::ValidElements.apply(Some(&list(&["a"])), Some(&allowed)),
            Ok(true)
        );
        assert_eq!(
            Op::ValidElements.apply(Some(&list(&["c"])), Some(&allowed)),
            Ok(false)
        );
    }

    #[test]
    fn ordering_strings_is_an_error() {
        let s = Value::String("5m".into());
        assert!(Op::Gt.apply(Some(&s), Some(&Value::Int(1))).is_err());
    }

    #[test]
    fn regex_matches_display_form() {
        let addr = Value::String("0.0.0.0:10249".into());
        let pat = Value::String(r"^(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$".into());
        assert_eq!(Op::Regex.apply(Some(&addr), Some(&pat)), Ok(false));
        let addr = Value::String("127.0.0.1:10249".into());
        assert_eq!(Op::Regex.apply(Some(&addr), Some(&pat)), Ok(true));
    }
}

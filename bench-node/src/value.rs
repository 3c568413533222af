//! Typed setting values and the comparisons checks make on them.
//!
//! kube-bench compares everything as strings, so `0s` is "not equal to 0" and
//! passes 4.2.5, and `5m` cannot be compared with `gte` at all. Here every
//! setting is parsed into the type the component gives it (Go durations,
//! booleans, integers, comma lists, `key=value` maps) before any comparison.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value as Json;

/// The type a setting has in the component that reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    Bool,
    Int,
    Duration,
    String,
    /// Comma-separated on the command line, a sequence in a config file.
    List,
    /// `A=true,B=false` on the command line, a mapping in a config file
    /// (feature gates).
    Map,
}

/// A parsed setting value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Duration(Duration),
    String(String),
    List(Vec<String>),
    Map(BTreeMap<String, String>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(n) => write!(f, "{n}"),
            Value::Duration(d) => f.write_str(&format_go_duration(*d)),
            Value::String(s) => f.write_str(s),
            Value::List(items) => f.write_str(&items.join(",")),
            Value::Map(map) => {
                let pairs: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
                f.write_str(&pairs.join(","))
            }
        }
    }
}

impl ValueType {
    /// Parses a command-line value (`--flag=value`).
    pub fn parse_flag(self, raw: &str) -> Result<Value, String> {
        let raw = raw.trim();
        match self {
            ValueType::Bool => parse_bool(raw).map(Value::Bool),
            ValueType::Int => raw
                .parse::<i64>()
                .map(Value::Int)
                .map_err(|_| format!("'{raw}' is not an integer")),
            ValueType::Duration => parse_go_duration(raw).map(Value::Duration),
            ValueType::String => Ok(Value::String(raw.to_string())),
            ValueType::List => Ok(Value::List(split_list(raw))),
            ValueType::Map => {
                let mut map = BTreeMap::new();
                for item in split_list(raw) {
                    let (k, v) = item
                        .split_once('=')
                        .ok_or_else(|| format!("'{item}' is not key=value"))?;
                    map.insert(k.trim().to_string(), v.trim().to_string());
                }
                Ok(Value::Map(map))
            }
        }
    }

    /// Converts a value read from a YAML/JSON config file.
    pub fn from_json(self, json: &Json) -> Result<Value, String> {
        match (self, json) {
            (ValueType::Bool, Json::Bool(b)) => Ok(Value::Bool(*b)),
            (ValueType::Int, Json::Number(n)) => n
                .as_i64()
                .map(Value::Int)
                .ok_or_else(|| format!("{n} is not an integer")),
            (ValueType::String, Json::String(s)) => Ok(Value::String(s.clone())),
            (ValueType::String, Json::Number(n)) => Ok(Value::String(n.to_string())),
            (ValueType::String, Json::Bool(b)) => Ok(Value::String(b.to_string())),
            (ValueType::List, Json::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Json::String(s) => Ok(s.clone()),
                    other => Err(format!("list element {other} is not a string")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::List),
            (ValueType::Map, Json::Object(obj)) => Ok(Value::Map(
                obj.iter()
                    .map(|(k, v)| {
                        let v = match v {
                            Json::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            )),
            // Strings in config files are parsed like flag values: "5m" for a
            // duration, "true" for a bool written with quotes.
            (ty, Json::String(s)) => ty.parse_flag(s),
            (ty, other) => Err(format!("{other} is not a valid {ty:?} value")),
        }
    }

    /// Converts a default or expected value written in the check definitions.
    pub fn from_toml(self, value: &toml::Value) -> Result<Value, String> {
        let json = serde_json::to_value(value).map_err(|e| e.to_string())?;
        self.from_json(&json)
    }
}

fn parse_bool(raw: &str) -> Result<bool, String> {
    // Go's strconv.ParseBool, which the kubelet's flag package uses.
    match raw {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("'{raw}' is not a boolean")),
    }
}

fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parses a Go `time.Duration` string (`4h0m0s`, `5m`, `1.5h`, `300ms`, `0`).
pub fn parse_go_duration(raw: &str) -> Result<Duration, String> {
    let err = || format!("'{raw}' is not a duration");
    let s = raw.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.starts_with('-') {
        return Err(format!("'{raw}' is a negative duration"));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.is_empty() {
        return Err(err());
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        if num_len == 0 {
            return Err(err());
        }
        let number: f64 = rest[..num_len].parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(err()),
        };
        total += number * nanos_per_unit;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(err());
    }
    // Rounding to whole nanoseconds is what Go does as well.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(Duration::from_nanos(total.round() as u64))
}

/// Formats a duration the way Go prints it (`4h0m0s`, `5m0s`, `0s`).
pub fn format_go_duration(d: Duration) -> String {
    let total = d.as_secs();
    let nanos = d.subsec_nanos();
    if total == 0 && nanos == 0 {
        return "0s".to_string();
    }
    if total == 0 {
        return if nanos % 1_000_000 == 0 {
            format!("{}ms", nanos / 1_000_000)
        } else {
            format!("{nanos}ns")
        };
    }
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    let secs = if nanos == 0 {
        format!("{s}s")
    } else {
        let frac = format!("{nanos:09}");
        format!("{s}.{}s", frac.trim_end_matches('0'))
    };
    if h > 0 {
        format!("{h}h{m}m{secs}")
    } else if m > 0 {
        format!("{m}m{secs}")
    } else {
        secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_like_go() {
        let cases = [
            ("0", 0),
            ("0s", 0),
            ("5m", 300),
            ("4h0m0s", 14_400),
            ("1h30m", 5_400),
            ("1.5h", 5_400),
            ("90s", 90),
        ];
        for (raw, secs) in cases {
            assert_eq!(
                parse_go_duration(raw),
                Ok(Duration::from_secs(secs)),
                "{raw}"
            );
        }
        assert_eq!(parse_go_duration("300ms"), Ok(Duration::from_millis(300)));
        for bad in ["", "5", "m", "5x", "-1s", "1h-", "abc"] {
            assert!(parse_go_duration(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn go_durations_format_like_go() {
        assert_eq!(format_go_duration(Duration::ZERO), "0s");
        assert_eq!(format_go_duration(Duration::from_secs(14_400)), "4h0m0s");
        assert_eq!(format_go_duration(Duration::from_secs(300)), "5m0s");
        assert_eq!(format_go_duration(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn flag_values_are_typed() {
        assert_eq!(ValueType::Bool.parse_flag("False"), Ok(Value::Bool(false)));
        assert!(ValueType::Bool.parse_flag("no").is_err());
        assert_eq!(
            ValueType::Map.parse_flag("A=true, B=false"),
            Ok(Value::Map(BTreeMap::from([
                ("A".into(), "true".into()),
                ("B".into(), "false".into())
            ])))
        );
        assert_eq!(
            ValueType::List.parse_flag("Node,RBAC"),
            Ok(Value::List(vec!["Node".into(), "RBAC".into()]))
        );
    }

    #[test]
    fn config_values_are_typed() {
        let j = serde_json::json!("0s");
        assert_eq!(
            ValueType::Duration.from_json(&j),
            Ok(Value::Duration(Duration::ZERO))
        );
        assert!(ValueType::Bool.from_json(&serde_json::json!(3)).is_err());
        assert_eq!(
            ValueType::Bool.from_json(&serde_json::json!("true")),
            Ok(Value::Bool(true))
        );
    }
}

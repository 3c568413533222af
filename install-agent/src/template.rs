//! The small template language of profiles.
//!
//! `{{ key }}` inserts a required value, `{{ key? }}` an optional one. A
//! *line* of a config template (or an *argv element* of a command) that
//! refers to an optional value that is absent is dropped whole, so
//! `qualys_https_proxy={{ https_proxy? }}` disappears when no proxy is
//! configured instead of leaving an empty setting behind. There are no
//! loops, conditionals or escapes beyond that: profiles are data, and a
//! template engine would be attack surface for no gain.

use std::collections::BTreeMap;

use anyhow::{bail, Result};

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Value { key: String, optional: bool },
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// Values available to templates: credential contents and profile values.
pub type Values = BTreeMap<String, String>;

impl Template {
    /// Parse template text; unbalanced or empty `{{ }}` are errors.
    pub fn parse(text: &str) -> Result<Self> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                bail!("unclosed `{{{{` in template");
            };
            let inner = after[..end].trim();
            let (key, optional) = match inner.strip_suffix('?') {
                Some(k) => (k.trim(), true),
                None => (inner, false),
            };
            if key.is_empty()
                || !key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
            {
                bail!("invalid template key {inner:?}");
            }
            pieces.push(Piece::Value {
                key: key.to_owned(),
                optional,
            });
            rest = &after[end + 2..];
        }
        if rest.contains("}}") {
            bail!("stray `}}}}` in template");
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Self { pieces })
    }

    /// Keys the template refers to.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Value { key, .. } => Some(key.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// Render; `None` when an optional value is missing (drop the unit),
    /// an error when a required one is.
    pub fn render(&self, values: &Values) -> Result<Option<String>> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Value { key, optional } => match values.get(key) {
                    Some(v) => out.push_str(v),
                    None if *optional => return Ok(None),
                    None => bail!(
                        "template value {key:?} is missing (no credential file and no default)"
                    ),
                },
            }
        }
        Ok(Some(out))
    }
}

/// Render a multi-line config template: lines referring to an absent
/// optional value are dropped.
pub fn render_text(text: &str, values: &Values) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if let Some(rendered) = Template::parse(line)?.render(values)? {
            out.push_str(&rendered);
        }
    }
    Ok(out)
}

/// Render an argv: elements referring to an absent optional value are dropped.
pub fn render_argv(argv: &[String], values: &Values) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(argv.len());
    for arg in argv {
        if let Some(rendered) = Template::parse(arg)?.render(values)? {
            out.push(rendered);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> Values {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn renders_required_and_drops_lines_with_missing_optional() {
        let text = "id={{ activation_id }}\nproxy={{https_proxy?}}\nend\n";
        let out = render_text(text, &values(&[("activation_id", "A-1")])).expect("render");
        assert_eq!(out, "id=A-1\nend\n");
        let out = render_text(
            text,
            &values(&[("activation_id", "A-1"), ("https_proxy", "http://p:3128")]),
        )
        .expect("render");
        assert_eq!(out, "id=A-1\nproxy=http://p:3128\nend\n");
    }

    #[test]
    fn missing_required_value_is_an_error_naming_the_key() {
        let err = render_text("x={{ customer_id }}", &Values::new()).expect_err("missing");
        assert!(err.to_string().contains("customer_id"));
    }

    #[test]
    fn rejects_malformed_templates() {
        assert!(Template::parse("a {{ b").is_err());
        assert!(Template::parse("a }} b").is_err());
        assert!(Template::parse("{{ }}").is_err());
        assert!(Template::parse("{{ a b }}").is_err());
    }

    #[test]
    fn argv_drops_elements_with_missing_optional() {
        let argv = vec![
            "/bin/act".to_owned(),
            "Id={{id}}".to_owned(),
            "Proxy={{p?}}".to_owned(),
        ];
        let out = render_argv(&argv, &values(&[("id", "7")])).expect("render");
        assert_eq!(out, ["/bin/act", "Id=7"]);
    }

    #[test]
    fn values_are_inserted_verbatim_not_reparsed() {
        let out = render_text("v={{a}}\n", &values(&[("a", "{{b}}")])).expect("render");
        assert_eq!(out, "v={{b}}\n");
    }
}

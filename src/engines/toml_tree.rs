//! [`Tree`] for TOML documents (containerd, CRI-O, podman) on `toml_edit`, so edits keep the
//! comments, key order and formatting of everything they do not touch.

use serde_json::{Map, Number, Value};
use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, TableLike};

use super::change::{ChangeError, Tree, dotted, line_column};

/// Parses TOML text, reporting errors with their line.
pub(crate) fn parse(text: &str) -> Result<DocumentMut, ChangeError> {
    text.parse::<DocumentMut>().map_err(|err| {
        let (line, column) = line_column(text, err.span().map_or(0, |s| s.start));
        ChangeError::Parse {
            line,
            column,
            message: one_line(err.message()),
        }
    })
}

/// The string list at `key` in `text` (`None` when absent or not a list of strings).
pub(crate) fn string_list(text: &str, key: &[String]) -> Result<Option<Vec<String>>, ChangeError> {
    let mut doc = parse(text)?;
    let value = TomlTree(&mut doc).get(key)?;
    Ok(value.and_then(|v| {
        v.as_array().map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
    }))
}

/// Indents keys and table headers that an edit added like their neighbours: a key like an
/// existing sibling key (else as far from its header as the file's other keys are), a table like
/// an existing sibling table, else one step deeper than its parent's header when the file indents
/// nested headers (as `containerd config default` does), else flush left.
pub(crate) fn indent_new_items(doc: &mut DocumentMut) {
    let mut style = Style::default();
    detect_style(doc.as_table(), &mut style);
    let style = Style {
        header_step: style.header_step.or(Some(String::new())),
        key_step: style.key_step.or(Some(String::new())),
    };
    indent_table(doc.as_table_mut(), "", "", &style);
}

#[derive(Default)]
struct Style {
    /// Extra indentation of a nested header relative to its parent's.
    header_step: Option<String>,
    /// Indentation of keys relative to their table's header.
    key_step: Option<String>,
}

fn last_line(prefix: Option<&str>) -> Option<String> {
    prefix.map(|p| p.rsplit('\n').next().unwrap_or("").to_string())
}

fn header_indent(table: &Table) -> Option<String> {
    last_line(table.decor().prefix().and_then(|p| p.as_str()))
}

fn key_indent(table: &Table, name: &str) -> Option<String> {
    last_line(
        table
            .key(name)?
            .leaf_decor()
            .prefix()
            .and_then(|p| p.as_str()),
    )
}

fn detect_style(table: &Table, style: &mut Style) {
    let own = header_indent(table).unwrap_or_default();
    for (name, item) in table.iter() {
        match item {
            Item::Table(sub) => {
                if let Some(indent) = header_indent(sub).filter(|i| !i.is_empty())
                    && style.header_step.is_none()
                    && indent.len() > own.len()
                {
                    style.header_step = Some(indent[own.len()..].to_string());
                }
                detect_style(sub, style);
            }
            Item::Value(_) if style.key_step.is_none() && table.decor().prefix().is_some() => {
                if let Some(indent) = key_indent(table, name)
                    && let Some(step) = indent.strip_prefix(own.as_str())
                {
                    style.key_step = Some(step.to_string());
                }
            }
            _ => {}
        }
    }
}

fn indent_table(table: &mut Table, own: &str, keys: &str, style: &Style) {
    let header_step = style.header_step.as_deref().unwrap_or("");
    let key_step = style.key_step.as_deref().unwrap_or("");
    let sibling = table
        .iter()
        .filter(|(_, item)| item.is_value())
        .find_map(|(name, _)| key_indent(table, name));
    let key_prefix = sibling.unwrap_or_else(|| keys.to_string());
    // A new table is indented like an existing sibling table when there is one, so it reads as
    // that table's peer. Else one step deeper than this table's header, unless this table has no
    // header (the root, or a table named only inside longer headers, like `runtimes` in
    // `[a.containerd.runtimes.runc]`): a level the file does not show adds no indentation.
    let sibling_table = table.iter().find_map(|(_, item)| match item {
        Item::Table(sub) if !sub.is_dotted() && !sub.is_implicit() => header_indent(sub),
        _ => None,
    });
    let headerless = table.is_implicit() || (own.is_empty() && table.decor().prefix().is_none());
    let child = sibling_table.unwrap_or_else(|| {
        if headerless {
            own.to_string()
        } else {
            format!("{own}{header_step}")
        }
    });
    for (mut key, item) in table.iter_mut() {
        match item {
            Item::Value(_) if key.leaf_decor().prefix().is_none() => {
                key.leaf_decor_mut().set_prefix(key_prefix.clone());
            }
            Item::Table(sub) if !sub.is_dotted() => {
                let indent = header_indent(sub).unwrap_or_else(|| {
                    sub.decor_mut().set_prefix(format!("\n{child}"));
                    child.clone()
                });
                let sub_keys = format!("{indent}{key_step}");
                indent_table(sub, &indent, &sub_keys, style);
            }
            _ => {}
        }
    }
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A TOML document as a [`Tree`].
pub(crate) struct TomlTree<'a>(pub(crate) &'a mut DocumentMut);

impl Tree for TomlTree<'_> {
    fn get(&self, key: &[String]) -> Result<Option<Value>, ChangeError> {
        let mut node: &dyn TableLike = self.0.as_table();
        for (depth, part) in key.iter().enumerate() {
            let Some(item) = node.get(part) else {
                return Ok(None);
            };
            if depth + 1 == key.len() {
                return Ok(to_json(item));
            }
            node = item.as_table_like().ok_or_else(|| ChangeError::Type {
                key: dotted(&key[..=depth]),
                found: item_kind(item),
                expected: "a table",
            })?;
        }
        Ok(Some(Value::Object(Map::new())))
    }

    fn is_table(&self, key: &[String]) -> bool {
        let mut node: &dyn TableLike = self.0.as_table();
        for part in key {
            match node.get(part).and_then(Item::as_table_like) {
                Some(next) => node = next,
                None => return false,
            }
        }
        true
    }

    fn set(&mut self, key: &[String], value: &Value) -> Result<(), ChangeError> {
        let Some((last, parents)) = key.split_last() else {
            return Ok(());
        };
        let mut node: &mut dyn TableLike = self.0.as_table_mut();
        let mut inline = false;
        for (depth, part) in parents.iter().enumerate() {
            if node.get(part).is_none() {
                let item = if inline {
                    Item::Value(toml_edit::Value::InlineTable(InlineTable::new()))
                } else {
                    let mut table = Table::new();
                    table.set_implicit(true);
                    Item::Table(table)
                };
                node.insert(part, item);
            }
            let item = node.get_mut(part).ok_or_else(|| ChangeError::Type {
                key: dotted(&key[..=depth]),
                found: "missing",
                expected: "a table",
            })?;
            let found = item_kind(item);
            inline = inline || item.is_inline_table();
            node = item.as_table_like_mut().ok_or_else(|| ChangeError::Type {
                key: dotted(&key[..=depth]),
                found,
                expected: "a table",
            })?;
        }
        let item = to_item(value, inline);
        match node.get_mut(last) {
            // Keep the decoration (comments, spacing) of a value we replace.
            Some(Item::Value(old)) if item.is_value() => {
                let decor = old.decor().clone();
                if let Ok(mut new) = item.into_value() {
                    *new.decor_mut() = decor;
                    *old = new;
                }
            }
            _ => {
                node.insert(last, item);
            }
        }
        Ok(())
    }

    fn remove(&mut self, key: &[String]) {
        let Some((last, parents)) = key.split_last() else {
            return;
        };
        let mut node: &mut dyn TableLike = self.0.as_table_mut();
        for part in parents {
            match node.get_mut(part).and_then(Item::as_table_like_mut) {
                Some(next) => node = next,
                None => return,
            }
        }
        node.remove(last);
    }
}

fn item_kind(item: &Item) -> &'static str {
    match item {
        Item::None => "missing",
        Item::Value(v) => match v {
            toml_edit::Value::String(_) => "a string",
            toml_edit::Value::Integer(_) | toml_edit::Value::Float(_) => "a number",
            toml_edit::Value::Boolean(_) => "a boolean",
            toml_edit::Value::Datetime(_) => "a date",
            toml_edit::Value::Array(_) => "a list",
            toml_edit::Value::InlineTable(_) => "a table",
        },
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "a list of tables",
    }
}

fn to_json(item: &Item) -> Option<Value> {
    match item {
        Item::None => None,
        Item::Value(v) => Some(value_to_json(v)),
        Item::Table(t) => Some(table_to_json(t.iter())),
        Item::ArrayOfTables(a) => Some(Value::Array(
            a.iter().map(|t| table_to_json(t.iter())).collect(),
        )),
    }
}

fn table_to_json<'a>(entries: impl Iterator<Item = (&'a str, &'a Item)>) -> Value {
    let mut map = Map::new();
    for (k, item) in entries {
        if let Some(v) = to_json(item) {
            map.insert(k.to_string(), v);
        }
    }
    Value::Object(map)
}

fn value_to_json(value: &toml_edit::Value) -> Value {
    match value {
        toml_edit::Value::String(s) => Value::String(s.value().clone()),
        toml_edit::Value::Integer(i) => Value::Number(Number::from(*i.value())),
        toml_edit::Value::Float(f) => {
            Number::from_f64(*f.value()).map_or(Value::Null, Value::Number)
        }
        toml_edit::Value::Boolean(b) => Value::Bool(*b.value()),
        toml_edit::Value::Datetime(d) => Value::String(d.value().to_string()),
        toml_edit::Value::Array(a) => Value::Array(a.iter().map(value_to_json).collect()),
        toml_edit::Value::InlineTable(t) => {
            let mut map = Map::new();
            for (k, v) in t.iter() {
                map.insert(k.to_string(), value_to_json(v));
            }
            Value::Object(map)
        }
    }
}

/// Converts a JSON value into a TOML item: objects become `[tables]` (inline tables inside an
/// inline parent), everything else a value.
fn to_item(value: &Value, inline: bool) -> Item {
    match value {
        Value::Object(map) if !inline => {
            let mut table = Table::new();
            for (k, v) in map {
                table.insert(k, to_item(v, false));
            }
            Item::Table(table)
        }
        other => Item::Value(json_to_value(other)),
    }
}

fn json_to_value(value: &Value) -> toml_edit::Value {
    match value {
        Value::Null => toml_edit::Value::from(""),
        Value::Bool(b) => toml_edit::Value::from(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml_edit::Value::from(i),
            None => toml_edit::Value::from(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => toml_edit::Value::from(s.as_str()),
        Value::Array(items) => {
            let mut array = Array::new();
            for item in items {
                array.push(json_to_value(item));
            }
            toml_edit::Value::Array(array)
        }
        Value::Object(map) => {
            let mut table = InlineTable::new();
            for (k, v) in map {
                table.insert(k, json_to_value(v));
            }
            toml_edit::Value::InlineTable(table)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::change::key;

    #[test]
    fn parse_error_names_the_line() {
        let err = parse("a = 1\nb = = 2\n").err().map(|e| e.to_string());
        assert!(
            err.is_some_and(|e| e.starts_with("line 2, column")),
            "line 2 expected"
        );
    }

    #[test]
    fn set_into_inline_table_stays_inline() {
        let mut doc = parse("t = { a = 1 }\n").expect("parses");
        let mut tree = TomlTree(&mut doc);
        tree.set(&key(&["t", "b"]), &Value::Bool(true))
            .expect("set");
        assert_eq!(doc.to_string(), "t = { a = 1 , b = true }\n");
    }
}

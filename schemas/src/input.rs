//! Reading the fields of an input object while collecting every type error, so one 422 names all bad fields.
//!
//! Lago's inputs go through Rails' type casting, so the readers accept what Rails casts (a number where a string is
//! expected, `"true"` for a boolean, `"2"` for an integer) and reject what it cannot (an object where a string is
//! expected) with `value_is_invalid`.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::ValidationErrors;

/// A decimal from its text (`"12"`, `"0.5"`, `"1e3"`); `None` when it is not a finite number.
pub fn parse_decimal(s: &str) -> Option<Decimal> {
    let s = s.trim();
    Decimal::from_str(s).ok().or_else(|| Decimal::from_scientific(s).ok())
}

/// A field as sent: absent (keep the old value on update), explicitly null (clear it), or a value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Field<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<T> Field<T> {
    /// The value, or `None` when absent or null.
    pub fn value(self) -> Option<T> {
        match self {
            Field::Value(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_ref(&self) -> Field<&T> {
        match self {
            Field::Absent => Field::Absent,
            Field::Null => Field::Null,
            Field::Value(v) => Field::Value(v),
        }
    }

    pub fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }

    /// For an update: the new value when sent (null clears), else the current one.
    pub fn or_keep(self, current: Option<T>) -> Option<T> {
        match self {
            Field::Absent => current,
            Field::Null => None,
            Field::Value(v) => Some(v),
        }
    }
}

/// Reads typed fields out of one JSON object, recording `value_is_invalid` for each field of the wrong type.
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    prefix: String,
    pub errors: ValidationErrors,
}

impl<'a> Fields<'a> {
    pub fn new(map: &'a Map<String, Value>) -> Self {
        Fields { map, prefix: String::new(), errors: ValidationErrors::new() }
    }

    /// Error keys get `prefix` in front, for nested objects (Lago's keys are plain field names at the top level).
    pub fn with_prefix(map: &'a Map<String, Value>, prefix: impl Into<String>) -> Self {
        Fields { map, prefix: prefix.into(), errors: ValidationErrors::new() }
    }

    pub fn key(&self, field: &str) -> String {
        format!("{}{}", self.prefix, field)
    }

    fn invalid(&mut self, field: &str) {
        let key = self.key(field);
        self.errors.add(key, "value_is_invalid");
    }

    pub fn raw(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field)
    }

    pub fn string(&mut self, field: &str) -> Field<String> {
        match self.map.get(field) {
            None => Field::Absent,
            Some(Value::Null) => Field::Null,
            Some(Value::String(s)) => Field::Value(s.clone()),
            Some(Value::Number(n)) => Field::Value(n.to_string()),
            Some(Value::Bool(b)) => Field::Value(b.to_string()),
            Some(_) => {
                self.invalid(field);
                Field::Absent
            }
        }
    }

    pub fn bool(&mut self, field: &str) -> Field<bool> {
        match self.map.get(field) {
            None => Field::Absent,
            Some(Value::Null) => Field::Null,
            Some(Value::Bool(b)) => Field::Value(*b),
            Some(Value::String(s)) if matches!(s.as_str(), "true" | "1" | "t") => Field::Value(true),
            Some(Value::String(s)) if matches!(s.as_str(), "false" | "0" | "f") => Field::Value(false),
            Some(Value::Number(n)) if n.as_i64() == Some(1) => Field::Value(true),
            Some(Value::Number(n)) if n.as_i64() == Some(0) => Field::Value(false),
            Some(_) => {
                self.invalid(field);
                Field::Absent
            }
        }
    }

    pub fn int(&mut self, field: &str) -> Field<i64> {
        match self.map.get(field) {
            None => Field::Absent,
            Some(Value::Null) => Field::Null,
            Some(Value::Number(n)) if n.as_i64().is_some() => Field::Value(n.as_i64().unwrap_or_default()),
            Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => {
                Field::Value(s.trim().parse::<i64>().unwrap_or_default())
            }
            Some(_) => {
                self.invalid(field);
                Field::Absent
            }
        }
    }

    /// A decimal number: a JSON number or a numeric string (`"0.5"`), never a float on the way in.
    pub fn decimal(&mut self, field: &str) -> Field<Decimal> {
        match self.map.get(field) {
            None => Field::Absent,
            Some(Value::Null) => Field::Null,
            Some(Value::Number(n)) => match parse_decimal(&n.to_string()) {
                Some(d) => Field::Value(d),
                None => {
                    self.invalid(field);
                    Field::Absent
                }
            },
            Some(Value::String(s)) => match parse_decimal(s) {
                Some(d) => Field::Value(d),
                None => {
                    self.invalid(field);
                    Field::Absent
                }
            },
            Some(_) => {
                self.invalid(field);
                Field::Absent
            }
        }
    }

    /// A nested object.
    pub fn object(&mut self, field: &str) -> Field<&'a Map<String, Value>> {
        match self.map.get(field) {
            None => Field::Absent,
            Some(Value::Null) => Field::Null,
            Some(Value::Object(m)) => Field::Value(m),
            Some(_) => {
                self.invalid(field);
                Field::Absent
            }
        }
    }

    /// A list of objects (absent and null are both an empty list).
    pub fn objects(&mut self, field: &str) -> Field<Vec<&'a Map<String, Value>>> {
        match self.map.get(field) {
            None => Field::Absent,
            Some(Value::Null) => Field::Null,
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::Object(m) => out.push(m),
                        _ => {
                            self.invalid(field);
                            return Field::Absent;
                        }
                    }
                }
                Field::Value(out)
            }
            Some(_) => {
                self.invalid(field);
                Field::Absent
            }
        }
    }

    /// A list of strings (numbers are taken as their text, as Rails does).
    pub fn strings(&mut self, field: &str) -> Field<Vec<String>> {
        match self.map.get(field) {
            None => Field::Absent,
            Some(Value::Null) => Field::Null,
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        Value::Number(n) => out.push(n.to_string()),
                        _ => {
                            self.invalid(field);
                            return Field::Absent;
                        }
                    }
                }
                Field::Value(out)
            }
            Some(_) => {
                self.invalid(field);
                Field::Absent
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn casts_like_rails_and_collects_every_type_error() {
        let m =
            obj(json!({"name": 12, "recurring": "true", "precision": "3", "bad": {"x": 1}, "flag": [1], "n": null}));
        let mut f = Fields::new(&m);
        assert_eq!(f.string("name"), Field::Value("12".into()));
        assert_eq!(f.bool("recurring"), Field::Value(true));
        assert_eq!(f.int("precision"), Field::Value(3));
        assert_eq!(f.string("bad"), Field::Absent);
        assert_eq!(f.bool("flag"), Field::Absent);
        assert_eq!(f.string("n"), Field::Null);
        assert_eq!(f.string("missing"), Field::Absent);
        assert_eq!(f.errors.get("bad"), Some(&["value_is_invalid".to_string()][..]));
        assert!(f.errors.has("flag"));
        assert!(!f.errors.has("name"));
    }

    #[test]
    fn decimals_come_from_numbers_and_strings() {
        let m = obj(json!({"a": 0.5, "b": "12.25", "c": "x", "d": 3, "e": {"x": 1}}));
        let mut f = Fields::new(&m);
        assert_eq!(f.decimal("a"), Field::Value(Decimal::new(5, 1)));
        assert_eq!(f.decimal("b"), Field::Value(Decimal::new(1225, 2)));
        assert_eq!(f.decimal("c"), Field::Absent);
        assert_eq!(f.decimal("d"), Field::Value(Decimal::from(3)));
        assert_eq!(f.decimal("e"), Field::Absent);
        assert!(f.errors.has("c") && f.errors.has("e") && !f.errors.has("a"));
    }

    #[test]
    fn or_keep_follows_update_semantics() {
        assert_eq!(Field::<i32>::Absent.or_keep(Some(1)), Some(1));
        assert_eq!(Field::<i32>::Null.or_keep(Some(1)), None);
        assert_eq!(Field::Value(2).or_keep(Some(1)), Some(2));
    }
}

//! Query parameters: each endpoint declares a list of [`Param`]s; [`parse`] checks a raw
//! query string against it.
//!
//! The raw string is parsed by hand rather than with `Query<T>` because contract §4.1 needs
//! what serde cannot see: a known parameter given twice or empty is an error, while unknown
//! parameters are ignored. The same declarations produce the OpenAPI parameters.

use chrono::NaiveDate;
use chrono_tz::Tz;

use super::error::ApiError;
use crate::events::{Id, parse_date, parse_id};
use crate::query::DateRange;

/// One query parameter an endpoint takes.
#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    /// Whether the request must give it.
    pub required: bool,
    /// One sentence for the OpenAPI document.
    pub doc: &'static str,
}

/// What a parameter accepts.
#[derive(Debug)]
pub enum Kind {
    /// A hyphenated UUID, any letter case.
    Id,
    /// A strict `YYYY-MM-DD` date.
    Date,
    /// An IANA time zone name; absent means the project's zone.
    Tz,
    /// Plain decimal digits (no sign, space or fraction) in `min..=max`.
    Int { min: u64, max: Option<u64>, default: u64 },
    /// A plain decimal number in `(0, max]`.
    Positive { max: f64, default: f64 },
    /// One of `values` (case-sensitive).
    Choice { values: &'static [&'static str], default: &'static str },
}

pub const PROJECT_ID: Param = Param { name: "project_id", kind: Kind::Id, required: true, doc: "The project to read." };

pub const FROM: Param = Param {
    name: "from",
    kind: Kind::Date,
    required: false,
    doc: "First local day of the period (inclusive); open when absent.",
};
pub const TO: Param = Param {
    name: "to",
    kind: Kind::Date,
    required: false,
    doc: "Last local day of the period (inclusive); open when absent.",
};
pub const FROM_REQUIRED: Param = Param { required: true, doc: "First local day of the period (inclusive).", ..FROM };
pub const TO_REQUIRED: Param = Param { required: true, doc: "Last local day of the period (inclusive).", ..TO };

pub const TZ: Param = Param {
    name: "tz",
    kind: Kind::Tz,
    required: false,
    doc: "IANA time zone of the days and hours; default: the project's zone.",
};

pub const OFFSET: Param =
    Param { name: "offset", kind: Kind::Int { min: 0, max: None, default: 0 }, required: false, doc: "Items to skip." };

/// Name of the parameters made by [`limit`].
pub const LIMIT: &str = "limit";

/// `limit` from 1 to `max`, `default` when absent.
pub const fn limit(max: u64, default: u64) -> Param {
    Param {
        name: LIMIT,
        kind: Kind::Int { min: 1, max: Some(max), default },
        required: false,
        doc: "Most items to return.",
    }
}

/// A validated parameter value.
#[derive(Clone, Copy, Debug)]
enum Value {
    Id(Id),
    Date(NaiveDate),
    Tz(Tz),
    Int(u64),
    Number(f64),
    Choice(&'static str),
}

/// The parameters of one request, all valid, defaults filled in.
#[derive(Debug)]
pub struct Params {
    values: Vec<(&'static str, Value)>,
}

/// Checks `raw` against `spec`. The first problem wins: duplicates and empty values in the
/// order given, then each declared parameter in declaration order, then `from > to`.
pub fn parse(raw: Option<&str>, spec: &'static [Param]) -> Result<Params, ApiError> {
    let mut given: Vec<(&'static Param, String)> = Vec::new();
    for (name, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        let Some(param) = spec.iter().find(|p| p.name == name) else {
            continue;
        };
        if given.iter().any(|(p, _)| p.name == param.name) {
            return Err(ApiError::invalid(param.name, "is given more than once"));
        }
        if value.is_empty() {
            return Err(ApiError::invalid(param.name, "is empty"));
        }
        given.push((param, value.into_owned()));
    }

    let mut values = Vec::with_capacity(spec.len());
    for param in spec {
        match given.iter().find(|(p, _)| p.name == param.name) {
            Some((_, text)) => values.push((param.name, value(param, text)?)),
            None if param.required => return Err(ApiError::invalid(param.name, "is required")),
            None => {
                if let Some(default) = default(&param.kind) {
                    values.push((param.name, default));
                }
            }
        }
    }
    let params = Params { values };

    if let (Some(from), Some(to)) = (params.date("from"), params.date("to"))
        && from > to
    {
        return Err(ApiError::invalid("from", "is after `to`"));
    }
    Ok(params)
}

/// A value given as (lossily decoded) text. Any replacement character from invalid UTF-8
/// makes the value malformed, whatever the kind.
fn value(param: &Param, text: &str) -> Result<Value, ApiError> {
    let name = param.name;
    match &param.kind {
        Kind::Id => parse_id(text).map(Value::Id).ok_or_else(|| ApiError::invalid(name, "must be a UUID")),
        Kind::Date => {
            parse_date(text).map(Value::Date).ok_or_else(|| ApiError::invalid(name, "must be a date YYYY-MM-DD"))
        }
        Kind::Tz => {
            text.parse::<Tz>().map(Value::Tz).map_err(|_| ApiError::invalid(name, "must be an IANA time zone name"))
        }
        Kind::Int { min, max, .. } => {
            let range = match max {
                Some(max) => format!("must be an integer from {min} to {max}"),
                None => format!("must be an integer of at least {min}"),
            };
            if !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ApiError::invalid(name, range));
            }
            // Only digits, so the only parse failure is overflow: out of range too.
            match text.parse::<u64>() {
                Ok(n) if n >= *min && max.is_none_or(|max| n <= max) => Ok(Value::Int(n)),
                _ => Err(ApiError::invalid(name, range)),
            }
        }
        Kind::Positive { max, .. } => {
            let msg = || ApiError::invalid(name, format!("must be a number greater than 0 and at most {max}"));
            let plain = text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                && text.bytes().filter(|&b| b == b'.').count() <= 1
                && text.bytes().any(|b| b.is_ascii_digit());
            if !plain {
                return Err(msg());
            }
            match text.parse::<f64>() {
                Ok(x) if x > 0.0 && x <= *max => Ok(Value::Number(x)),
                _ => Err(msg()),
            }
        }
        Kind::Choice { values, .. } => values
            .iter()
            .find(|v| **v == text)
            .map(|v| Value::Choice(v))
            .ok_or_else(|| ApiError::invalid(name, format!("must be one of: {}", values.join(", ")))),
    }
}

fn default(kind: &Kind) -> Option<Value> {
    match kind {
        Kind::Int { default, .. } => Some(Value::Int(*default)),
        Kind::Positive { default, .. } => Some(Value::Number(*default)),
        Kind::Choice { default, .. } => Some(Value::Choice(default)),
        Kind::Id | Kind::Date | Kind::Tz => None,
    }
}

impl Params {
    fn get(&self, name: &str) -> Option<Value> {
        self.values.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    /// An endpoint asked for a parameter it does not declare: a bug.
    fn undeclared(name: &str) -> ApiError {
        ApiError::internal(format!("parameter `{name}` read but not declared or of another kind"))
    }

    pub fn project_id(&self) -> Result<Id, ApiError> {
        match self.get(PROJECT_ID.name) {
            Some(Value::Id(id)) => Ok(id),
            _ => Err(Self::undeclared(PROJECT_ID.name)),
        }
    }

    /// A date, if given.
    pub fn date(&self, name: &str) -> Option<NaiveDate> {
        match self.get(name) {
            Some(Value::Date(d)) => Some(d),
            _ => None,
        }
    }

    /// `from`/`to`, either side open when absent.
    pub fn range(&self) -> DateRange {
        DateRange { from: self.date(FROM.name), to: self.date(TO.name) }
    }

    /// Both sides of a range whose `from` and `to` are required.
    pub fn closed_range(&self) -> Result<(NaiveDate, NaiveDate), ApiError> {
        match (self.date(FROM.name), self.date(TO.name)) {
            (Some(from), Some(to)) => Ok((from, to)),
            _ => Err(Self::undeclared("from/to")),
        }
    }

    /// `tz` if given.
    pub fn tz(&self) -> Option<Tz> {
        match self.get(TZ.name) {
            Some(Value::Tz(tz)) => Some(tz),
            _ => None,
        }
    }

    pub fn int(&self, name: &str) -> Result<u64, ApiError> {
        match self.get(name) {
            Some(Value::Int(n)) => Ok(n),
            _ => Err(Self::undeclared(name)),
        }
    }

    pub fn number(&self, name: &str) -> Result<f64, ApiError> {
        match self.get(name) {
            Some(Value::Number(x)) => Ok(x),
            _ => Err(Self::undeclared(name)),
        }
    }

    pub fn choice(&self, name: &str) -> Result<&'static str, ApiError> {
        match self.get(name) {
            Some(Value::Choice(c)) => Ok(c),
            _ => Err(Self::undeclared(name)),
        }
    }
}

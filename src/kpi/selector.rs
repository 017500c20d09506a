//! Selectors: where a model's rows are in its request and response bodies.
//!
//! - a JSON pointer (RFC 6901) in which one `*` stands for the batch
//!   dimension: `/instances/*/age` gives one value per instance,
//!   `/predictions/*` one per prediction; without `*` the body is one row;
//! - a KServe V2 tensor by name (`inputs` of the request, `outputs` of the
//!   response) and column: the data is row-major by `shape`, so an input of
//!   shape [N, F] gives N rows and column c of row i is `data[i * F + c]`
//!   (nested `data` arrays are flattened first, as the protocol allows).
//!
//! A selector that does not match gives a [`SelectError`], which the
//! caller counts and logs; nothing here panics on hostile input.

use serde_json::Value;

/// Which body a selector reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The request body (KServe V2 `inputs`).
    Request,
    /// The response body (KServe V2 `outputs`).
    Response,
}

/// A checked selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// A JSON pointer's unescaped tokens; `None` is the `*` (at most one).
    Pointer(Vec<Option<String>>),
    /// A KServe V2 tensor by name, and a column for a 2-D tensor.
    Tensor {
        /// The tensor's `name`.
        name: String,
        /// The column of an [N, F] tensor; none for a 1-D [N] tensor.
        column: Option<usize>,
    },
}

/// A selector that cannot be built from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// Not a JSON pointer (it must be empty or start with `/`).
    #[error("`{0}` is not a JSON pointer (it must start with `/`)")]
    NotAPointer(String),
    /// More than one `*`.
    #[error("`{0}` has more than one `*`; only the batch dimension may be `*`")]
    SeveralStars(String),
    /// A `~` not followed by `0` or `1`.
    #[error("`{0}` has a `~` that is not `~0` or `~1`")]
    BadEscape(String),
}

/// A body a selector does not match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// The body is not JSON.
    #[error("the body is not JSON")]
    NotJson,
    /// A pointer token found nothing (or `*` met something not an array).
    #[error("nothing at `{0}`")]
    Missing(String),
    /// No tensor of that name, or its shape and data disagree.
    #[error("tensor `{name}`: {problem}")]
    Tensor {
        /// The tensor's name.
        name: String,
        /// What is wrong.
        problem: String,
    },
}

impl Selector {
    /// Parses an RFC 6901 pointer in which a token `*` is the batch dimension.
    pub fn pointer(text: &str) -> Result<Self, SelectorError> {
        if text.is_empty() {
            return Ok(Selector::Pointer(Vec::new()));
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(SelectorError::NotAPointer(text.to_owned()));
        };
        let mut tokens = Vec::new();
        for raw in rest.split('/') {
            if raw == "*" {
                tokens.push(None);
                continue;
            }
            // SPEC: RFC 6901 section 4: `~1` -> `/` first, then `~0` -> `~`.
            let mut token = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    token.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => token.push('~'),
                    Some('1') => token.push('/'),
                    _ => return Err(SelectorError::BadEscape(text.to_owned())),
                }
            }
            tokens.push(Some(token));
        }
        if tokens.iter().filter(|t| t.is_none()).count() > 1 {
            return Err(SelectorError::SeveralStars(text.to_owned()));
        }
        Ok(Selector::Pointer(tokens))
    }

    /// The values of each row, in row order.
    pub fn select(&self, side: Side, body: &Value) -> Result<Vec<Value>, SelectError> {
        match self {
            Selector::Pointer(tokens) => select_pointer(tokens, body),
            Selector::Tensor { name, column } => select_tensor(side, name, *column, body),
        }
    }
}

fn step<'a>(value: &'a Value, token: &str) -> Option<&'a Value> {
    match value {
        Value::Object(members) => members.get(token),
        // SPEC: RFC 6901 section 4: array-index = %x30 / ( %x31-39 *(%x30-39) ):
        // decimal digits only (no sign, which `parse` would take), no leading zeros.
        Value::Array(items)
            if token.bytes().all(|b| b.is_ascii_digit())
                && (token == "0" || !token.starts_with('0')) =>
        {
            items.get(token.parse::<usize>().ok()?)
        }
        _ => None,
    }
}

fn walk<'a>(mut value: &'a Value, tokens: &[Option<String>]) -> Option<&'a Value> {
    for token in tokens {
        value = step(value, token.as_deref()?)?;
    }
    Some(value)
}

fn shown(tokens: &[Option<String>]) -> String {
    tokens
        .iter()
        .map(|t| format!("/{}", t.as_deref().unwrap_or("*")))
        .collect()
}

fn select_pointer(tokens: &[Option<String>], body: &Value) -> Result<Vec<Value>, SelectError> {
    let missing = || SelectError::Missing(shown(tokens));
    match tokens.iter().position(Option::is_none) {
        None => walk(body, tokens)
            .map(|v| vec![v.clone()])
            .ok_or_else(missing),
        Some(star) => {
            let Value::Array(rows) = walk(body, &tokens[..star]).ok_or_else(missing)? else {
                return Err(missing());
            };
            rows.iter()
                .map(|row| walk(row, &tokens[star + 1..]).cloned().ok_or_else(missing))
                .collect()
        }
    }
}

fn flatten(value: &Value, out: &mut Vec<Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| flatten(item, out)),
        other => out.push(other.clone()),
    }
}

fn select_tensor(
    side: Side,
    name: &str,
    column: Option<usize>,
    body: &Value,
) -> Result<Vec<Value>, SelectError> {
    let problem = |problem: &str| SelectError::Tensor {
        name: name.to_owned(),
        problem: problem.to_owned(),
    };
    let list = match side {
        Side::Request => "inputs",
        Side::Response => "outputs",
    };
    let tensor = body[list]
        .as_array()
        .and_then(|tensors| tensors.iter().find(|t| t["name"] == name))
        .ok_or_else(|| problem(&format!("not among the body's `{list}`")))?;
    let shape: Vec<usize> = tensor["shape"]
        .as_array()
        .ok_or_else(|| problem("no `shape`"))?
        .iter()
        .map(|d| d.as_u64().map(|d| d as usize))
        .collect::<Option<_>>()
        .ok_or_else(|| problem("`shape` is not a list of sizes"))?;
    let mut data = Vec::new();
    flatten(&tensor["data"], &mut data);
    let (rows, width) = match shape.as_slice() {
        [rows] => (*rows, 1),
        [rows, width] => (*rows, *width),
        _ => return Err(problem("only [N] and [N, F] tensors have rows")),
    };
    if rows.checked_mul(width) != Some(data.len()) {
        return Err(problem("`data` does not hold `shape`'s values"));
    }
    let column = match (column, width) {
        (None, 1) => 0,
        (None, _) => return Err(problem("a tensor of shape [N, F] needs a column")),
        (Some(c), w) if c < w => c,
        (Some(c), w) => return Err(problem(&format!("column {c} is outside its {w} columns"))),
    };
    Ok((0..rows)
        .map(|row| data[row * width + column].clone())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_select_one_value_per_batch_row() {
        let body =
            json!({"instances": [{"age": 30, "a/b": 1}, {"age": 41, "a/b": 2}], "x": {"~k": 5}});
        let rows = Selector::pointer("/instances/*/age")
            .unwrap()
            .select(Side::Request, &body);
        assert_eq!(rows, Ok(vec![json!(30), json!(41)]));
        let escaped = Selector::pointer("/instances/*/a~1b")
            .unwrap()
            .select(Side::Request, &body);
        assert_eq!(escaped, Ok(vec![json!(1), json!(2)]));
        let single = Selector::pointer("/x/~0k")
            .unwrap()
            .select(Side::Request, &body);
        assert_eq!(single, Ok(vec![json!(5)]));
        let predictions = json!({"predictions": [0.1, 0.9]});
        assert_eq!(
            Selector::pointer("/predictions/*")
                .unwrap()
                .select(Side::Response, &predictions),
            Ok(vec![json!(0.1), json!(0.9)])
        );
        assert_eq!(
            Selector::pointer("/predictions/1")
                .unwrap()
                .select(Side::Response, &predictions),
            Ok(vec![json!(0.9)])
        );
    }

    #[test]
    fn pointer_mismatches_are_errors_not_panics() {
        let body = json!({"instances": [{"age": 30}, {"other": 1}], "n": 3});
        for pointer in [
            "/instances/*/age",
            "/n/*",
            "/missing/*",
            "/instances/01",
            "/instances/+1",
            "/instances/ 1",
            "/instances/9",
        ] {
            assert!(
                Selector::pointer(pointer)
                    .unwrap()
                    .select(Side::Request, &body)
                    .is_err(),
                "{pointer}"
            );
        }
        assert!(matches!(
            Selector::pointer("a/b"),
            Err(SelectorError::NotAPointer(_))
        ));
        assert!(matches!(
            Selector::pointer("/*/x/*"),
            Err(SelectorError::SeveralStars(_))
        ));
        assert!(matches!(
            Selector::pointer("/a~2"),
            Err(SelectorError::BadEscape(_))
        ));
    }

    #[test]
    fn kserve_tensors_are_read_row_major_by_shape() {
        let request = json!({"inputs": [
            {"name": "features", "shape": [2, 3], "datatype": "FP32", "data": [45, 1500, 12, 23, 12000, 48]},
            {"name": "nested", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]}
        ]});
        let column = |name: &str, c| Selector::Tensor {
            name: name.into(),
            column: Some(c),
        };
        assert_eq!(
            column("features", 1).select(Side::Request, &request),
            Ok(vec![json!(1500), json!(12000)])
        );
        assert_eq!(
            column("nested", 1).select(Side::Request, &request),
            Ok(vec![json!(2), json!(4)])
        );
        let response = json!({"outputs": [{"name": "score", "shape": [2], "datatype": "FP32", "data": [0.2, 0.7]}]});
        let score = Selector::Tensor {
            name: "score".into(),
            column: None,
        };
        assert_eq!(
            score.select(Side::Response, &response),
            Ok(vec![json!(0.2), json!(0.7)])
        );
        // The request has no `outputs`, a column out of range, a shape that lies.
        assert!(score.select(Side::Request, &response).is_err());
        assert!(
            column("features", 3)
                .select(Side::Request, &request)
                .is_err()
        );
        let lying = json!({"inputs": [{"name": "f", "shape": [3, 3], "data": [1, 2]}]});
        assert!(column("f", 0).select(Side::Request, &lying).is_err());
        let huge = json!({"inputs": [{"name": "f", "shape": [u64::MAX, 2], "data": [1, 2]}]});
        assert!(column("f", 0).select(Side::Request, &huge).is_err());
    }
}

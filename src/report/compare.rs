//! The first figure where two reports differ, named by its path in
//! report.json (`traffic.by_outcome.counts.served`).

use serde_json::Value;

/// The first difference between the report as recomputed (`expected`)
/// and as found, in member order: `path: the report says X, recomputed Y`.
/// `None` when they are equal.
pub fn first_difference(expected: &Value, found: &Value) -> Option<String> {
    walk(expected, found, &mut String::new())
}

fn walk(expected: &Value, found: &Value, path: &mut String) -> Option<String> {
    let here = |path: &str| {
        if path.is_empty() {
            "(the whole report)".to_owned()
        } else {
            path.to_owned()
        }
    };
    match (expected, found) {
        (Value::Object(want), Value::Object(have)) => {
            for (name, value) in want {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(name);
                let Some(other) = have.get(name) else {
                    return Some(format!("{}: missing from the report", here(path)));
                };
                if let Some(found) = walk(value, other, path) {
                    return Some(found);
                }
                path.truncate(len);
            }
            have.keys()
                .find(|name| !want.contains_key(*name))
                .map(|name| {
                    format!(
                        "{}: not a figure the bundle gives",
                        here(&format!("{path}.{name}"))
                    )
                })
        }
        (Value::Array(want), Value::Array(have)) => {
            for (index, (value, other)) in want.iter().zip(have).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{index}]"));
                if let Some(found) = walk(value, other, path) {
                    return Some(found);
                }
                path.truncate(len);
            }
            (want.len() != have.len()).then(|| {
                format!(
                    "{}: the report lists {} items, recomputed {}",
                    here(path),
                    have.len(),
                    want.len()
                )
            })
        }
        _ => (expected != found).then(|| {
            format!(
                "{}: the report says {found}, recomputed from the bundle {expected}",
                here(path)
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::first_difference;
    use serde_json::json;

    #[test]
    fn names_the_first_differing_figure() {
        let a = json!({"traffic": {"by_outcome": {"served": 3}}, "x": [1, 2]});
        assert_eq!(first_difference(&a, &a), None);
        let b = json!({"traffic": {"by_outcome": {"served": 4}}, "x": [1, 2]});
        assert_eq!(
            first_difference(&a, &b).unwrap(),
            "traffic.by_outcome.served: the report says 4, recomputed from the bundle 3"
        );
        let c = json!({"traffic": {"by_outcome": {"served": 3}}, "x": [1, 5]});
        assert!(first_difference(&a, &c).unwrap().starts_with("x[1]:"));
    }
}

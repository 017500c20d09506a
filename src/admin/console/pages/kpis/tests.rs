//! The KPI page's tables from a known answer: every member shown,
//! escaped, with column headers; the bounds of the history said.

use super::*;
use serde_json::json;

fn current() -> Value {
    json!({
        "model": "scorer",
        "settings": {"window": 6, "min_group_size": 2, "max_groups": 50, "reference_rows": 2},
        "fairness": {"rows_in_window": 6, "rows_total": 9, "attributes": [{
            "name": "s<x>",
            "groups": [
                {"group": "f&", "rows": 3, "selected": 2, "labeled": 3, "tp": 1, "fp": 1,
                 "tn": 1, "fn": 0, "eligible": true, "selection_rate": 0.6666666666666666,
                 "tpr": 1.0, "fpr": 0.5},
                {"group": "m", "rows": 1, "selected": 0, "labeled": 0, "tp": 0, "fp": 0,
                 "tn": 0, "fn": 0, "eligible": false, "selection_rate": 0.0,
                 "tpr": null, "fpr": null}],
            "missing_rows": 2, "overflow_rows": 0,
            "demographic_parity_difference": null, "demographic_parity_ratio": null,
            "equal_opportunity_difference": null, "equalized_odds_difference": null}]},
        "drift": [{"version": "1", "reference_state": "ready", "reference_source": "first_rows",
            "reference_rows": 2, "rows_in_window": 4, "rows_total": 4, "features": [{
                "name": "amount", "kind": "numeric", "edges": [11.0, 19.0],
                "reference_counts": [1, 0, 1], "window_counts": [0, 1, 3], "window_missing": 0,
                "psi": 4.2, "js_distance": 0.5,
                "ks": {"statistic": 0.75, "at_edge": 11.0, "edges": [15.0],
                       "reference_counts": [1, 1], "window_counts": [1, 3]}}]}],
    })
}

fn history(limited_by: Value) -> Value {
    json!({"range": {"from_seq": 5, "to_seq": 90}, "read": 85, "read_from_seq": 40,
           "limited_by": limited_by, "max_snapshots": 500, "read_budget": 100000,
           "from_memory": 0, "snapshots": [{"seq": 7}], "registers": []})
}

#[test]
fn the_current_window_is_tables_of_every_count_and_figure() {
    let history = history(Value::Null);
    let over = Over {
        model: "scorer",
        from: "2026-12-01T00:00:00.000Z",
        to: "",
        history: Ok(&history),
        charts: "",
    };
    let page = kpi_model(&over, &current());
    assert!(page.contains(
        "<h4>Attribute s&lt;x&gt;</h4><table class=\"fairness-groups\" data-attribute=\"s&lt;x&gt;\">\
         <thead><tr><th scope=\"col\">group</th><th scope=\"col\">rows</th>"
    ), "{page}");
    assert!(
        page.contains(
            "<tr><th scope=\"row\">f&amp;</th><td class=\"n\">3</td><td class=\"n\">2</td>\
         <td class=\"n\">3</td><td class=\"n\">1</td><td class=\"n\">1</td><td class=\"n\">1</td>\
         <td class=\"n\">0</td><td class=\"n\">true</td><td class=\"n\">0.6666666666666666</td>\
         <td class=\"n\">1.0</td><td class=\"n\">0.5</td></tr>"
        ),
        "{page}"
    );
    assert!(page.contains(
        "<tr><th scope=\"row\">demographic parity difference</th><td class=\"n\">-</td></tr>"
    ));
    assert!(
        page.contains("<tr><th scope=\"row\">rows without a value</th><td class=\"n\">2</td></tr>")
    );
    assert!(
        page.contains(
            "<tr><th scope=\"row\">amount</th><td class=\"n\">numeric</td><td class=\"n\">4.2</td>\
         <td class=\"n\">0.5</td><td class=\"n\">0.75</td><td class=\"n\">11.0</td>\
         <td class=\"n\">2</td><td class=\"n\">4</td><td class=\"n\">0</td></tr>"
        ),
        "{page}"
    );
    assert!(page.contains("<tr><th scope=\"row\">&gt; 11.0, ≤ 19.0</th><td class=\"n\">0</td><td class=\"n\">1</td></tr>"));
    assert!(page.contains(
        "<tr><th scope=\"row\">&gt; 15.0</th><td class=\"n\">1</td><td class=\"n\">3</td></tr>"
    ));
    assert!(page.contains("<tr><th scope=\"row\">reference</th><td class=\"n\">ready</td></tr>"));
    assert!(page.contains("<details id=\"current-json\">"));
    assert!(
        page.contains("&quot;s&lt;x&gt;&quot;"),
        "the raw answer, escaped"
    );
    assert!(page.contains("id=\"no-snapshots\""));
    assert!(page.contains("name=\"from\" value=\"2026-12-01T00:00:00.000Z\""));
    assert!(page.contains(
        "(seqs 5 to 90): 1 snapshots, 0 of them written since the gateway started, the \
         earlier ones found by reading 85 entries"
    ));
    assert!(!page.contains("history-bound"));
    assert!(!page.contains("<script") && !page.contains("style="));
}

#[test]
fn a_bounded_history_says_what_it_left_out() {
    for (limit, said) in [
        (
            "points",
            "Only the latest 500 snapshots of the range are charted (the earlier ones, before seq 40",
        ),
        (
            "read_budget",
            "Only 100000 entries of the range were read, below the snapshots written since the gateway started (from seq 40 on)",
        ),
    ] {
        let history = history(json!(limit));
        let over = Over {
            model: "a b",
            from: "x",
            to: "y\"",
            history: Ok(&history),
            charts: "<svg></svg>",
        };
        let page = kpi_model(&over, &current());
        assert!(page.contains(said), "{page}");
        assert!(page.contains("id=\"history-bound\""));
        assert!(page.contains("action=\"/console/kpis/a%20b\""));
        assert!(page.contains("value=\"y&quot;\""));
    }
    let mut unfound = history(Value::Null);
    unfound["register_in_force"] = json!("not_found_within_budget");
    let over = Over {
        model: "m",
        from: "",
        to: "",
        history: Ok(&unfound),
        charts: "",
    };
    assert!(kpi_model(&over, &current()).contains(
        "id=\"register-not-found\">The risk register in force at the first snapshot was not \
         found among the 2000 governance entries"
    ));
    let over = Over {
        model: "m",
        from: "",
        to: "",
        history: Err("from: not a time".to_owned()),
        charts: "",
    };
    let page = kpi_model(&over, &current());
    assert!(page.contains("id=\"history-problem\">from: not a time</p>"));
}

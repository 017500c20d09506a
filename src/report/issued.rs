//! The `report_issued` entry's members (docs/audit-format.md section 15),
//! one function for the offline command and the admin API: the period, its
//! seqs, the checkpoint covering its end, both files' SHA-256 and, for a
//! report asked for on the admin API, who asked.

use crate::ledger::entry::ActedBy;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The members of the `report_issued` entry recording `report` (whose
/// files are `json_bytes` and `html_bytes`). `by`: the admin API's caller
/// (`principal`, `principal_roles`, `principal_issuer`, as `payload_erased`
/// records them); `None` for the offline command.
pub fn members(
    report: &Value,
    json_bytes: &[u8],
    html_bytes: &[u8],
    by: Option<&ActedBy>,
) -> Map<String, Value> {
    let scope = &report["scope"];
    let mut members = Map::new();
    members.insert("report_format".to_owned(), report["format"].clone());
    members.insert("period_from".to_owned(), scope["period"]["from"].clone());
    members.insert("period_to".to_owned(), scope["period"]["to"].clone());
    members.insert("first_seq".to_owned(), scope["first_seq"].clone());
    members.insert("last_seq".to_owned(), scope["last_seq"].clone());
    members.insert(
        "checkpoint_size".to_owned(),
        scope["checkpoint"]["size"].clone(),
    );
    members.insert(
        "checkpoint_root".to_owned(),
        scope["checkpoint"]["root"].clone(),
    );
    members.insert(
        "report_json_sha256".to_owned(),
        json!(sha256_hex(json_bytes)),
    );
    members.insert(
        "report_html_sha256".to_owned(),
        json!(sha256_hex(html_bytes)),
    );
    if let Some(by) = by {
        members.insert("principal".to_owned(), json!(by.principal));
        members.insert("principal_roles".to_owned(), json!(by.roles));
        if let Some(issuer) = &by.issuer {
            members.insert("principal_issuer".to_owned(), json!(issuer));
        }
    }
    members
}

/// SHA-256 in lower-case hex, as the entry records the files'.
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::decision::hex(&Sha256::digest(bytes))
}

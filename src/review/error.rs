//! Errors of the policy engine: [`PolicyError`] when loading (the
//! operator's policy files are at fault) and [`EvalError`] when evaluating
//! (a policy failed on this input; the caller applies its default).

use std::path::PathBuf;

/// A policy folder that cannot be loaded. Always the operator's files (or
/// their folder) at fault; the message names the file and, where the
/// engine knows it, the line.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The folder or a file in it could not be read.
    #[error("policy folder {path}: {source}")]
    Read {
        /// The folder or file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The folder holds no `*.rego` file: refusing to run with no policy.
    #[error("policy folder {0} holds no *.rego file")]
    Empty(PathBuf),
    /// A file does not parse, or declares a package outside `govgate`.
    #[error("{file}:{}: {message}", line_text(*line))]
    Parse {
        /// The file name.
        file: String,
        /// The line, when the engine reported one.
        line: Option<u32>,
        /// What is wrong.
        message: String,
    },
    /// The policies parse but fail on a sample input.
    #[error("{file}:{}: trial evaluation at the {stage} stage failed: {message}", line_text(*line))]
    Trial {
        /// The file name (`*` when the engine did not name one).
        file: String,
        /// The line, when the engine reported one.
        line: Option<u32>,
        /// The stage of the sample input.
        stage: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// One evaluation that produced no verdict. The policy, not the caller,
/// is at fault; the caller applies its configured default.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The input document could not be converted for the engine.
    #[error("policy input: {0}")]
    Input(String),
    /// The engine failed while evaluating (type error, time limit, ...).
    #[error("policy evaluation of {rule}: {message}")]
    Engine {
        /// The rule set being evaluated (`data.govgate.deny`, ...).
        rule: &'static str,
        /// The engine's message.
        message: String,
    },
    /// A rule set evaluated to something other than a set of strings.
    #[error("{rule} must be a set of strings, got {got}")]
    Shape {
        /// The rule set.
        rule: &'static str,
        /// A short description of what it was.
        got: String,
    },
}

fn line_text(line: Option<u32>) -> String {
    line.map_or_else(|| "?".to_string(), |l| l.to_string())
}

/// Where an engine message points: `(file, line, message)`. regorus
/// formats located errors as `--> file:line:col`, the source line and a
/// caret, then `error: message` on the last line.
pub(super) fn locate(text: &str) -> (Option<String>, Option<u32>, String) {
    let mut file = None;
    let mut line = None;
    if let Some(at) = text.find("--> ") {
        let rest = &text[at + 4..];
        let loc = rest.lines().next().unwrap_or_default();
        let mut parts = loc.rsplitn(3, ':');
        let _col = parts.next();
        line = parts.next().and_then(|l| l.trim().parse().ok());
        file = parts.next().map(str::to_string);
    }
    let last = text.trim_end().lines().last().unwrap_or_default().trim();
    let message = last.strip_prefix("error: ").unwrap_or(last).to_string();
    (file, line, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_reads_file_line_and_message() {
        let text =
            "\n--> bad.rego:7:3\n  |\n7 | deny contains x if {\n  |   ^\nerror: unexpected token";
        let (file, line, message) = locate(text);
        assert_eq!(file.as_deref(), Some("bad.rego"));
        assert_eq!(line, Some(7));
        assert_eq!(message, "unexpected token");
        let (file, line, message) = locate("something else");
        assert_eq!((file, line), (None, None));
        assert_eq!(message, "something else");
    }
}

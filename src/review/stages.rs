//! Which stages a policy set can judge: a rule set (`deny`, `hold`,
//! `flag`) is evaluated at a stage only if one of its rules can fire
//! there. A stage no rule can fire at is not evaluated at all; its verdict
//! is the one evaluating would give, allow with empty sets.
//!
//! The analysis reads the parsed rules (regorus' `unstable` AST) and only
//! ever narrows on one pattern, so it can be wrong only in the safe
//! direction (evaluating a stage for nothing): a rule body is limited to a
//! stage when its first statement is `input.stage == "..."` (either side,
//! no `with`). A body without such a statement, a rule
//! without a body, a `default` rule, or anything the analysis does not
//! recognise counts as firing at both stages.

use super::input::Stage;
use regorus::Engine;
use regorus::unstable::{BoolOp, Expr, Literal, Rule, RuleBody, RuleHead};

/// The rule sets, in the order of [`super::engine`]'s `RULES`.
const SETS: [&str; 3] = ["deny", "hold", "flag"];

/// For each stage (request, response), which rule sets can fire.
pub(super) type StageRules = [[bool; 3]; 2];

/// The index of `stage` in a [`StageRules`].
pub(super) fn index(stage: Stage) -> usize {
    match stage {
        Stage::Request => 0,
        Stage::Response => 1,
    }
}

/// Which of the `declared` rule sets can fire at each stage, from the
/// rules of the modules in package `govgate` itself (only those can define
/// the sets).
pub(super) fn stage_rules(engine: &mut Engine, declared: [bool; 3]) -> StageRules {
    let mut out = [[false; 3]; 2];
    for module in engine.get_modules() {
        if !is_govgate(&module.package.refr) {
            continue;
        }
        for rule in &module.policy {
            let Some(set) = rule_set(rule) else { continue };
            let [request, response] = rule_stages(rule);
            out[0][set] |= request;
            out[1][set] |= response;
        }
    }
    for stage in &mut out {
        for (slot, declared) in stage.iter_mut().zip(declared) {
            // A set the engine does not see as declared is never evaluated.
            *slot &= declared;
        }
    }
    out
}

/// The path of a plain reference (`a.b["c"]`), or None.
fn path(expr: &Expr) -> Option<Vec<String>> {
    match expr {
        Expr::Var { span, .. } => Some(vec![span.text().to_string()]),
        Expr::RefDot { refr, field, .. } => {
            let mut out = path(refr)?;
            out.push(field.0.text().to_string());
            Some(out)
        }
        Expr::RefBrack { refr, index, .. } => match index.as_ref() {
            Expr::String { value, .. } => {
                let mut out = path(refr)?;
                out.push(value.as_string().ok()?.as_ref().to_string());
                Some(out)
            }
            _ => None,
        },
        _ => None,
    }
}

fn is_govgate(package: &Expr) -> bool {
    path(package).is_some_and(|p| p == ["govgate"] || p == ["data", "govgate"])
}

/// The root name of a reference, however deep (`deny` of `deny[x]`).
fn root(mut expr: &Expr) -> Option<&str> {
    loop {
        match expr {
            Expr::Var { span, .. } => return Some(span.text()),
            Expr::RefDot { refr, .. } | Expr::RefBrack { refr, .. } => expr = refr,
            _ => return None,
        }
    }
}

/// Which rule set a rule adds to, if any.
fn rule_set(rule: &Rule) -> Option<usize> {
    let refr = match rule {
        Rule::Spec { head, .. } => match head {
            RuleHead::Compr { refr, .. }
            | RuleHead::Set { refr, .. }
            | RuleHead::Func { refr, .. } => refr,
        },
        Rule::Default { refr, .. } => refr,
    };
    let name = root(refr)?;
    SETS.iter().position(|set| *set == name)
}

/// `[request, response]`: the stages at which the rule can fire.
fn rule_stages(rule: &Rule) -> [bool; 2] {
    match rule {
        Rule::Spec { bodies, .. } if !bodies.is_empty() => bodies
            .iter()
            .map(body_stages)
            .fold([false; 2], |acc, b| [acc[0] | b[0], acc[1] | b[1]]),
        _ => [true; 2],
    }
}

/// `[request, response]`: the stages at which the body can hold. Only
/// the first statement narrows: the engine evaluates a body's statements in
/// order and stops at the first that fails, so a body whose first
/// statement is false at a stage runs nothing else there and cannot fail
/// with an error either; skipping it gives exactly what evaluating gives.
fn body_stages(body: &RuleBody) -> [bool; 2] {
    let first = body.query.stmts.first();
    let stage = first.and_then(|stmt| match &stmt.literal {
        Literal::Expr { expr, .. } if stmt.with_mods.is_empty() => stage_test(expr),
        _ => None,
    });
    match stage {
        Some(stage) => [
            stage == Stage::Request.as_str(),
            stage == Stage::Response.as_str(),
        ],
        None => [true; 2],
    }
}

/// The string `s` of a statement `input.stage == "s"` (or `"s" == input.stage`).
fn stage_test(expr: &Expr) -> Option<String> {
    let Expr::BoolExpr {
        op: BoolOp::Eq,
        lhs,
        rhs,
        ..
    } = expr
    else {
        return None;
    };
    let is_stage = |e: &Expr| path(e).is_some_and(|p| p == ["input", "stage"]);
    let string = |e: &Expr| match e {
        Expr::String { value, .. } | Expr::RawString { value, .. } => {
            value.as_string().ok().map(|s| s.as_ref().to_string())
        }
        _ => None,
    };
    if is_stage(lhs) {
        string(rhs)
    } else if is_stage(rhs) {
        string(lhs)
    } else {
        None
    }
}

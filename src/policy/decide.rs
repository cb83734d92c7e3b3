use super::{Decision, Facts, Instance, Trace};
use crate::rules::model::RuleSet;

pub fn decide(rules: &RuleSet, inst: &Instance, facts: &Facts<'_>, trace: &mut impl Trace) -> Decision {
    let _ = (rules, inst, facts, trace);
    todo!("policy::decide")
}

"""Tests of tools/govgate_verify.py's checks of policy sets under change control.

Run from the repository root:

    python3 -m unittest tools/test_policy_sets.py

The entries are built here by hand (the members docs/audit-format.md section
13.6 specifies), independently of the gateway, and checked with
check_policies_and_reviews, the function every log and bundle check calls.
"""

from __future__ import annotations

import hashlib
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import govgate_verify as gv  # noqa: E402

TIME = "2026-12-06T10:00:00.000Z"
RECEIVED = 1796551200000  # TIME in Unix milliseconds: requests received as the entries are written
DENY_ALL = 'package govgate\n\ndeny contains "frozen" if {\n\tinput.stage == "request"\n}\n'
GENTLE = 'package govgate\n\ndeny contains "blocked" if {\n\tinput.caller == "mallory"\n}\n'


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def digest(files) -> str:
    lines = "".join(f"{name} {sha(text)}\n" for name, text in files)
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def verdict(deny=()):
    return {"action": "deny" if deny else "allow", "deny": list(deny), "hold": [], "flag": [], "error": None}


class Log:
    """A log being written: entries with the members the gateway gives them."""

    def __init__(self):
        self.entries = []

    def add(self, kind, **members):
        seq = len(self.entries)
        self.entries.append((seq, dict(members, kind=kind, seq=seq, time=TIME, origin="test")))
        return seq

    def propose(self, name, text, by="ops"):
        files = [(name, text)]
        return self.add(
            "policy_set_proposed", principal=by, principal_roles=["admin"], source="upload",
            set_sha256=digest(files), files=[{"file": name, "sha256": sha(text), "text": text}],
        )

    def approve(self, proposal, files, so_far, who, roles, approvers=2, required=(), state=None, issuer=None):
        mark = {"principal": who, "roles": roles}
        by = {}
        if issuer is not None:  # a person signed in with a JWT
            mark["issuer"] = by["principal_issuer"] = issuer
        approvals = so_far + [mark]
        if state is None:
            state = "approved" if len(approvals) >= approvers else "proposed"
        return self.add(
            "policy_set_approved", principal=who, principal_roles=roles, set_sha256=digest(files),
            proposal_seq=proposal, approvals=approvals,
            policy={"approvers": approvers, "required_roles": list(required)}, state=state, **by,
        )

    def switch(self, kind, proposal, files, approval_seq, deactivated=None):
        members = dict(
            principal="ops", principal_roles=["admin"], set_sha256=digest(files), proposal_seq=proposal,
            approval_seq=approval_seq, files=[{"file": n, "sha256": sha(t)} for n, t in files],
        )
        if deactivated is not None:
            members["deactivated"] = deactivated
        return self.add(kind, **members)

    def decision(self, set_seq, deny=(), received_unix_ms=RECEIVED):
        return self.add(
            "decision", decision_id="%032x" % len(self.entries), outcome="denied" if deny else "served",
            status=403 if deny else 200, policy={"set_seq": set_seq, "request": verdict(deny), "response": None},
            timings={"received_unix_ms": received_unix_ms, "upstream_head_us": None, "complete_us": 1},
        )

    def problems(self):
        return gv.check_policies_and_reviews(self.entries)


def approved_set(log, name, text):
    """Proposes a set and has ann and bob approve it; (proposal seq, files, approval seq)."""
    files = [(name, text)]
    proposal = log.propose(name, text)
    first = log.approve(proposal, files, [], "ann", ["approver"])
    met = log.approve(proposal, files, [{"principal": "ann", "roles": ["approver"]}], "bob", ["approver"])
    assert first < met
    return proposal, files, met


class PolicySetTests(unittest.TestCase):
    def flow(self):
        log = Log()
        log.add("gateway_started", version="0")
        log.add("policy_approval_configured", approvers=2, required_roles=[], active_seq=None)
        gentle, gentle_files, gentle_met = approved_set(log, "gentle.rego", GENTLE)
        first = log.switch("policy_set_activated", gentle, gentle_files, gentle_met)
        log.decision(first)
        frozen, frozen_files, frozen_met = approved_set(log, "freeze.rego", DENY_ALL)
        second = log.switch("policy_set_activated", frozen, frozen_files, frozen_met, deactivated=gentle)
        log.decision(second, deny=["frozen"])
        back = log.switch("policy_set_rolled_back", gentle, gentle_files, gentle_met, deactivated=frozen)
        log.decision(back)
        return log

    def test_the_whole_flow_verifies(self):
        self.assertEqual(self.flow().problems(), [])

    def test_a_restart_cites_the_activation_through_the_configured_entry(self):
        log = self.flow()
        active = log.entries[-2][0]
        log.add("policy_approval_configured", approvers=2, required_roles=[], active_seq=active)
        log.decision(active)
        self.assertEqual(log.problems(), [])

    def test_approvals_by_people_with_a_jwt_name_their_issuer(self):
        log = Log()
        files = [("freeze.rego", DENY_ALL)]
        proposal = log.propose("freeze.rego", DENY_ALL)
        idp = "https://login.example"
        log.approve(proposal, files, [], "ann", ["approver"], issuer=idp)
        ann = {"principal": "ann", "roles": ["approver"], "issuer": idp}
        met = log.approve(proposal, files, [ann], "bob", ["approver"])
        log.switch("policy_set_activated", proposal, files, met)
        self.assertEqual(log.problems(), [])
        # The last approval's issuer must be the entry's principal_issuer.
        log = Log()
        proposal = log.propose("freeze.rego", DENY_ALL)
        bad = log.approve(proposal, files, [], "ann", ["approver"], issuer=idp)
        del log.entries[bad][1]["principal_issuer"]
        problems = log.problems()
        self.assertTrue(any(f"seq {bad}" in p and "principal_issuer" in p for p in problems), problems)
        # No other member in an approval.
        log = Log()
        proposal = log.propose("freeze.rego", DENY_ALL)
        bad = log.approve(proposal, files, [], "ann", ["approver"])
        log.entries[bad][1]["approvals"][0]["email"] = "ann@example"
        problems = log.problems()
        self.assertTrue(any(f"seq {bad}" in p and "approvals is not" in p for p in problems), problems)

    def test_an_activation_without_enough_approvals_is_named(self):
        log = Log()
        files = [("freeze.rego", DENY_ALL)]
        proposal = log.propose("freeze.rego", DENY_ALL)
        one = log.approve(proposal, files, [], "ann", ["approver"])
        bad = log.switch("policy_set_activated", proposal, files, one)
        problems = log.problems()
        self.assertEqual(len(problems), 1, problems)
        self.assertIn(f"seq {bad}: policy_set_activated", problems[0])
        self.assertIn("no approval meeting its policy", problems[0])

    def test_an_approval_claiming_the_policy_met_too_early_is_named(self):
        log = Log()
        files = [("freeze.rego", DENY_ALL)]
        proposal = log.propose("freeze.rego", DENY_ALL)
        bad = log.approve(proposal, files, [], "ann", ["approver"], state="approved")
        problems = log.problems()
        self.assertTrue(problems and f"seq {bad}: policy_set_approved" in problems[0], problems)

    def test_the_proposer_approving_is_named(self):
        log = Log()
        files = [("freeze.rego", DENY_ALL)]
        proposal = log.propose("freeze.rego", DENY_ALL, by="ann")
        log.approve(proposal, files, [], "bob", ["approver"])
        bad = log.approve(proposal, files, [{"principal": "bob", "roles": ["approver"]}], "ann", ["approver"])
        problems = log.problems()
        self.assertTrue(any(f"seq {bad}" in p and "proposer" in p for p in problems), problems)

    def test_a_required_qualifier_must_be_covered(self):
        log = Log()
        files = [("freeze.rego", DENY_ALL)]
        proposal = log.propose("freeze.rego", DENY_ALL)
        log.approve(proposal, files, [], "ann", ["approver"], required=["ai_officer"])
        bad = log.approve(
            proposal, files, [{"principal": "ann", "roles": ["approver"]}], "bob", ["approver"],
            required=["ai_officer"], state="approved",
        )
        problems = log.problems()
        self.assertTrue(any(f"seq {bad}" in p and "do not meet the policy" in p for p in problems), problems)

    def test_a_file_text_that_does_not_match_its_hash_is_named(self):
        log = Log()
        seq = log.propose("freeze.rego", DENY_ALL)
        log.entries[seq][1]["files"][0]["text"] = GENTLE
        problems = log.problems()
        self.assertTrue(problems and "not the SHA-256 of its text" in problems[0], problems)

    def test_a_rollback_to_a_set_never_in_force_is_named(self):
        log = Log()
        gentle, gentle_files, gentle_met = approved_set(log, "gentle.rego", GENTLE)
        frozen, frozen_files, frozen_met = approved_set(log, "freeze.rego", DENY_ALL)
        log.switch("policy_set_activated", gentle, gentle_files, gentle_met)
        bad = log.switch("policy_set_rolled_back", frozen, frozen_files, frozen_met, deactivated=gentle)
        problems = log.problems()
        self.assertTrue(any(f"seq {bad}" in p and "never in force" in p for p in problems), problems)

    def test_a_decision_citing_a_proposal_is_named(self):
        log = self.flow()
        proposal = log.entries[2][0]
        bad = log.decision(proposal)
        problems = log.problems()
        self.assertTrue(any(f"seq {bad}: decision" in p and "policy_set_proposed" in p for p in problems), problems)

    def test_a_decision_citing_a_set_no_longer_in_force_is_named(self):
        log = self.flow()
        activated = [seq for seq, e in log.entries if e["kind"] == "policy_set_activated"]
        bad = log.decision(activated[0], received_unix_ms=RECEIVED + 1)
        problems = log.problems()
        self.assertTrue(any(f"seq {bad}: decision" in p and "not the policy set in force" in p for p in problems),
                        problems)

    def slow_request_across(self, kind):
        """A request received with one set in force, recorded after `kind` put another in force."""
        log = Log()
        log.add("gateway_started", version="0")
        if kind == "policy_set_loaded":
            old = log.add(kind, files=[{"file": "gentle.rego", "sha256": sha(GENTLE)}])
            log.add(kind, files=[{"file": "freeze.rego", "sha256": sha(DENY_ALL)}])
        else:
            log.add("policy_approval_configured", approvers=2, required_roles=[], active_seq=None)
            gentle, gentle_files, gentle_met = approved_set(log, "gentle.rego", GENTLE)
            old = log.switch("policy_set_activated", gentle, gentle_files, gentle_met)
            frozen, frozen_files, frozen_met = approved_set(log, "freeze.rego", DENY_ALL)
            log.switch("policy_set_activated", frozen, frozen_files, frozen_met, deactivated=gentle)
        # The change's entry is at TIME; the slow request began 5 s before it.
        return log, old, log.decision(old, received_unix_ms=RECEIVED - 5000)

    def test_a_request_that_began_before_an_activation_may_cite_the_old_set(self):
        log, _, _ = self.slow_request_across("policy_set_activated")
        self.assertEqual(log.problems(), [])

    def test_a_request_that_began_before_a_reload_may_cite_the_old_set(self):
        log, _, _ = self.slow_request_across("policy_set_loaded")
        self.assertEqual(log.problems(), [])

    def test_a_request_received_at_the_change_time_may_cite_the_old_set(self):
        # Times are whole milliseconds: received and recorded in the same one.
        log, old, _ = self.slow_request_across("policy_set_activated")
        log.decision(old, received_unix_ms=RECEIVED)
        self.assertEqual(log.problems(), [])

    def test_a_request_that_began_after_the_change_may_not_cite_the_old_set(self):
        log, old, _ = self.slow_request_across("policy_set_loaded")
        bad = log.decision(old, received_unix_ms=RECEIVED + 1)
        problems = log.problems()
        self.assertEqual(len(problems), 1, problems)
        self.assertIn(f"seq {bad}: decision", problems[0])
        self.assertIn("received at 1796551200001 ms, after it", problems[0])

    def test_a_decision_without_a_received_time_may_not_cite_a_replaced_set(self):
        log, old, _ = self.slow_request_across("policy_set_activated")
        bad = log.decision(old, received_unix_ms="soon")
        problems = log.problems()
        self.assertTrue(any(f"seq {bad}: decision" in p and "not the policy set in force" in p for p in problems),
                        problems)

    def test_a_decision_may_never_cite_a_later_set(self):
        log, old, _ = self.slow_request_across("policy_set_activated")
        later = log.entries[-2][0]
        log.entries[-1][1]["policy"]["set_seq"] = later + 5
        problems = log.problems()
        self.assertTrue(any("is not below the decision's seq" in p for p in problems), problems)


if __name__ == "__main__":
    unittest.main()

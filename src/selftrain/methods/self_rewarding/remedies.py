"""The remedies the literature found for Self-Rewarding at small scale, as the loop's steps
call them (`methods.self_rewarding.iterate`); each is off unless `self_rewarding.remedies`
sets it, and each records what it did in its stage's record:

- anchor (Temporal Self-Rewarding, arXiv 2508.06026; label-free): step 4's rejected is the
  worst of a fixed earlier model's responses, judged by M_t (`anchored`, `own_pairs`).
- meta_judge (Meta-Rewarding, arXiv 2407.19594; label-free): M_t judges its own
  judgements; judge pairs join the update, at most `share` of it (`mix`).
- eft_refresh (after arXiv 2502.19613; USES LABELS): M_t judges its own answers to labelled
  problems; where it errs, the judgement the label supports against its own (`mix`).
- consistency (CREAM, arXiv 2410.12735; label-free): M_{t-1} judges the same responses; the
  agreement of the two rankings softens the DPO labels (`consistency`, `soft_label_share`).
"""

from __future__ import annotations

from selftrain import stages
from selftrain.methods.self_rewarding.variant import Variant
from selftrain.records import Problem
from selftrain.stages.self_rewarding import anchored_pairs, consistency_of, mix


def pairs(ctx: stages.RunContext, variant: Variant, group: str, policy: stages.Artifact, m1: stages.Artifact,
          problems: list[Problem], responses: stages.Artifact, scores: stages.Artifact) -> stages.Artifact:
    """Step 4: best against worst (ties dropped); anchored: against the anchor model's worst."""
    sec = ctx.cfg.self_rewarding
    check = variant.pair_check(problems)
    if variant.remedies.anchor is not None and variant.pair_judge == "self":
        theirs = stages.generate(ctx, group, variant.anchor(m1), problems, sec.responses, name="anchor-responses",
                                 sampler=variant.sampler)
        judged = variant.judge(group, policy, problems, theirs, name="anchor-judge")
        return anchored_pairs(ctx, group, scores, judged, sec.pairs.min_chosen_score, sec.pairs.max_rejected_score, check)
    return stages.pairs(ctx, group, scores, sec.pairs.min_chosen_score, sec.pairs.max_rejected_score, check=check)


def judge_pairs(ctx: stages.RunContext, variant: Variant, group: str, policy: stages.Artifact, problems: list[Problem],
                scores: stages.Artifact, answer_pairs: stages.Artifact) -> stages.Artifact:
    """Step 4b: the meta-judge's and the EFT refresh's judge pairs mixed into the update's."""
    rem = variant.remedies
    if variant.pair_judge != "self" or (rem.meta_judge is None and rem.eft_refresh is None):
        return answer_pairs
    meta = variant.meta_judge(group, policy, problems, scores) if rem.meta_judge is not None else None
    grounded = variant.eft_refresh(group, policy) if rem.eft_refresh is not None else None
    return mix(ctx, group, answer_pairs, meta, rem.meta_judge.share if rem.meta_judge else 1.0, grounded)


def consistency(ctx: stages.RunContext, variant: Variant, group: str, previous: stages.Artifact | None,
                problems: list[Problem], responses: stages.Artifact, scores: stages.Artifact,
                answer_pairs: stages.Artifact) -> stages.Artifact | None:
    """Step 5's soft labels (CREAM): the previous model judges the same responses; the rank
    agreement over the pairs' prompts is C. None when the remedy is off."""
    if variant.remedies.consistency is None or variant.pair_judge != "self":
        return None
    before = variant.judge(group, previous, problems, responses, name="previous-judge") if previous is not None else None
    return consistency_of(ctx, group, answer_pairs, scores, before)

"""Self-Rewarding Language Models: Yuan et al. 2024 (arXiv 2401.10020).

One model is both the actor and its own reward model:

    0. M0 -> M1: SFT on instruction data (IFT) and evaluation data (EFT: prompt, response,
       a judge's justification ending in "Score: N").
    for t = 1 .. T:
        1. Self-instruction creation: M_t writes new prompts, few-shot from the pool (8 shown).
        2. M_t samples N responses per new prompt (the paper: 4, T=0.7, top-p 0.9).
        3. M_t judges each response with the LLM-as-a-judge prompt, 3 times, averaged.
        4. Preference pairs: the highest-scored response against the lowest; ties dropped.
        5. DPO from M_t on the pairs -> M_{t+1}.
        6. Evaluate M_{t+1}: answer accuracy, and the judge's pairwise accuracy.

The remedies for small models (`self_rewarding.remedies`, each off by default; `remedies.py`):
    4.  anchor: the rejected is the worst of a fixed earlier model's responses (Temporal
        Self-Rewarding, arXiv 2508.06026).
    4b. meta_judge: M_t judges its own judgements; judge pairs join the update, at most
        `share` of it (Meta-Rewarding, arXiv 2407.19594). eft_refresh: M_t judges its
        answers to labelled problems; where it errs, the judgement the label supports
        against its own (after arXiv 2502.19613; the one remedy that uses labels).
    5.  consistency: M_{t-1} judges the same responses; C, the agreement of the two rankings,
        makes soft labels: C * DPO(y+, y-) + (1 - C) * DPO(y-, y+) (CREAM, arXiv 2410.12735).

Run it:  `selftrain demo --method self-rewarding` (the miniature: the tiny model on the
embedded task, both abilities measured exactly: `miniature.py`), or `selftrain run
configs/self-rewarding.yaml` (any chat model, the paper's judge prompt: `chat.py`). The
variants differ in steps 0, 1, 3 and 6 only (`variant.Variant`); `iterate` is the loop of both.
The miniature's judge checks an answer by the inverse operation, scored by the paper's
additive 0-5 form; docs/self-rewarding.md has the design and the measurements.

Deviations, each forced by the tiny model or chosen to measure:
- The miniature's M0 is the tiny model trained on the worked solutions (`miniature.pretrain`),
  not a pretrained model; M1's data also teaches it the prompt-writing format.
- Its judge prompt is the inverse-operation check (the paper's prompt does not fit its
  context), its rubric applied by code; chat models get the paper's prompt word for word.
- EFT data are M0's own answers, half right and half wrong, each with its exact check.
- New prompts must be well-formed, in range, never a test problem; pairs overlapping an
  evaluation set are dropped before DPO.
- A pair is kept only when its chosen scored 5 and its rejected at most 3
  (`pairs.min_chosen_score`, `max_rejected_score`); the paper drops only ties.
- M1 trains until its validation accuracy stops rising (`miniature.sft.early_stopping`);
  the paper trains a fixed number of epochs.
- DPO steps are fixed (`dpo.steps`, `max_epochs`); an NLL term may be added (`dpo.nll_weight`);
  the miniature's update is the NLL alone (`dpo.loss_type: sft`).
- Answers are evaluated greedily (no AlpacaEval); `miniature.controls` (`grader`, `sft`) run
  beside the method as measurements.
"""

from __future__ import annotations

from selftrain import stages
from selftrain.methods import Method
from selftrain.methods.self_rewarding import remedies
from selftrain.methods.self_rewarding.chat import Chat
from selftrain.methods.self_rewarding.config import SelfRewardingConfig, SelfRewardingSection, demo_config
from selftrain.methods.self_rewarding.miniature import Miniature, controls
from selftrain.methods.self_rewarding.report import collect, render, summary
from selftrain.methods.self_rewarding.variant import Variant


def run(ctx: stages.RunContext[SelfRewardingConfig]) -> None:
    """Self-Rewarding, steps numbered as in the docstring."""
    variant = Chat(ctx) if ctx.cfg.self_rewarding.chat is not None else Miniature(ctx)
    # step 0: M1 (the miniature: M0 -> SFT on IFT, prompt writing and EFT; chat: the given model), evaluated
    m1 = variant.m1()
    variant.evaluate("m1", m1)
    iterate(ctx, variant, m1)
    if ctx.cfg.self_rewarding.miniature is not None:  # measurements beside the method, from the same M1
        controls(ctx, variant, m1, iterate)


def iterate(ctx: stages.RunContext[SelfRewardingConfig], variant: Variant, m1: stages.Artifact,
            prefix: str = "") -> None:
    """Steps 1-6, `iterations` times from M1; groups `<prefix>iter-NN`. The remedies
    (`variant.remedies`, `remedies.py`) add to steps 4 and 5 when set."""
    sec = ctx.cfg.self_rewarding
    previous, policy = variant.m0, m1
    for t in range(1, sec.iterations + 1):
        it = stages.group("iter", t, prefix)
        # step 1: self-instruction creation: M_t writes new prompts, few-shot from the pool
        new = variant.write_prompts(it, policy)
        # step 2: N responses per new prompt
        responses = stages.generate(ctx, it, policy, new, sec.responses, name="responses", sampler=variant.sampler)
        # step 3: M_t judges each response (3 judgements, averaged)
        scores = variant.judge(it, policy, new, responses)
        # step 4: best against worst, ties dropped (anchor: against a fixed earlier model's worst)
        pairs = remedies.pairs(ctx, variant, it, policy, m1, new, responses, scores)
        # step 4b: judge pairs join them (meta-judge: label-free; EFT refresh: labelled), then decontamination
        update = remedies.judge_pairs(ctx, variant, it, policy, new, scores, pairs)
        update = stages.decontaminate(ctx, it, update, ("prompt", "chosen", "rejected"))
        # step 5: DPO from M_t on the pairs -> M_{t+1} (consistency: CREAM's soft labels from M_{t-1}'s judgements)
        soft = remedies.consistency(ctx, variant, it, previous, new, responses, scores, pairs)
        previous, policy = policy, stages.dpo(ctx, it, policy, update, sec.dpo, row=variant.row, consistency=soft)
        # step 6: evaluate M_{t+1}
        variant.evaluate(it, policy)


def _needs(cfg: SelfRewardingConfig) -> list[tuple[str, object, set[str]]]:
    chat = cfg.self_rewarding.chat
    return [("model.sampler", cfg.model.sampler, {"local"} | ({"continue"} if chat is not None and chat.finish else set()))]


METHOD = Method("self-rewarding", SelfRewardingConfig, run, collect, render, summary, needs=_needs, demo=demo_config,
                final_model=lambda cfg: stages.group("iter", cfg.self_rewarding.iterations))

__all__ = ["METHOD", "SelfRewardingConfig", "SelfRewardingSection", "Variant", "demo_config", "iterate", "run"]

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

Run it:  `selftrain demo --method self-rewarding`  (the miniature on the embedded task), or
`selftrain run configs/self-rewarding.yaml` (a chat model). The section holds each shared
step's settings by role: `prompts` (step 1), `responses` (step 2), `judge` (step 3),
`pairs` (step 4), `dpo` (step 5); then the variant's own: `miniature` (the tiny model on the
embedded task, where both abilities are measured exactly: `miniature.py`) or `chat` (any
chat model in `model.name_or_path`, the paper's judge prompt word for word: `chat.py`). The
variants differ in steps 0, 1, 3 and 6 only; `iterate` below is the loop of both.

The miniature (the embedded task with addition and subtraction, `task.arithmetic.operations`)
measures both abilities exactly: answer accuracy is the task's grader on the test set, greedy;
judge accuracy is how often the model's own greedy judgement scores the right answer of a
held-out pair (M1's own right and wrong answers to one test problem) above the wrong one.

The miniature's judge checks an answer by the inverse operation (`CheckJudge`): for
`0347+0085=` answered 432 it is asked `0432-0085=` and solves it as it solves any problem;
an additive rubric scores how far the check's result agrees with 347 (+1 a well-formed
answer, +1 the units digit, +1 the two lowest digits, +2 all digits; right answers 5, wrong
ones at most 3). Checking is then no harder than solving, the judge never sees the working
it judges, and a wrong answer passes only if the check errs into exactly the right number.

Deviations from the paper, each forced by the tiny model or chosen to measure:
- The paper's M0 is a pretrained model (Llama 2 70B). The miniature's M0 is the tiny model
  trained on the worked solutions alone (`miniature.pretrain`), its stand-in for pretraining; it
  cannot few-shot anything, so M1's SFT data also teaches the prompt-writing format (8 pool
  prompts, one per line, then a new one).
- The judge prompt is the check (the paper's 1,500-character prompt does not fit the tiny
  model's context), and the rubric is applied to the check's result by code rather than
  written out by the model: a tiny model taught to write the comparison itself did not
  learn to tell two digits apart within the budget (docs/self-rewarding.md). The model still
  does the judging work (the check), and the rubric keeps the paper's additive 0-5 form.
  For chat models, `verifiers.llm_judge.ADDITIVE_5_POINT` is the paper's prompt word for word.
- EFT data are the model's own answers (M0's samples on pool problems), half right and half
  wrong, each with its exact worked check (from the task's grader), not human-ranked Open
  Assistant data.
- New prompts must be well-formed problems in range and never a test problem
  (contamination), and preference pairs that overlap an evaluation set are dropped before
  DPO (decontamination).
- A pair is kept only when its chosen response scored 5 on average and its rejected one at
  most 3 (`pairs.min_chosen_score`, `pairs.max_rejected_score`: the Iterative RPO condition, a right
  answer against a wrong one, as the judge sees them); the paper drops only ties.
- M1 (the miniature) trains until its greedy accuracy on a validation split of pool problems
  stops improving (`miniature.sft.early_stopping`), so that the compute-matched control
  cannot win by training longer; the paper trains M1 a fixed number of epochs.
- Steps per DPO iteration are fixed (`dpo.steps`, capped by `dpo.max_epochs`), not
  early-stopped. DPO may add an NLL term on the chosen response (`dpo.nll_weight`, Iterative
  RPO; 0 in the paper). The miniature's update is that NLL term alone (`dpo.loss_type: sft`,
  rejection-sampling fine-tuning on the self-chosen answers): on its model every contrastive
  loss, DPO + NLL, APO-zero and step-level pairs, lowered answer accuracy more than the NLL
  alone, even with perfect pairs (`experiments/dpo_arms.py`, docs/self-rewarding.md).
- Answers are evaluated greedily; the paper's AlpacaEval has no equivalent here.
- `miniature.controls` run beside the method from the same M1: `grader` (the exact check makes the
  pairs: the upper bound of a judge) and `sft` (M1's own data for the same steps). They are
  measurements, not part of the method.
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

"""Published prompt strings, verbatim, in one place: EchoInk-R1's (github.com/HarryHsing/EchoInk, commit
3f6d16a) and verl-omni's Qwen3-Omni AVQA recipe's (github.com/verl-project/verl-omni).

Copied character for character, including EchoInk's missing full stop after "thought expressions":
the model was trained on exactly this text. ``data/prompts.py`` registers templates built from them.
"""

from __future__ import annotations

# src/r1-v/src/open_r1/grpo.py, QUESTION_TEMPLATE ("Common format"); the training prompt. The same
# string is the RL model's prompt in src/omniInstruct-v1_eval_valid.py (BASE_MODEL = False).
QUESTION_TEMPLATE = (
    "{Question}\n"
    "Please think about this question as if you were a human pondering deeply. "
    "Make sure to carefully consider both the visual and audio information before answering. "
    "Engage in an internal dialogue using expressions such as 'let me think', 'wait', 'Hmm', 'oh, I see', 'let's break it down', etc, or other natural language thought expressions "
    "It's encouraged to include self-reflection or verification in the reasoning process. "
    "Provide your detailed reasoning between the <think> </think> tags, and then give your final answer between the <answer> </answer> tags."
)

# src/r1-v/src/open_r1/grpo.py and src/omniInstruct-v1_eval_valid.py, TYPE_TEMPLATE["multiple choice"].
TYPE_TEMPLATE_MULTIPLE_CHOICE = " Please provide only the single option letter (e.g., A, B, C, D, etc.) within the <answer> </answer> tags."

# src/omniInstruct-v1_eval_valid.py, QUESTION_TEMPLATE when BASE_MODEL = True (the base model's prompt).
BASE_QUESTION_TEMPLATE = (
    "{Question}\nPlease answer the following question based on the given image and audio."
)

# src/omniInstruct-v1_eval_valid.py sends this system turn for the base model only; training
# (grpo.py's make_conversation_image_and_video_and_audio) and the RL model's evaluation send none.
BASE_SYSTEM_PROMPT = "You are a helpful assistant."

# How the question meets its options. grpo.py (training): problem + " Options:\n" + "\n".join(options);
# src/omniInstruct-v1_eval_valid.py (evaluation, both models): problem + "\n" + "\n".join(options).
TRAIN_OPTIONS_SEPARATOR = " Options:\n"
EVAL_OPTIONS_SEPARATOR = "\n"

# verl-project/verl-omni examples/gspo_trainer/data_process/avqa.py (commit 32d165dc), SYSTEM_PROMPT; its
# user turn is "<image><audio>{problem}\nOptions:\n" + the option lines.
VERL_OMNI_AVQA_SYSTEM_PROMPT = (
    "Please think about this question as if you were a human pondering deeply, carefully considering both the "
    "visual and audio information before answering, engaging in an internal dialogue using expressions such as "
    "let me think, wait, hmm, oh I see, or let's break it down, including self-reflection or verification in the "
    "reasoning process, providing the detailed reasoning between the <think> </think> tags, and finally giving "
    "only the single option letter (e.g., A, B, C, D, etc.) as the final answer within the <answer> </answer> tags."
)
VERL_OMNI_OPTIONS_SEPARATOR = "\nOptions:\n"

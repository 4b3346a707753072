"""EchoInk-R1's prompt strings, verbatim, in one place (github.com/HarryHsing/EchoInk, commit 3f6d16a).

Copied character for character, including the missing full stop after "thought expressions": the
model was trained on exactly this text. ``data/prompts.py`` registers templates built from them.
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

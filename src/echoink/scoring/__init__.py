"""Scoring: the rewards (plain batch functions over completion texts and row fields), the one answer
parser, and the scoring pass that turns a model's completions into prediction rows. Training and
evaluation both score through here, so a reward, an accuracy and a validation number agree.

The answer parser itself lives in ``echoink.data.answers``: the data loader validates each row's
solution with the same parser, and the data layer sits below this one.
"""

import re
from pathlib import Path

import pytest
import yaml

from echoink.config import ConfigError, load_config, save_config
from echoink.preflight import check_names


def test_yaml_plus_overrides(tmp_path: Path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  lr: 1.0e-5\n  max_steps: 3\nrollout:\n  num_generations: 4\n")
    cfg = load_config(recipe, ["train.lr=2e-6", "algo.rewards={accuracy: 1.0}"])
    assert cfg.train.lr == 2e-6 and cfg.train.max_steps == 3
    assert cfg.rollout.num_generations == 4
    assert cfg.algo.rewards == {"accuracy": 1.0}


def test_round_trip(tmp_path: Path):
    cfg = load_config(None, ["algo.beta=0.001"])
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg


@pytest.mark.parametrize(
    "override, field",
    [
        ("rollout.num_generations=1", "rollout.num_generations"),
        ("train.lr=-1", "train.lr"),
        ("data.on_error=maybe", "data.on_error"),
        ("train.max_steps=abc", "train.max_steps"),
        ("nosuch.x=1", "nosuch"),
        ("rollout.engine=sglang", "rollout.engine"),
        ("rollout.vllm_gpu_memory_utilization=1.5", "rollout.vllm_gpu_memory_utilization"),
        ("rollout.vllm_tensor_parallel_size=0", "rollout.vllm_tensor_parallel_size"),
        ("rollout.vllm_max_model_len=64", "rollout.vllm_max_model_len"),  # shorter than max_new_tokens
        ("algo.rollout_is_cap=0.5", "algo.rollout_is_cap"),
        ("algo.rollout_is_cap=2", "algo.rollout_is_cap"),  # needs rollout.engine=vllm
    ],
)
def test_errors_name_the_field(override: str, field: str):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(None, [override])


def test_int_accepted_for_float():
    assert load_config(None, ["algo.beta=0"]).algo.beta == 0.0


def test_every_shipped_recipe_loads_and_names_a_registered_template():
    from echoink.data.prompts import TEMPLATES
    from echoink_lab.recipe import RECIPES, load_lab_recipe, recipe

    recipes = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert len(recipes) >= 3
    loaded = [load_config(path) for path in recipes]
    loaded += [load_lab_recipe(recipe(name))[0] for name in RECIPES]  # the lab's, from package data
    for cfg in loaded:
        assert cfg.data.template in TEMPLATES and cfg.eval.template in TEMPLATES


def test_config_has_no_demo_section_and_old_run_records_still_load(tmp_path: Path, caplog):
    """The demo's knobs live in the lab's recipes; a config.yaml an older echoink wrote (with a demo:
    section) still loads as a recipe, the section ignored with a warning, and a resume against it sees
    no change from it."""
    import dataclasses

    from echoink.config import Config
    from echoink.rl.run_dir import config_changes

    assert "demo" not in {f.name for f in dataclasses.fields(Config)}
    old = {
        **load_config(None).to_dict(),
        "demo": {"seed": 0, "train_items": 2000, "families": ["tone_where"]},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    with caplog.at_level("WARNING", logger="echoink.config"):
        cfg = load_config(tmp_path / "config.yaml")
    assert cfg == load_config(None) and "demo: section ignored" in caplog.text
    assert config_changes(old, cfg) == []
    with pytest.raises(ConfigError, match="demo: expected a mapping"):
        from echoink_lab.recipe import load_lab_recipe

        load_lab_recipe(tmp_path / "config.yaml", ["demo=3"])


def test_importance_sampling_level_is_validated():
    cfg = load_config(None, ["algo.importance_sampling_level=sequence"])
    check_names(cfg)
    assert cfg.algo.importance_sampling_level == "sequence"
    with pytest.raises(ConfigError, match="algo.importance_sampling_level: unknown policy loss 'seq'"):
        check_names(load_config(None, ["algo.importance_sampling_level=seq"]))


def test_no_stays_a_string_where_the_docs_say_no(tmp_path: Path):
    # YAML 1.1 reads "no" as False; train.mixed_precision documents the value "no".
    assert load_config(None, ["train.mixed_precision=no"]).train.mixed_precision == "no"
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  mixed_precision: no\nmodel:\n  gradient_checkpointing: true\n")
    cfg = load_config(recipe)
    assert cfg.train.mixed_precision == "no" and cfg.model.gradient_checkpointing is True
    with pytest.raises(ConfigError, match="model.gradient_checkpointing"):
        load_config(None, ["model.gradient_checkpointing=yes"])  # a clear error, not a silent string


@pytest.mark.parametrize(
    "override, field",
    [
        ("train.max_steps=true", "train.max_steps"),  # was read as 1
        ("train.lr=false", "train.lr"),
        ("train.lr=.inf", "train.lr"),  # was accepted; final/ came out non-finite
        ("rollout.temperature=.nan", "rollout.temperature"),
        ("train.lr=1e39", "train.lr"),  # finite, but torch's AdamW step overflowed with a traceback
        ("sft.lr=2", "sft.lr"),
        ("algo.rewards={accuracy: .nan}", "algo.rewards.accuracy"),  # was silently counted as 0
        ("algo.rewards={accuracy: heavy}", "algo.rewards.accuracy"),  # was a crash at the first rollout
        ("algo.rewards={accuracy: true}", "algo.rewards.accuracy"),
        ("model.gradient_checkpointing=1", "model.gradient_checkpointing"),
        ("model.lora_target_modules=[q_proj, [v_proj]]", "model.lora_target_modules[1]"),
    ],
)
def test_values_are_typed_and_finite(override: str, field: str):
    with pytest.raises(ConfigError, match=f"^{re.escape(field)}: "):
        load_config(None, [override])


@pytest.mark.parametrize(
    "override, field",
    [
        ("demo.glance_traces=1.5", "demo.glance_traces"),
        ("demo.glance_stage_steps=-1", "demo.glance_stage_steps"),
        ("demo.glance_stage_steps=10", "demo.glance_stage_steps"),  # without demo.glance_traces
        ("demo.train_items=true", "demo.train_items"),
        ("demo.bogus=1", "demo.bogus"),
    ],
)
def test_the_lab_recipes_demo_section_is_validated(override: str, field: str):
    from echoink_lab.recipe import load_lab_recipe

    with pytest.raises(ConfigError, match=f"^{re.escape(field)}: "):
        load_lab_recipe(None, [override])


@pytest.mark.parametrize(
    "override, field",
    [
        ("data.template=fancy", "data.template"),  # was found only at the first rollout
        ("eval.template=fancy", "eval.template"),
        ("algo.loss_agg=seq-sum", "algo.loss_agg"),  # was found only at the first loss
        ("algo.scale_rewards=weird", "algo.scale_rewards"),
        ("algo.kl_estimator=k2", "algo.kl_estimator"),
        ("rollout.sharing=half", "rollout.sharing"),
        ("train.report_to=[tensorbored]", "train.report_to"),
        ("algo.rewards={acuracy: 1.0}", "algo.rewards.acuracy"),
        ("algo.rewards={'no_such_module_x:f': 1.0}", "algo.rewards.no_such_module_x:f"),
    ],
)
def test_registry_names_are_checked_before_any_model_loads(override: str, field: str):
    """The recipe loads (values only); ``preflight.check_names``, which every command runs before it
    loads a model, names the field and lists the registry's own names."""
    from echoink.rl.algos import ADVANTAGE_ESTIMATORS

    cfg = load_config(None, [override])
    with pytest.raises(ConfigError, match=f"^{re.escape(field)}: .*") as err:
        check_names(cfg)
    if "template" in field:
        assert "valid: direct, paper_base" in str(err.value)
    if field == "algo.scale_rewards":
        assert f"valid: {', '.join(ADVANTAGE_ESTIMATORS.names())}" in str(err.value)


def test_loading_a_recipe_imports_no_training_code():
    """config sits below the model and rl layers: loading a recipe must not pull them in."""
    import subprocess
    import sys

    code = "import sys, echoink.config as c; c.load_config(None); print(sorted(m for m in sys.modules if m.startswith(('echoink.rl', 'echoink.model', 'echoink.scoring'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_user_reward_that_imports_is_accepted():
    cfg = load_config(None, ["algo.rewards={'media_helpers:parity_reward': 1.0}"])
    check_names(cfg)
    assert list(cfg.algo.rewards) == ["media_helpers:parity_reward"]


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  lr: 1e-5\n  max_steps: [3\n")
    with pytest.raises(ConfigError, match=r"r\.yaml: invalid YAML at line \d+ column \d+"):
        load_config(recipe)
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read the recipe"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"override 'train\.lr=\[1': invalid YAML"):
        load_config(None, ["train.lr=[1"])


def _bomb() -> str:
    """Nine levels, each a list of nine aliases to the level below: 9^9 strings from ~320 bytes."""
    value = '&a ["q", "q", "q", "q", "q", "q", "q", "q", "q"]'
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        value = f"&{name} [{value}" + f", *{prev}" * 8 + "]"
    return f"model:\n  lora_target_modules: {value}\n"


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path, monkeypatch):
    """A few hundred bytes of nested aliases (9^9 strings once expanded) used to hang `train` with no
    output; the loader counts values through aliases (each node once: memoised) and stops at
    MAX_YAML_NODES before building any value."""
    import yaml

    from echoink import config

    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb())
    assert len(_bomb()) < 1024
    visits, built, count = [], [], config._expanded_size

    def counting(node, memo, open_):
        visits.append(node)
        return count(node, memo, open_)

    monkeypatch.setattr(config, "_expanded_size", counting)
    monkeypatch.setattr(yaml.constructor.BaseConstructor, "construct_document", lambda *a: built.append(a))
    with pytest.raises(ConfigError, match=r"bomb.yaml: the recipe expands to more than 100,000 values"):
        load_config(path)
    assert len(visits) < 200 and not built  # the file's ~100 nodes, not its 9^9 values; nothing built
    monkeypatch.undo()
    path.write_text("model: &m\n  lora_target_modules: [*m]\n")
    with pytest.raises(ConfigError, match="recursive YAML alias"):
        load_config(path)
    path.write_text("model:\n  lora_target_modules: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nests values too deeply"):
        load_config(path)
    with pytest.raises(ConfigError, match="override 'algo.beta=.*recursive"):
        load_config(None, ["algo.beta=&b [*b]"])


def test_a_plain_alias_still_loads(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("rollout:\n  temperature: &t 0.7\n  top_p: *t\n")
    assert load_config(path).rollout.top_p == 0.7

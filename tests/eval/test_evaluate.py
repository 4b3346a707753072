"""evaluate(): strict parsing, ablation plumbing, resume, k-sample aggregates, and a real tiny-model run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from echoink.eval.evaluate import evaluate, read_predictions
from echoink.eval.summary import format_summary
from echoink.scoring.predict import Decoding


def _rows(out: Path) -> list[dict]:
    return read_predictions(out / "predictions.jsonl")


def test_answers_are_parsed_strictly(scripted, eval_split, tmp_path):
    # answers: 0 -> A, 1 -> B, 2 -> C, 3 -> A
    scripted.script = {
        0: ["<think>It is a dog, so a.</think><answer>a dog</answer>"],  # the article "a" is not option A
        1: ["<think>either</think><answer>A or B</answer>"],  # two options named: unparseable
        2: ["<think>the red one</think>\n<answer>c</answer>"],  # lower case is fine
        3: ["<answer>B</answer> no, <answer>A</answer>"],  # the last block counts; format is broken
    }
    summary = evaluate("tiny", eval_split, tmp_path / "out", max_new_tokens=64)
    rows = {r["id"]: r for r in _rows(tmp_path / "out")}
    assert [rows[i]["pred"] for i in "0123"] == [None, None, "C", "A"]
    assert [rows[i]["correct"] for i in "0123"] == [False, False, True, True]
    assert [rows[i]["format_ok"] for i in "0123"] == [True, True, True, False]  # format ignores the content
    assert rows["0"]["needs"] == "audio" and "reasoning" not in rows["0"]  # long metadata stays out
    block = summary["conditions"]["none"]
    assert block["accuracy"] == summary["accuracy"] == 0.5
    assert block["unparseable_rate"] == 0.5 and block["format_rate"] == 0.75
    assert block["ci_method"] == "wilson" and block["ci95"] == pytest.approx([0.1500, 0.8500], abs=1e-4)
    assert block["by"]["needs"]["audio"]["accuracy"] == 0.5 and block["by"]["needs"]["both"]["n"] == 1
    assert json.loads((tmp_path / "out/summary.json").read_text()) == summary
    assert "needs=audio" in format_summary(summary)


def test_lengths_and_truncation(scripted, eval_split, tmp_path):
    scripted.script = {0: ["<answer>A</answer>"], 1: ["<think>" + "very long thinking " * 40]}
    evaluate("tiny", eval_split, tmp_path / "out", max_new_tokens=12, limit=2)
    rows = {r["id"]: r for r in _rows(tmp_path / "out")}
    assert not rows["0"]["truncated"] and 0 < rows["0"]["length"] < 12
    assert rows["1"]["truncated"] and rows["1"]["length"] == 12


def _valid_features(mm: dict, i: int) -> torch.Tensor:
    return mm["input_features"][i][:, mm["feature_attention_mask"][i].bool()]


def test_ablations_give_the_model_silence_and_a_blank_image(scripted, eval_split, tmp_path):
    scripted.script = {i: ["<answer>A</answer>"] for i in range(4)}  # right for 0 and 3 only
    summary = evaluate("tiny", eval_split, tmp_path / "out", ablate=["audio", "image"], batch_size=4)
    none, audio, image = (c.mm.model_kwargs() for c in scripted.calls)
    for ablated in (audio, image):  # same lengths and sizes: only the content changes
        assert torch.equal(ablated["feature_attention_mask"], none["feature_attention_mask"])
        assert torch.equal(ablated["image_grid_thw"], none["image_grid_thw"])
    for i in range(4):
        assert _valid_features(none, i).std() > 0.1 and _valid_features(audio, i).std() == 0  # silence
        assert _valid_features(image, i).std() > 0.1
    patches = image["pixel_values"].reshape(-1, 3, 2 * 14 * 14)  # temporal 2 x 14 x 14 patch per channel
    assert torch.allclose(patches, patches[:1, :, :1].expand_as(patches))  # one grey, everywhere
    assert none["pixel_values"].std() > 0.1 and torch.equal(audio["pixel_values"], none["pixel_values"])
    assert list(summary["conditions"]) == ["none", "audio", "image"]
    assert summary["conditions"]["audio"]["drop"] == 0.0  # a scripted model ignores its inputs
    assert summary["conditions"]["audio"]["drop_p"] == 1.0
    assert summary["conditions"]["image"]["drop_by"]["needs"] == {"audio": 0.0, "both": 0.0, "image": 0.0}


def test_resume_skips_finished_items_and_refuses_other_settings(scripted, eval_split, tmp_path):
    out = tmp_path / "out"
    scripted.script = {i: ["<answer>A</answer>"] for i in range(4)}
    evaluate("tiny", eval_split, out, limit=2, batch_size=1)
    assert len(scripted.calls) == 2
    with open(out / "predictions.jsonl", "a") as fh:
        fh.write('{"id": "2", "condit')  # a kill mid-write leaves a cut line
    summary = evaluate("tiny", eval_split, out, batch_size=1)
    assert len(scripted.calls) == 4  # only items 2 and 3 were generated
    assert [r["id"] for r in _rows(out)] == ["0", "1", "2", "3"]
    assert summary["accuracy"] == 0.5 and summary["n_items"] == 4
    evaluate("tiny", eval_split, out, batch_size=1)
    assert len(scripted.calls) == 4  # everything done: nothing generated
    with pytest.raises(ValueError, match="other settings"):
        evaluate("tiny", eval_split, out, template="direct")
    # hf and vLLM predictions never mix in one folder (the folder records its engine; issue 39)
    with pytest.raises(ValueError, match="engine: 'hf' -> 'vllm'"):
        evaluate("tiny", eval_split, out, batch_size=1, engine="vllm")
    assert len(scripted.calls) == 4


def test_resume_onto_a_split_changed_at_the_same_path_is_refused(scripted, eval_split, tmp_path):
    """Four predictions scored against answers A B C A must not be reused once the split says C for 0."""
    out = tmp_path / "out"
    scripted.script = {i: ["<answer>A</answer>"] for i in range(4)}
    evaluate("tiny", eval_split, out, batch_size=4)
    before = (out / "predictions.jsonl").read_text()
    rows = json.loads(eval_split.read_text())
    rows[0]["solution"] = "<answer>C</answer>"  # the release fixed a wrong answer
    eval_split.write_text(json.dumps(rows))
    with pytest.raises(ValueError, match=r"test.json changed since these predictions were made") as err:
        evaluate("tiny", eval_split, out, batch_size=4)
    assert "another --out" in str(err.value) and "\n" not in str(err.value)
    assert (out / "predictions.jsonl").read_text() == before and len(scripted.calls) == 1
    fresh = evaluate(
        "tiny", eval_split, tmp_path / "fresh", batch_size=4
    )  # a new folder scores the new answers
    assert fresh["accuracy"] == 0.25


def test_a_folder_eval_did_not_write_is_refused(scripted, eval_split, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("the user's own file\n")
    with pytest.raises(FileExistsError, match=r"^--out: .*mine is not empty \(notes.txt\) and holds no eval"):
        evaluate("tiny", eval_split, out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] and not scripted.calls


def test_k_samples_give_bootstrap_ci_majority_and_pass_at_k(scripted, eval_split, tmp_path):
    scripted.script = {
        0: ["<answer>A</answer>", "<answer>B</answer>", "<answer>A</answer>", "oops"],  # 2/4, vote A (right)
        1: ["<answer>A</answer>", "<answer>B</answer>", "<answer>A</answer>", "<answer>A</answer>"],  # 1/4
        2: ["<answer>C</answer>"],  # 4/4
    }
    decoding = Decoding(mode="sample", samples=4, temperature=0.7, top_p=0.9)
    summary = evaluate("tiny", eval_split, tmp_path / "out", decoding=decoding, batch_size=2)
    block = summary["conditions"]["none"]
    assert block["samples"] == 4 and len(_rows(tmp_path / "out")) == 16
    assert block["accuracy"] == pytest.approx((2 + 1 + 4 + 0) / 16)
    assert block["ci_method"] == "bootstrap" and block["ci95"][0] < block["accuracy"] < block["ci95"][1]
    assert block["majority_accuracy"] == 0.5  # items 0 and 2
    # pass@1 = mean accuracy; pass@2 = 1 - C(4-c, 2)/C(4, 2) averaged: (5/6 + 1/2 + 1 + 0) / 4
    assert block["pass@k"] == pytest.approx({"1": 7 / 16, "2": (5 / 6 + 1 / 2 + 1) / 4, "4": 3 / 4})
    assert block["unparseable_rate"] == pytest.approx(1 / 16)


def test_settings_are_validated(eval_split, tmp_path):
    with pytest.raises(ValueError, match="samples must be 1"):
        Decoding(mode="greedy", samples=2)
    with pytest.raises(ValueError, match="unknown ablation"):
        evaluate("tiny", eval_split, tmp_path, ablate=["colour"])


def test_real_tiny_model_end_to_end(tiny_model_dir, eval_split, tmp_path):
    summary = evaluate(
        tiny_model_dir,
        eval_split,
        tmp_path / "out",
        ablate=["audio"],
        batch_size=2,
        max_new_tokens=6,
        limit=2,
    )
    rows = _rows(tmp_path / "out")
    assert len(rows) == 4 and {r["condition"] for r in rows} == {"none", "audio"}
    assert all(r["length"] <= 6 and isinstance(r["completion"], str) for r in rows)
    assert summary["n_items"] == 2 and 0 <= summary["accuracy"] <= 1
    assert summary["settings"]["decoding"]["mode"] == "greedy"


def test_lora_adapter_directory_is_evaluated_merged(tiny_model_dir, eval_split, tmp_path):
    from transformers import AutoProcessor

    from echoink.eval.evaluate import load_model
    from echoink.model.loading import load_policy
    from echoink.model.saving import save_model

    adapter = save_model(
        load_policy(tiny_model_dir, lora_rank=4),
        AutoProcessor.from_pretrained(tiny_model_dir),
        tmp_path / "lora",
    )
    model, _ = load_model(adapter)
    assert not hasattr(model, "peft_config") and not any(p.requires_grad for p in model.parameters())
    summary = evaluate(adapter, eval_split, tmp_path / "out", max_new_tokens=4, limit=1)
    assert summary["n_items"] == 1


def test_needs_is_grouped_even_with_one_value():
    """The demo's modality table reads accuracy on "both" items; a split of "both" items only must keep it."""
    from echoink.data.schema import Sample
    from echoink.eval.summary import _group_fields

    def sample(i: int, needs: str) -> Sample:
        meta = {"needs": needs, "family": "tone_where", "seed": i}
        return Sample(str(i), "q", ["a", "b"], "A", None, None, "text", meta)

    assert _group_fields([sample(i, "both") for i in range(5)]) == ["needs"]
    assert _group_fields([sample(i, n) for i, n in enumerate(["both", "audio", "both"])]) == ["needs"]


def test_summary_records_the_split_files_sha256(scripted, eval_split, tmp_path):
    """``compare`` pairs items by id only on the same split; the summary names it by content."""
    import hashlib

    summary = evaluate("m", eval_split, tmp_path / "out", limit=1)
    assert summary["data_sha256"] == hashlib.sha256(eval_split.read_bytes()).hexdigest()
    saved = json.loads((tmp_path / "out/summary.json").read_text())
    assert saved["data_sha256"] == summary["data_sha256"]


def test_placeholder_text_in_a_question_does_not_abort_the_split(scripted, eval_split, tmp_path):
    """'<|IMAGE|>' in a question used to add a placeholder the processor could not match to an image,
    failing every batch of the split; it is text now."""
    rows = json.loads(eval_split.read_text())
    rows[1]["problem"] = rows[1]["problem"].replace("object", "object <|IMAGE|>")
    eval_split.write_text(json.dumps(rows))
    summary = evaluate("m", eval_split, tmp_path / "out", batch_size=4)
    assert summary["conditions"]["none"]["n"] == 4


def test_an_ablation_that_applies_to_no_item_is_not_applicable(scripted, eval_split, tmp_path):
    """desync and video on an image + audio split used to run unchanged prompts and report +0.000."""
    summary = evaluate("m", eval_split, tmp_path / "out", ablate=["desync", "video", "audio"])
    for condition in ("desync", "video"):
        assert summary["conditions"][condition] == {
            "n": 0, "applicable": False, "note": "not applicable: no item carries what this ablation removes",
        }  # fmt: skip
    assert "drop" in summary["conditions"]["audio"]
    assert {r["condition"] for r in _rows(tmp_path / "out")} == {
        "none",
        "audio",
    }  # nothing generated for them
    table = format_summary(summary)
    assert (
        "desync                        n/a      not applicable" in table
        and "+0.0" not in table.split("desync")[1].split("\n")[0]
    )


def test_a_partly_applicable_ablation_is_measured_on_its_items():
    """desync applies to the video items only; its drop compares them with the same items unablated."""
    from echoink.data.schema import Sample
    from echoink.eval.summary import summarize

    kinds = ["image_audio", "image_audio", "video_audio", "video_audio"]
    samples = [Sample(str(i), "q", ("A. x", "B. y"), "A", None, None, k) for i, k in enumerate(kinds)]

    def row(i: int, condition: str, ok: bool) -> dict:
        return {"id": str(i), "condition": condition, "sample": 0, "pred": "A" if ok else "B", "correct": ok, "answer": "A",
                "format_ok": True, "length": 3, "truncated": False, "completion": ""}  # fmt: skip

    rows = [row(0, "none", True), row(1, "none", True), row(2, "none", True), row(3, "none", False)]
    rows += [row(2, "desync", False), row(3, "desync", False)]
    desync = summarize(rows, samples, ["none", "desync"])["conditions"]["desync"]
    assert desync["n"] == 2 and desync["accuracy"] == 0.0
    assert desync["drop"] == 0.5  # the video items' 1/2 unablated, not all four items' 3/4


def _rewrite_weights(model_dir: Path) -> None:
    """Change one weight in place, as `train --resume` rewriting final/ does (same path, same names)."""
    from safetensors.torch import load_file, save_file

    path = model_dir / "model.safetensors"
    tensors = load_file(path)
    name = next(iter(tensors))
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] += 1.0
    save_file(tensors, path, metadata={"format": "pt"})


def test_resume_with_other_weights_at_the_same_path_is_refused(
    scripted, eval_split, tiny_model_dir, tmp_path, capsys
):
    """eval, the weights rewritten in place, the same eval again: one line, no prediction reused."""
    import shutil

    from echoink.cli import run

    model = tmp_path / "run1/final"
    shutil.copytree(tiny_model_dir, model)
    out = tmp_path / "e1"
    scripted.script = {i: ["<answer>A</answer>"] for i in range(4)}
    first = evaluate(model, eval_split, out, batch_size=4)
    assert len(first["weights_sha256"]) == 64
    evaluate(model, eval_split, out, batch_size=4)  # the same weights: resumed, nothing generated
    assert len(scripted.calls) == 1
    _rewrite_weights(model)
    before = (out / "predictions.jsonl").read_text()
    with pytest.raises(ValueError, match="made by other weights") as err:
        evaluate(model, eval_split, out, batch_size=4)
    assert f"sha256 {first['weights_sha256'][:12]}, now " in str(err.value) and "\n" not in str(err.value)
    assert (out / "predictions.jsonl").read_text() == before and len(scripted.calls) == 1
    args = ["eval", "--model", str(model), "--data", str(eval_split), "--out", str(out)]
    capsys.readouterr()
    with pytest.raises(SystemExit) as code:
        run(args)
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert code.value.code == 2 and len(err_lines) == 1 and "made by other weights" in err_lines[0], err_lines


def test_a_lora_adapters_fingerprint_covers_its_base(tiny_model_dir, tmp_path):
    import json as _json
    import shutil

    from echoink.eval.weights import weights_fingerprint

    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(_json.dumps({"base_model_name_or_path": str(base)}))
    (adapter / "adapter_model.safetensors").write_bytes(b"not really weights")
    before = weights_fingerprint(adapter)
    assert before is not None and before != weights_fingerprint(base)
    _rewrite_weights(base)
    assert weights_fingerprint(adapter) != before  # the adapter's bytes are the same; its base changed
    assert weights_fingerprint(tmp_path / "nothing") is None


def test_cli_prints_the_settings_once_and_the_next_command(scripted, eval_split, tiny_model_dir, tmp_path):
    from typer.testing import CliRunner

    from echoink.cli import app

    out = tmp_path / "e"
    args = ["eval", "--model", str(tiny_model_dir), "--data", str(eval_split), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--json", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("settings: ") == 1 and "decoding=greedy" in result.stdout
    assert "max_new_tokens 256" not in result.stdout  # the summary's own settings line is left out
    assert f"next: echoink report {out}" in result.stdout
    assert json.loads((tmp_path / "s.json").read_text())["n_items"] == 4

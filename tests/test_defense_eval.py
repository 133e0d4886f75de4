"""Defense evaluation: report shape and known properties, Jacobian budget, CLI, audit section, bad input."""

import json

import pytest

from tfmodelsec.defenses import make_defense
from tfmodelsec.defenses.evaluate import evaluate_defenses, format_change
from tfmodelsec.defenses.jacobian import jacobian_augmentation
from tfmodelsec.oracle import BlackBox


def test_format_change():
    assert format_change(0.9513, 0.9513) == "95.13 (-0.00)"
    assert format_change(0.9456, 0.9513) == "94.56 (-0.57)"
    assert format_change(0.80, 0.75) == "80.00 (+5.00)"


def test_jacobian_spends_exactly_the_budget(digits_victim, digits):
    oracle = BlackBox(digits_victim, budget=230)
    result = jacobian_augmentation(oracle, digits.x_train[:40], budget=230, student="mlp", epochs=1, seed=0,
                                   eval_data=(digits.x_test, digits.y_test))
    assert oracle.queries_used == result.queries_used == 230 and result.rounds == 4  # 40, 80, 160, then 230
    assert 0 <= result.accuracy <= 1
    with pytest.raises(ValueError, match="seed_x"):
        jacobian_augmentation(oracle, digits.x_train[:10], budget=5)


def test_evaluate_defenses_report(digits_victim, digits):
    defenses = {"none": None, "label": make_defense("label", digits_victim),
                "apgp_top1": make_defense("apgp_top1", digits_victim, x=digits.x_train, epochs=1),
                "apmsa_fgsm": make_defense("apmsa_fgsm", digits_victim, eps=0.2, steps=3)}
    report = evaluate_defenses(digits_victim, defenses, digits, attacks=["kl"], budgets=[100], epochs=1, student="mlp",
                               test_samples=200, tsne_samples=60, tsne_defenses=["none", "apgp_top1"], verbose=0)
    base = digits_victim.accuracy(digits.x_test[:200], digits.y_test[:200])
    for name in defenses:  # none of these changes a label
        assert report.defender[name] == pytest.approx(base)
        assert report.label_kept[name] == 1.0
        assert 0 <= report.stealer[name]["kl@100"] <= 1
    assert report.cost_ratio["apmsa_fgsm"] > report.cost_ratio["label"]
    md = report.to_markdown()
    assert f"| none | {100 * base:.2f} (-0.00) |" in md and "apmsa_fgsm" in md
    assert set(report.extra["tsne"]) == {"none", "apgp_top1"} and len(report.extra["tsne"]["none"]["xy"]) == 60
    json.dumps(report.to_dict())


def test_bad_input(digits_victim, digits):
    with pytest.raises(ValueError, match="attacks"):
        evaluate_defenses(digits_victim, {"none": None}, digits, attacks=["zoo"], budgets=[10])
    with pytest.raises(ValueError, match="budgets"):
        evaluate_defenses(digits_victim, {"none": None}, digits, budgets=[10 ** 6])
    with pytest.raises(ValueError, match="budgets"):
        evaluate_defenses(digits_victim, {"none": None}, digits, budgets=[0])
    with pytest.raises(ValueError, match="x"):
        make_defense("apgp_top1", digits_victim)


@pytest.mark.slow
def test_cli_defend_and_evaluate(digits_victim, tmp_path):
    from tfmodelsec.cli import main
    from tfmodelsec.defenses import load_defense

    victim_path = tmp_path / "v.keras"
    digits_victim.model.save(victim_path)
    assert main([  # APGP trained and saved
        "defend", str(victim_path), "--dataset", "digits", "--defense", "apgp_top1", "--epochs", "1",
        "--out", str(tmp_path / "d"), "--quiet"]) == 0
    meta = json.loads((tmp_path / "d" / "defend.json").read_text())
    assert meta["label_kept"] == 1.0 and meta["defender_accuracy"] == meta["victim_accuracy"]
    assert load_defense(tmp_path / "d" / "defense.keras").top_k == 1
    assert main(["evaluate", str(victim_path), "--dataset", "digits", "--defenses", "none,rounding",
                 "--queries", "100", "--epochs", "1", "--test-samples", "200", "--tsne-samples", "50",
                 "--out", str(tmp_path / "e"), "--quiet"]) == 0
    out = json.loads((tmp_path / "e" / "defenses.json").read_text())
    assert set(out["stealer_acc"]) == {"none", "rounding"} and (tmp_path / "e" / "tsne.png").is_file()
    assert "Defender Acc" in (tmp_path / "e" / "defenses.md").read_text()
    assert main(["defend", str(victim_path), "--dataset", "digits", "--defense", "topk", "--param", "k=0",
                 "--out", str(tmp_path / "bad")]) == 2


@pytest.mark.slow
def test_audit_section_quick(digits_victim, digits, tmp_path):
    from tfmodelsec.audit import AuditContext
    from tfmodelsec.audit.defenses import audit_section

    section = audit_section(AuditContext(digits_victim, digits, tmp_path, quick=True, verbose=0))
    assert section.key == "defenses" and (tmp_path / "defenses_tsne.png").is_file()
    assert section.summary["label_kept"]["apgp_top1"] == 1.0
    json.dumps(section.summary)


def test_public_surface():
    import tfmodelsec.defenses as d

    assert set(d.__all__) >= {"make_defense", "load_defense", "save_defense", "defended_model", "APGP", "APMSA",
                              "MAD", "GaussianNoise", "ReverseSigmoid", "Rounding", "TopK", "HardLabel",
                              "train_apgp", "DEFENSES"}
    for name in d.__all__:
        assert hasattr(d, name), name


@pytest.mark.parametrize("argv,word", [(["--defenses", "none,bogus"], "defenses"), (["--attacks", "zoo"], "attacks"),
                                       (["--queries", "0"], "queries")], ids=["defense", "attack", "queries"])
def test_cli_evaluate_bad_arguments(tmp_path, capsys, argv, word):
    from tfmodelsec.cli import main

    assert main(["evaluate", str(tmp_path / "missing.h5"), "--out", str(tmp_path), *argv]) == 2
    assert word in capsys.readouterr().err

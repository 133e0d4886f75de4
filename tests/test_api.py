"""Pins the public surface: a change here is a change users see.

Each package's ``__all__`` is compared with the exact set below, so a name added, renamed or
dropped fails here first and is then changed on purpose (and in the README, if it shows there).
"""

import importlib

import pytest

PUBLIC_API = {
    "tfmodelsec": {
        "__version__", "BlackBox", "Dataset", "DatasetUnavailable", "InvalidQueryError", "ModelLoadError",
        "QueryBudgetExceeded", "TfmsError", "UnsafeModelError", "Victim", "as_victim", "build_model",
        "load_dataset", "load_victim", "run_audit", "save_model", "set_seed", "train_classifier",
    },
    "tfmodelsec.attacks": {
        "InversionConfig", "InversionResult", "LOSSES", "MembershipResult", "MembershipSplit", "RecoveryResult",
        "SELECTION_METHODS", "SemiSupervised", "ShadowTraining", "StealResult", "SweepResult", "attack_success",
        "build_attack_model", "cw", "drmi_subset", "evaluate_student", "fgsm", "invert", "membership_inference",
        "membership_split", "mutual_information_matrix", "pgd", "recover_inputs", "select_queries", "steal",
        "tv_sweep",
    },
    "tfmodelsec.attacks.membership": {
        "ATTACKS", "LabelOnly", "LiraShadows", "MembershipResult", "MembershipSplit", "REPORT_FPRS", "ShadowTraining",
        "membership_inference", "membership_split", "merge_lira_shadows", "results_table", "train_lira_shadows",
    },
    "tfmodelsec.attacks.stealing": {
        "LOSSES", "SELECTION_METHODS", "SemiSupervised", "StealResult", "drmi_subset", "evaluate_student",
        "mutual_information_matrix", "select_queries", "steal", "summarize", "sweep",
    },
    "tfmodelsec.defenses": {
        "APGP", "APGPResult", "APMSA", "DEFENSES", "DefenseReport", "GaussianNoise", "HardLabel", "MAD",
        "ReverseSigmoid", "Rounding", "TopK", "defended_model", "evaluate_defenses", "load_defense",
        "make_defense", "save_defense", "train_apgp", "tsne_plot",
    },
    "tfmodelsec.unlearning": {
        "Chain", "ChainConfig", "ChainError", "MajorityVote", "Sisa", "UnlearnResult", "check_delete_ids",
        "evaluate_unlearning", "fit_power_law", "merge_sisa", "retrain", "stitch", "train_chain", "train_sisa",
        "unlearn", "unlearn_sisa",
    },
    "tfmodelsec.export": {
        "ENDPOINT", "ExportCheck", "INPUT_NAME", "METADATA_FILE", "OUTPUT_KEYS", "check_defense", "check_export",
        "describe_signatures", "export_defended", "resolve_version_dir", "serving_example", "serving_function",
    },
    "tfmodelsec.data": {"DATASETS", "Dataset", "keras_cache_dir", "load_dataset"},
    "tfmodelsec.audit": {"AuditContext", "AuditReport", "SECTION_PROVIDERS", "Section", "run_audit"},
}


@pytest.mark.parametrize("module_name", sorted(PUBLIC_API), ids=str)
def test_public_api_is_pinned(module_name):
    module = importlib.import_module(module_name)
    assert set(module.__all__) == PUBLIC_API[module_name]
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name} is listed in __all__ but missing"


def test_audit_sections_in_report_order():
    from tfmodelsec.audit import SECTION_PROVIDERS

    assert list(SECTION_PROVIDERS) == ["victim", "inversion", "stealing", "membership", "defenses"]
    assert all(callable(build) for build in SECTION_PROVIDERS.values())


def test_no_import_circle_and_attacks_never_import_the_audit():
    """Data flows one way: no two package modules import each other, and the attacks, defenses
    and export import neither the audit nor the command line (read from the source, not run)."""
    import ast
    import graphlib
    from pathlib import Path

    import tfmodelsec

    root = Path(tfmodelsec.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path

    def imports(name, path):
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                candidates = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            found |= {c for c in candidates if c in modules and c != name}
        return found

    graph = {name: imports(name, path) for name, path in modules.items()}
    # package __init__ files re-export their modules by design; any other loop is a circle
    plain = {n: {d for d in deps if modules[d].name != "__init__.py"}
             for n, deps in graph.items() if modules[n].name != "__init__.py"}
    try:
        graphlib.TopologicalSorter(plain).prepare()
    except graphlib.CycleError as exc:
        pytest.fail(f"import circle: {' -> '.join(exc.args[1])}")
    lower = [n for n in graph if n.startswith(("tfmodelsec.attacks", "tfmodelsec.defenses", "tfmodelsec.export"))]
    upward = {n: sorted(d for d in graph[n] if d.startswith(("tfmodelsec.audit", "tfmodelsec.cli")))
              for n in lower}
    assert {n: d for n, d in upward.items() if d} == {}

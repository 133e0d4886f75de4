"""Generate the lab notebooks (outputs cleared). Run: ``python notebooks/_build.py``."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = '''import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
%matplotlib inline
import numpy as np
from IPython.display import Image, Markdown, display

QUICK = os.environ.get("QUICK") == "1"  # QUICK=1 shrinks epochs / queries for a smoke run
ROOT = Path.cwd() if (Path.cwd() / "saved_models").is_dir() else Path.cwd().parent
OUT = Path(os.environ.get("OUTPUT_DIR") or tempfile.mkdtemp(prefix="tfmodelsec_nb_"))
OUT.mkdir(parents=True, exist_ok=True)
print("QUICK =", QUICK, "| outputs in", OUT)'''


def md(s):
    return new_markdown_cell(s.strip())


def code(s):
    return new_code_cell(s.strip())


NOTEBOOKS = {}

NOTEBOOKS["01_input_recovery"] = [
    md("""# Lab 1: recovering inputs from a white-box model
A trainable front-end (one-hot class → image) is put before the **frozen** victim with the Keras Functional API
and trained so that the victim classifies its output as the wanted class (Fredrikson et al., CCS 2015, the
seed's lab 1). Set `QUICK=1` for a fast smoke run."""),
    code(SETUP),
    md("## 1. Load the committed victim\nLeNet-5 trained on MNIST (`saved_models/lenet5_mnist.h5`), loaded in Keras safe mode."),
    code('''from tfmodelsec.models import load_victim

victim = load_victim(ROOT / "saved_models" / "lenet5_mnist.h5")
print(victim.describe())'''),
    md("## 2. The attacker front-end\n`build_attack_model` is a Dense layer from the one-hot class to an image, squashed into the input range."),
    code('''from tfmodelsec.attacks import build_attack_model

front = build_attack_model(victim.num_classes, victim.input_shape, victim.input_range)
front.summary()'''),
    md("## 3. Recover an input the victim calls 9 (the lab's task)"),
    code('''from tfmodelsec.attacks import recover_inputs

EPOCHS = 3 if QUICK else 30
r9 = recover_inputs(victim, targets=[9], epochs=EPOCHS, verbose=0)
print("victim's confidence in class 9:", r9.confidence)
display(r9.plot())'''),
    md("## 4. All ten classes, then save `attack_model.h5` and `combined_model.h5`"),
    code('''res = recover_inputs(victim, epochs=EPOCHS, verbose=0)
print(res.to_dict())
res.attack_model.save(OUT / "attack_model.h5")
res.combined_model.save(OUT / "combined_model.h5")
print(sorted(p.name for p in OUT.iterdir()))
display(res.plot())'''),
]

NOTEBOOKS["02_model_inversion"] = [
    md("""# Lab 2: model inversion with total-variation regularisation
Gradient ascent on the input to maximise a class score, with a total-variation (TV) prior that keeps the image
smooth (Fredrikson et al. 2015; Mahendran & Vedaldi, CVPR 2015). An independent classifier judges whether the
inverted images are recognisable."""),
    code(SETUP),
    code('''from tfmodelsec.data import load_dataset
from tfmodelsec.models import load_victim

victim = load_victim(ROOT / "saved_models" / "lenet5_mnist.h5")
independent = load_victim(ROOT / "saved_models" / "mlp_mnist.h5")  # a different architecture
data = load_dataset("mnist").subset(2000, 500)
STEPS = 40 if QUICK else 600'''),
    md("## 1. Invert every class"),
    code('''from tfmodelsec.attacks import invert

inv = invert(victim, steps=STEPS, tv_weight=0.1, verbose=0)
class_means = np.stack([data.x_train[data.y_train == c].mean(0) for c in range(10)])
metrics = inv.evaluate(class_means, independent=independent)
print({k: v for k, v in metrics.items() if k != "per_class"})
from tfmodelsec import plotting
display(plotting.image_grid(np.clip(inv.images, 0, 1), titles=[f"{c}: {p:.2f}" for c, p in zip(inv.labels, inv.confidence, strict=True)]))'''),
    md("## 2. The λ sweep\nOne row per TV weight λ: more TV, smoother and more recognisable images, lower victim confidence."),
    code('''from tfmodelsec.attacks import tv_sweep

lams = (0.0, 1.0) if QUICK else (0.0, 0.1, 1.0, 10.0)
classes = [0, 3, 7] if QUICK else None
sweep = tv_sweep(victim, lams, classes=classes, class_means=class_means, independent=independent,
                 steps=STEPS, verbose=0)
display(sweep.plot())'''),
    md("## 3. The independent classifier's verdict\nThe MLP (never used by the attack) labels each inverted image."),
    code('''for row in sweep.to_dict()["trade_off"]:
    print({k: row[k] for k in row if not isinstance(row[k], (list, dict))})
verdict = independent.predict_labels(inv.images)
print("independent MLP labels:", verdict.tolist(), "| targets:", inv.labels.tolist())
print("agreement:", float(np.mean(verdict == inv.labels)))'''),
]

NOTEBOOKS["03_model_stealing"] = [
    md("""# Lab 3: model stealing by distillation
A black-box oracle answers queries; a student is distilled from the answers (Tramèr et al., USENIX Security 2016;
Hinton et al. 2015 for the temperature τ). Query selection by DRMI (a diversity criterion based on mutual information)
is compared with random selection."""),
    code(SETUP),
    code('''from tfmodelsec.data import load_dataset
from tfmodelsec.models import load_victim
from tfmodelsec.oracle import BlackBox

victim = load_victim(ROOT / "saved_models" / "lenet5_mnist.h5")
data = load_dataset("mnist").subset(2000 if QUICK else 20000, 500 if QUICK else 5000)
EPOCHS = 2 if QUICK else 30
BUDGETS = (50, 150) if QUICK else (100, 500, 1000, 2000)'''),
    md("## 1. Losses: MSE, KL with temperature τ, hard labels"),
    code('''from tfmodelsec.attacks import steal

rows = []
for loss in ("mse", "kl", "hard"):
    oracle = BlackBox(victim, budget=BUDGETS[-1])
    r = steal(oracle, data.x_train[: BUDGETS[-1]], loss=loss, temperature=4.0, epochs=EPOCHS,
              eval_data=(data.x_test, data.y_test), augment=False, verbose=0)
    rows.append(r.to_dict())
    print(loss, "accuracy", round(r.accuracy, 3), "fidelity", round(r.fidelity, 3), "queries", r.queries_used)'''),
    md("## 2. Accuracy vs queries, DRMI vs random selection"),
    code('''from tfmodelsec import plotting
from tfmodelsec.attacks import select_queries

curve = []
for method in ("random", "drmi"):
    for n in BUDGETS:
        idx = select_queries(data.x_train, n, method=method, candidates=500 if QUICK else 5000, seed=0)
        r = steal(BlackBox(victim, budget=n), data.x_train[idx], loss="kl", epochs=EPOCHS,
                  eval_data=(data.x_test, data.y_test), augment=False, verbose=0)
        curve.append({"method": method, "loss": "kl", "budget": n, "accuracy": r.accuracy})
        print(method, n, round(r.accuracy, 3))
print("victim accuracy:", victim.accuracy(data.x_test, data.y_test))
display(plotting.steal_curves_figure(curve, title="student accuracy vs queries (KL, τ=4)"))'''),
]

NOTEBOOKS["04_membership_inference"] = [
    md("""# Lab 4: membership inference
Was a record in the training set? Loss threshold (Yeom et al., CSF 2018), shadow models (Shokri et al., S&P 2017),
a proxy model, and LiRA (Carlini et al., S&P 2022), on a deliberately overfit target. ROC curves on log axes show
the low false-positive regime that matters."""),
    code(SETUP),
    md("## 1. An overfit target\nA small CNN trained on only a few hundred sklearn-digits records for many epochs."),
    code('''from tfmodelsec.data import load_dataset
from tfmodelsec.models import train_classifier
from tfmodelsec.models import as_victim

data = load_dataset("digits")
N = 200 if QUICK else 500
target = train_classifier("lenet5", (data.x_train[:N], data.y_train[:N]), epochs=40 if QUICK else 100,
                          batch_size=32, learning_rate=3e-3, seed=0, verbose=0)
victim = as_victim(target.model)
print("train acc", target.train_accuracy, "test acc", victim.accuracy(data.x_test, data.y_test))'''),
    md("## 2. Members, non-members and the attacker's population"),
    code('''from tfmodelsec.attacks import membership_split

split = membership_split(data, f"first:{N}", population="train-rest")
print(split.assumption)'''),
    md("## 3. Four attacks"),
    code('''from tfmodelsec.attacks import ShadowTraining, membership_inference

training = ShadowTraining(epochs=20 if QUICK else 100)
results = {}
for attack, kw in [("loss", {}), ("shadow", {"num_shadows": 2 if QUICK else 4, "training": training}),
                   ("proxy", {"training": training}),
                   ("lira", {"num_shadows": 2 if QUICK else 16, "fixed_variance": QUICK, "training": training})]:
    results[attack] = membership_inference(victim, split.members, split.non_members, attack=attack,
                                           population=split.population, shadow_size=N, seed=0, verbose=0, **kw)
    r = results[attack]
    print(f"{attack:7s} AUC {r.get_auc():.3f}  advantage {r.get_attacker_advantage():.3f}  TPR@1%FPR {r.tpr_at_fpr(0.01):.3f}")'''),
    md("""With `QUICK=1` LiRA gets only 2 reference models and is unreliable (an AUC near or below 0.5 is
expected); Carlini et al. use 16-256, as the full run does (16)."""),
    md("## 4. ROC on log axes"),
    code('''from tfmodelsec import plotting

curves = {name: r.roc_curve()[:2] for name, r in results.items()}
display(plotting.roc_figure(curves, title="membership inference ROC"))'''),
]

NOTEBOOKS["05_defenses"] = [
    md("""# Lab 5: defenses against model stealing
Output perturbations (Gaussian noise; reverse sigmoid, Lee et al. 2019), APGP (a trained adaptive
perturbation of the probability vector) and APMSA (adversarial perturbation of the query before the victim),
compared in the Stealer/Defender table (Defender Acc: the owner's accuracy through the defense; Stealer Acc: the
student's), then t-SNE of the defended outputs."""),
    code(SETUP),
    code('''from tfmodelsec.data import load_dataset
from tfmodelsec.defenses import make_defense
from tfmodelsec.models import load_victim

victim = load_victim(ROOT / "saved_models" / "lenet5_mnist.h5")
data = load_dataset("mnist").subset(1000 if QUICK else 20000, 300 if QUICK else 5000)
defenses = {
    "none": None,
    "gaussian": make_defense("gaussian", victim, seed=0),
    "reverse_sigmoid": make_defense("reverse_sigmoid", victim, seed=0),
    "apgp_top1": make_defense("apgp_top1", victim, x=data.x_train, seed=0, epochs=1 if QUICK else 10),
    "apmsa_fgsm": make_defense("apmsa_fgsm", victim, seed=0),
}
print({k: type(v).__name__ for k, v in defenses.items()})'''),
    md("## 1. What a defended oracle answers"),
    code('''from tfmodelsec.oracle import BlackBox

x = data.x_test[:3]
for name, layer in defenses.items():
    print(f"{name:16s}", np.round(BlackBox(victim, defense=layer)(x)[0], 3))'''),
    md("## 2. The Stealer/Defender table"),
    code('''from tfmodelsec.defenses.evaluate import evaluate_defenses, tsne_plot

report = evaluate_defenses(victim, defenses, data, attacks=("kl",), budgets=(100,) if QUICK else (1000,),
                           epochs=2 if QUICK else 10, test_samples=300 if QUICK else 5000,
                           tsne_samples=150 if QUICK else 1000, seed=0, verbose=0)
display(Markdown(report.to_markdown()))'''),
    md("## 3. t-SNE of the defended outputs"),
    code('''path = tsne_plot(report, OUT / "tsne.png", title="defended outputs (t-SNE)")
display(Image(filename=str(path)))'''),
]

NOTEBOOKS["06_unlearning"] = [
    md("""# Lab 6: machine unlearning with a checkpoint chain
Training stores a checkpoint after every block of data; deleting records retrains from the first block that held
them, and DeepObliviate (He et al., 2021) stops early once the residual memory of the deleted data (fitted by a
power law) falls below ε. Compared with naive retraining from scratch (and SISA, Bourtoule et al., S&P 2021)."""),
    code(SETUP),
    code('''from tfmodelsec.data import load_dataset
import shutil

from tfmodelsec.unlearning import train_chain

shutil.rmtree(OUT / "chain", ignore_errors=True)  # train_chain refuses to overwrite a chain
data = load_dataset("digits")
BLOCKS = 5 if QUICK else 20
chain = train_chain("lenet5", data, OUT / "chain", blocks=BLOCKS, epochs_per_block=3, seed=0, verbose=0)
print(len(chain.blocks), "blocks, trained in", round(chain.train_seconds, 1), "s")'''),
    md("## 1. Delete records from the second block"),
    code('''from tfmodelsec.unlearning import unlearn

delete_ids = chain.blocks[1][:20]
res = unlearn(chain, delete_ids, epsilon=0.1, data=data, verbose=0)
print(res.to_dict())'''),
    md("## 2. The residual-memory curve"),
    code('''display(res.plot(title="residual memory of the deleted records"))'''),
    md("## 3. Compare with retraining"),
    code('''from tfmodelsec.unlearning import evaluate_unlearning, retrain

ref = retrain(chain, delete_ids, data=data, verbose=0)
print("retrain:", ref.blocks_retrained, "blocks in", round(ref.seconds, 2), "s; DeepObliviate:",
      res.blocks_retrained, "blocks in", round(res.seconds, 2), "s")
print(evaluate_unlearning(res.model, data, reference=ref.model, deleted=(data.x_train[delete_ids], data.y_train[delete_ids])))'''),
]

NOTEBOOKS["07_export_tf_serving"] = [
    md("""# Lab 7: exporting a defended model for TF Serving
The victim and its defense layer become one SavedModel with a `serving_default` signature, so the protected
outputs are what a TF Serving deployment answers (Reverse sigmoid: Lee et al. 2019)."""),
    code(SETUP),
    code('''from tfmodelsec.data import load_dataset
from tfmodelsec.defenses import make_defense
from tfmodelsec.export import describe_signatures, export_defended, serving_example
from tfmodelsec.models import load_victim

victim = load_victim(ROOT / "saved_models" / "lenet5_mnist.h5")
defense = make_defense("reverse_sigmoid", victim, seed=0)
path = export_defended(victim, defense, OUT / "serving" / "lenet5", version=1, overwrite=True)
print(path)'''),
    md("## 1. Inspect the signature (what `saved_model_cli show` prints)"),
    code('''import json

print(json.dumps(describe_signatures(path), indent=1))'''),
    md("## 2. Call it like TF Serving would"),
    code('''import tensorflow as tf

data = load_dataset("mnist").subset(10, 10)
loaded = tf.saved_model.load(str(path))
fn = loaded.signatures["serving_default"]
out = fn(tf.constant(data.x_test[:4]))
print({k: v.numpy().round(3) for k, v in out.items()})
request, response = serving_example(path, data.x_test[:1], decimals=3)
print("POST /v1/models/lenet5:predict ->", json.dumps(response)[:300])'''),
    code('''from tfmodelsec import plotting

display(plotting.image_grid(data.x_test[:4], titles=[str(int(v)) for v in np.ravel(out["label"].numpy())]))'''),
]


def main():
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(cells=cells, metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"}})
        nbformat.write(nb, HERE / f"{name}.ipynb")
        print("wrote", name)


if __name__ == "__main__":
    main()

"""
Verification: ROC and DET curves, EER and minDCF
================================================

Speaker and face verification score a *pair* of embeddings and accept it as "same identity"
above a threshold. This example builds synthetic speaker embeddings - an identity component
plus a strong "channel" component that varies from recording to recording - and compares
three scorers on trials between **identities never seen in training**:

- cosine on the raw embeddings;
- cosine after :class:`pysim.Whitening` (unsupervised, fitted on the training rows);
- cosine after :class:`pysim.NCA` fitted on identity-labelled training rows: a learned
  metric that suppresses the channel directions;
- a metric learned from the training *pairs* alone: :class:`pysim.metric_learning.ITML`
  (information-theoretic metric learning), which :class:`pysim.PairVerifier` fits on the
  pairs it is given - no identity labels needed.

Each curve is read off :func:`pysim.metrics.operating_points`; the equal error rate
(:func:`pysim.metrics.eer`) and the minimum detection cost (:func:`pysim.metrics.min_dcf`)
are marked on it. The cost uses a genuine-trial prior ``p_target=0.05`` (the function's
default, 0.01, puts the optimum at a false-accept rate below what 3,000 impostor trials can
resolve). :class:`pysim.PairVerifier` then learns a threshold on
training pairs and is checked on the held-out trials.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import norm

import pysim
from pysim import metrics
from pysim.metric_learning import ITML

rng = np.random.default_rng(0)
dim, n_ids, per_id = 32, 200, 8
identity_dirs = rng.standard_normal((dim, 8)) / np.sqrt(8)  # identities live in 8 directions
channel_dirs = rng.standard_normal((dim, 12)) * 0.5  # recording conditions vary in 12 others


def recordings(n_identities):
    """per_id recordings of each of n_identities speakers: (rows, labels)."""
    ids = rng.standard_normal((n_identities, 8)) @ identity_dirs.T
    labels = np.repeat(np.arange(n_identities), per_id)
    channel = rng.standard_normal((len(labels), 12)) @ channel_dirs.T
    noise = 0.3 * rng.standard_normal((len(labels), dim))
    return ids[labels] + channel + noise, labels


def trials(X, labels, n_trials):
    """Random pairs, half of them genuine (same identity)."""
    a = rng.integers(0, len(X), n_trials)
    same = np.arange(n_trials) % 2 == 0
    b = np.empty(n_trials, dtype=np.int64)
    for t in range(n_trials):
        pool = np.flatnonzero((labels == labels[a[t]]) == same[t])
        pool = pool[pool != a[t]]
        b[t] = rng.choice(pool)
    return X[a], X[b], same


X_train, y_train = recordings(n_ids)
X_test, y_test = recordings(n_ids)  # new identities
A_train, B_train, same_train = trials(X_train, y_train, 4_000)
A_test, B_test, same_test = trials(X_test, y_test, 6_000)

P_TARGET = 0.05
EPS = 1e-4
learners = {
    "cosine": None,
    "Whitening + cosine": pysim.Whitening().fit(X_train),
    "NCA + cosine": pysim.NCA(n_components=8, max_iter=100, random_state=0).fit(X_train, y_train),
    "ITML from pairs + cosine": ITML(random_state=0),  # unfitted: PairVerifier fits it on pairs
}

# %%
# Scores on the held-out trials (higher = more alike), their operating points, EER and minDCF.
fig, (roc, det) = plt.subplots(1, 2, figsize=(11, 4.8))
for name, learner in learners.items():
    verifier = pysim.PairVerifier("cosine", metric_learner=learner)
    verifier.fit(A_train, B_train, same_train)
    scores = verifier.decision_function(A_test, B_test)
    thresholds, far, frr = metrics.operating_points(scores, same_test)
    eer = metrics.eer(scores, same_test)
    dcf = metrics.min_dcf(scores, same_test, p_target=P_TARGET)
    dcf_at = np.argmin(P_TARGET * frr + (1 - P_TARGET) * far)  # min_dcf's threshold (unit costs)
    eer_at = np.argmin(np.maximum(far, frr))

    accepted = verifier.predict(A_test, B_test)
    held_far = accepted[~same_test].mean()
    held_frr = 1 - accepted[same_test].mean()
    print(
        f"{name:20s} EER {eer:.3f}  minDCF {dcf:.3f}  threshold from training pairs: "
        f"FAR {held_far:.3f} / FRR {held_frr:.3f} on held-out trials"
    )

    (line,) = roc.plot(far, 1 - frr, label=f"{name} (EER {eer:.3f})")
    roc.plot(far[eer_at], 1 - frr[eer_at], "o", color=line.get_color())
    roc.plot(far[dcf_at], 1 - frr[dcf_at], "s", color=line.get_color())

    # rates of 0 or 1 are drawn at the edge of the normal-deviate axes
    px, py = norm.ppf(np.clip(far, EPS, 1 - EPS)), norm.ppf(np.clip(frr, EPS, 1 - EPS))
    det.plot(px, py, color=line.get_color(), label=f"{name} (minDCF {dcf:.3f})")
    det.plot(px[eer_at], py[eer_at], "o", color=line.get_color())
    det.plot(px[dcf_at], py[dcf_at], "s", color=line.get_color())

roc.set_xscale("log")
roc.set_xlim(1e-4, 1)
roc.set_xlabel("false-accept rate")
roc.set_ylabel("true-accept rate")
roc.set_title("ROC (o: EER, s: minDCF point)")
roc.legend(loc="lower right", fontsize=8)

ticks = np.array([0.0001, 0.001, 0.01, 0.05, 0.2, 0.5, 0.8])
det.set_xticks(norm.ppf(ticks), [f"{t:g}" for t in ticks])
det.set_yticks(norm.ppf(ticks), [f"{t:g}" for t in ticks])
det.plot(norm.ppf([EPS, 0.9]), norm.ppf([EPS, 0.9]), "k:", linewidth=0.8)  # FAR = FRR
det.set_xlim(norm.ppf(EPS), norm.ppf(0.9))
det.set_ylim(norm.ppf(EPS), norm.ppf(0.9))
det.set_xlabel("false-accept rate")
det.set_ylabel("false-reject rate")
det.set_title("DET, normal-deviate scales (o: EER, s: minDCF point)")
det.legend(loc="upper right", fontsize=8)
fig.tight_layout()
plt.show()

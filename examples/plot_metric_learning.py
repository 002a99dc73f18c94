"""
Metric learning: digits before and after NCA
============================================

A learned metric can make nearest neighbours agree with the labels far more often than the
Euclidean distance does. Here :class:`pysim.NCA` learns a 2-D linear map of the 64-pixel
digits on a training split; the test split is drawn in that 2-D space next to the best 2-D
linear view without labels (PCA), and each panel's title gives the 3-nearest-neighbour
accuracy *in the space drawn*.

The learned map plugs into every pysim index and estimator: ``transform`` the data, or pass
the learner as ``metric_learner=`` to :class:`pysim.KNeighborsClassifier`.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split

import pysim

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)


def knn3_accuracy(train, test):
    """3-NN accuracy of the test rows against the training rows, Euclidean in the given space."""
    clf = pysim.KNeighborsClassifier(3).fit(train, y_train)
    return clf.score(test, y_test)


full = knn3_accuracy(X_train, X_test)
pca = PCA(n_components=2, random_state=0).fit(X_train)
nca = pysim.NCA(n_components=2, max_iter=100, random_state=0).fit(X_train, y_train)

views = {
    "PCA (no labels)": (pca.transform(X_train), pca.transform(X_test)),
    "pysim.NCA": (nca.transform(X_train), nca.transform(X_test)),
}

# %%
# The learned 2-D space separates the classes the unsupervised view mixes.
fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
for ax, (name, (train, test)) in zip(axes, views.items(), strict=True):
    acc = knn3_accuracy(train, test)
    points = ax.scatter(test[:, 0], test[:, 1], c=y_test, cmap="tab10", s=8, vmin=-0.5, vmax=9.5)
    ax.set_title(f"{name}: 3-NN accuracy {acc:.3f}")
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(points, ax=axes, ticks=np.arange(10), label="digit")
fig.suptitle(f"Digits test split in 2-D (3-NN accuracy on all 64 pixels: {full:.3f})")
plt.show()

# %%
# The same learner in a full-dimensional pipeline: NCA keeping all 64 dimensions, inside the
# classifier (cloned and fitted on the training split, applied to every query).
clf = pysim.KNeighborsClassifier(3, metric_learner=pysim.NCA(max_iter=50, random_state=0))
learned = clf.fit(X_train, y_train).score(X_test, y_test)
print(f"Euclidean 3-NN: {full:.3f}   NCA 3-NN: {learned:.3f}")

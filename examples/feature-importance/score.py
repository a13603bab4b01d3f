# Feature importance: which wine measurements matter most to a random forest?
#
# The model is fitted at module level, i.e. once per worker when the script is
# loaded, not on every call. schema.json uses "isolation": "warm" so the fitted
# model is reused across calls.
import matplotlib
matplotlib.use("Agg")  # already done by the runtime; harmless to repeat
import matplotlib.pyplot as plt
import pandas as pd
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier

# Wine recognition data set: ships with scikit-learn, no download needed.
wine = load_wine()
model = RandomForestClassifier(n_estimators=50, random_state=0)
model.fit(wine.data, wine.target)

# All features, most important first.
RANKING = (
    pd.DataFrame({"feature": wine.feature_names, "importance": model.feature_importances_})
    .sort_values("importance", ascending=False, kind="stable")
    .reset_index(drop=True)
)


# The entry point function can contain up to two input arguments:
#   Param<dataframe1>: a pandas.DataFrame with one row and an integer column `top_n`
# The function returns a sequence whose first element is the output DataFrame.
def azureml_main(dataframe1 = None, dataframe2 = None):
    # Keep top_n within 1..number of features.
    top_n = min(max(int(dataframe1["top_n"].iloc[0]), 1), len(RANKING))

    top = RANKING.head(top_n).copy()
    top.insert(0, "rank", range(1, top_n + 1))

    # Horizontal bar chart, most important feature at the top. A .png written
    # to the current (per-call) directory becomes a call visualization.
    fig, ax = plt.subplots(figsize=(6, 0.4 * top_n + 1.5))
    ax.barh(top["feature"][::-1], top["importance"][::-1])
    ax.set_xlabel("importance")
    ax.set_title(f"Top {top_n} features (random forest, wine data)")
    fig.tight_layout()
    plt.savefig("feature_importance.png")
    plt.close(fig)

    # Return value must be a sequence of pandas.DataFrame
    return top,

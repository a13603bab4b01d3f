# The benchmark's experiment: a small vectorized computation over four numeric columns and
# one string column, returning a DataFrame of the same rows. bench/run.py serves this same
# function from scorepub and (wrapped in an mlflow.pyfunc.PythonModel) from MLflow.
import numpy as np
import pandas as pd

WEIGHTS = np.array([0.8, -0.5, 0.3])


def azureml_main(dataframe1=None, dataframe2=None):
    df = dataframe1
    x = df[["x1", "x2", "x3"]].to_numpy(dtype=np.float64)
    z = x @ WEIGHTS
    out = pd.DataFrame({
        "id": df["id"].to_numpy(dtype=np.int64),
        "score": 1.0 / (1.0 + np.exp(-z)),
        "total": x.sum(axis=1),
        "label": df["label"].astype(object).str.upper(),
    })
    return out,

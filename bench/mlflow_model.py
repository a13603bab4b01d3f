"""Save the benchmark's ``azureml_main`` as an MLflow pyfunc model (run by bench/run.py with the
Python of the MLflow virtualenv, never scorepub's):

    python mlflow_model.py SCORE_PY SAMPLE_JSON OUT_DIR

The model is saved "from code": a small module holding the same score.py source and a
``PythonModel`` whose ``predict`` returns ``azureml_main(model_input)[0]``. The signature is
inferred from the sample rows, so MLflow's own schema enforcement runs on every request, as it
would for a user who logs a model the recommended way (scorepub checks its schema too).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

WRAPPER = '''

# ---- MLflow wrapper (added by bench/mlflow_model.py) ----
import mlflow.pyfunc as _pyfunc
from mlflow.models import set_model as _set_model


class AzureMLMain(_pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return azureml_main(model_input)[0]


_set_model(AzureMLMain())
'''


def main() -> None:
    score_py, sample_json, out_dir = map(Path, sys.argv[1:4])
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    namespace: dict = {}
    source = score_py.read_text()
    exec(compile(source, str(score_py), "exec"), namespace)
    sample = pd.DataFrame(json.loads(sample_json.read_text())["input1"])
    output = namespace["azureml_main"](sample.copy())[0]
    signature = infer_signature(sample, output)
    code = out_dir.parent / "bench_model.py"
    code.write_text(source + WRAPPER)
    mlflow.pyfunc.save_model(str(out_dir), python_model=str(code), signature=signature)
    print(json.dumps({"mlflow": mlflow.__version__, "pandas": pd.__version__, "signature": signature.to_dict()}))


if __name__ == "__main__":
    main()

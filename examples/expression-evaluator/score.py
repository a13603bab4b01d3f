# Expression evaluator: evaluates each row's `expression` with Python's eval().
#
# This script deliberately runs caller-supplied code, so its schema.json asks for
# "isolation": "per-call": every call gets a fresh worker, and nothing one call
# does (a changed global, a monkeypatched module) is seen by the next one.
import math

import pandas as pd

# The names an expression may use: the math module's functions and constants
# (sqrt, sin, pi, e, ...) plus a few harmless builtins. Built once per worker.
NAMESPACE = {name: getattr(math, name) for name in dir(math) if not name.startswith("_")}
NAMESPACE.update(abs=abs, min=min, max=max, round=round, sum=sum, len=len,
                 int=int, float=float, pow=pow)


def evaluate(expression):
    """Return (result as a string, None) or (None, "ErrorType: message")."""
    try:
        # Empty __builtins__ so that only the names in NAMESPACE are available.
        value = eval(expression, {"__builtins__": {}}, dict(NAMESPACE))
        return str(value), None
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"


# The entry point function can contain up to two input arguments:
#   Param<dataframe1>: a pandas.DataFrame with one string column `expression`
# The function returns a sequence whose first element is the output DataFrame.
def azureml_main(dataframe1 = None, dataframe2 = None):
    results = [evaluate(expr) for expr in dataframe1["expression"]]

    output = pd.DataFrame({
        "expression": dataframe1["expression"],
        "result": [result for result, _ in results],
        "error": [error for _, error in results],
    }, dtype=object)  # keep plain str / None values, as in classic pandas

    # Anything printed ends up in the call's output log.
    print(f"evaluated {len(output)} expressions")

    # Return value must be a sequence of pandas.DataFrame
    return output,

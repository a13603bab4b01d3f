# Hello bundle: shows a Script Bundle with a Python module and a data file.
#
# `Hello` is not installed anywhere: it comes from bundle/Hello.py, which the
# runtime unpacks and puts first on sys.path before this script is loaded.
import Hello
import pandas as pd


# The entry point function can contain up to two input arguments:
#   Param<dataframe1>: a pandas.DataFrame with one string column `name`
# The function returns a sequence whose first element is the output DataFrame.
def azureml_main(dataframe1 = None, dataframe2 = None):
    output = pd.DataFrame({
        "name": dataframe1["name"],
        # print_hello also prints each greeting to the output log.
        "greeting": [Hello.print_hello(name) for name in dataframe1["name"]],
    })

    # Return value must be a sequence of pandas.DataFrame
    return output,

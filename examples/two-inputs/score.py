# Two inputs: join orders (input2) to the customers who placed them (input1).
#
# The schema declares two ports, so the runtime calls
# azureml_main(customers, orders) with both DataFrames, in port order.
import pandas as pd


# The entry point function can contain up to two input arguments:
#   Param<dataframe1>: customers, columns customer_id (int), name (str)
#   Param<dataframe2>: orders, columns order_id (int), customer_id (int),
#                      amount (float), placed_at (datetime, may be missing)
# The function returns a sequence whose first element is the output DataFrame.
def azureml_main(dataframe1 = None, dataframe2 = None):
    customers, orders = dataframe1, dataframe2

    # Inner join: orders of unknown customers are dropped.
    merged = orders.merge(customers, on="customer_id", how="inner")

    output = (
        merged[["order_id", "customer_id", "name", "amount", "placed_at"]]
        .sort_values("order_id")
        .reset_index(drop=True)  # the service expects a default RangeIndex
    )

    # Return value must be a sequence of pandas.DataFrame
    return output,

"""Tabular inputs: DataFrames of named, typed columns, recorded, checked and rebuilt.

A tabular model's inputs travel as one 1-D array per column (``types.Table``), so golden
replay, batching and every request format handle them like any named inputs; the runtime
rebuilds the DataFrame the model was trained on (``to_frame``) from the columns and the
``TableSpec`` recorded from the golden DataFrame (``table_of``), with the training column
names, order and exact pandas dtypes. pandas (and pyarrow, for parquet) are imported only
here and only when a tabular model is used: ``pip install 'modelseal[tabular]'``.
"""

from modelseal.tabular.conform import conform_columns, table_inputs
from modelseal.tabular.frames import frame_columns, is_dataframe, to_frame
from modelseal.tabular.record import table_of

__all__ = [
    "conform_columns",
    "frame_columns",
    "is_dataframe",
    "table_inputs",
    "table_of",
    "to_frame",
]

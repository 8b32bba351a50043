"""Run by the MLServer client environment's Python: a DataFrame as MLServer's pandas codec
encodes it into an Open Inference Protocol v2 request, printed as JSON.

argv[1]: a parquet file of the DataFrame; argv[2]: how many rows to send.
"""

from __future__ import annotations

import sys

import pandas as pd  # type: ignore[import-untyped, unused-ignore]
from mlserver.codecs import PandasCodec  # type: ignore[import-not-found, unused-ignore]


def main(path: str, rows: int) -> None:
    frame = pd.read_parquet(path).iloc[:rows]
    # MLServer 1.7.1's codec fails on pandas 3 str columns (KeyError 'O', its issue #1313):
    # its clients send text columns as object columns.
    text = [name for name in frame.columns if pd.api.types.is_string_dtype(frame[name])]
    frame = frame.astype(dict.fromkeys(text, object))
    request = PandasCodec.encode_request(frame)
    print(request.model_dump_json(exclude_none=True))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))

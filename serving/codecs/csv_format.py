"""CSV in and out (``text/csv``): a header row, then one line per row of ``input1``.

Every cell arrives as text and is converted by the schema's types; an empty cell is null, and
so are the missing cells of a short row (as pandas.read_csv reads them); a long row is refused.
Bodies are split by pandas' C parser; anything it finds irregular is read again with the csv
module, whose slower path names the offending row. A CSV answer carries the table only (ask
for JSON to get the log, plots and timing).
"""
from __future__ import annotations

import csv
import io

import pandas as pd

from publisher.coercion import check_row_count, columns_to_table, named_columns_to_table
from publisher.schema import ServiceSchema

from ..errors import bad_argument
from .base import DecodedRequest, convert, parameters


class CsvCodec:
    name = "csv"
    media_type = "text/csv"
    reads = ("text/csv", "application/csv")

    def decode(self, body: bytes, schema: ServiceSchema, max_rows: int) -> DecodedRequest:
        ports = list(schema.inputs)
        if len(ports) != 1:
            raise bad_argument("InputParseError", f"CSV carries one input, but this service takes {len(ports)}; "
                                                  "send JSON.")
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise bad_argument("InputParseError",
                               f"The CSV body is not UTF-8 ({exc.reason} at byte {exc.start}).") from None
        port, spec = ports[0], schema.inputs[ports[0]]
        fast = _split_fast(text)
        if fast is not None:
            columns, n_rows = fast
            convert(check_row_count, port, spec, n_rows, max_rows)
            table = convert(named_columns_to_table, port, spec, columns, n_rows)
        else:
            header, rows = _split_slow(text, port)
            table = convert(columns_to_table, port, spec, header, rows, max_rows)
        return DecodedRequest([table], parameters({}, schema))

    def encode(self, result, details: bool) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(result.output.names)
        columns = [c.to_pylist() for c in result.output.columns]
        writer.writerows(["" if v is None else v for v in row] for row in zip(*columns))
        return out.getvalue().encode()


def _split_fast(text: str):
    """{name: values} and the row count with pandas' C parser, or None to take the careful path."""
    first = text.split("\n", 1)[0]
    try:
        header = next(csv.reader([first]), None)
    except csv.Error:
        return None
    if not header or len(set(header)) != len(header) or first.count('"') % 2:
        return None  # no header, duplicate names, or a quoted header cell spanning lines
    try:
        # keep_default_na=False: cells stay text ("" is null, below); a short row's missing cells
        # read as empty too, as pandas.read_csv does
        frame = pd.read_csv(io.StringIO(text), dtype=object, keep_default_na=False, skip_blank_lines=True,
                            engine="c")
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    if frame.shape[1] != len(header) or not isinstance(frame.index, pd.RangeIndex) or frame.isna().to_numpy().any():
        return None  # long rows: the csv path names them
    columns = {}
    for name, series in zip(header, (frame.iloc[:, j] for j in range(frame.shape[1]))):
        values = series.to_numpy(dtype=object, copy=True)
        values[values == ""] = None
        columns[name] = values.tolist()
    return columns, len(frame)


def _split_slow(text: str, port: str):
    try:
        lines = [line for line in csv.reader(io.StringIO(text, newline="")) if line]
    except csv.Error as exc:
        raise bad_argument("InputParseError", f"The CSV body is malformed: {exc}.") from None
    if not lines:
        raise bad_argument("InputParseError", "The CSV body has no header row.")
    header, rows = lines[0], lines[1:]
    width = len(header)
    for i, row in enumerate(rows):
        if len(row) > width:
            raise bad_argument("InputParseError", f"CSV row {i} has {len(row)} cells; the header has "
                                                  f"{width}.", f"{port}[{i}]")
    # a short row's missing cells are empty, as in the fast path
    return header, [[None if v == "" else v for v in row] + [None] * (width - len(row)) for row in rows]


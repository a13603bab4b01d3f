"""CSV in and out (``text/csv``): a header row, then one line per row of ``input1``.

Every cell arrives as text and is converted by the schema's types; an empty cell is null.
A CSV answer carries the table only (ask for JSON to get the log, plots and timing).
"""
from __future__ import annotations

import csv
import io

from publisher.coercion import columns_to_table
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
        try:
            lines = [line for line in csv.reader(io.StringIO(text, newline="")) if line]
        except csv.Error as exc:
            raise bad_argument("InputParseError", f"The CSV body is malformed: {exc}.") from None
        if not lines:
            raise bad_argument("InputParseError", "The CSV body has no header row.")
        header, rows = lines[0], lines[1:]
        for i, row in enumerate(rows):
            if len(row) != len(header):
                raise bad_argument("InputParseError", f"CSV row {i} has {len(row)} cells; the header has "
                                                      f"{len(header)}.", f"{ports[0]}[{i}]")
        data = [[None if v == "" else v for v in row] for row in rows]
        table = convert(columns_to_table, ports[0], schema.inputs[ports[0]], header, data, max_rows)
        return DecodedRequest([table], parameters({}, schema))

    def encode(self, result, details: bool) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(result.output.names)
        columns = [c.to_pylist() for c in result.output.columns]
        writer.writerows(["" if v is None else v for v in row] for row in zip(*columns))
        return out.getvalue().encode()

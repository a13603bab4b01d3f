"""CSV in and out (``text/csv``): a header row, then one line per row of ``input1``.

Every cell arrives as text and is converted by the schema's types; an empty cell is null.
"""
from __future__ import annotations

import csv
import io

from publisher.coercion import InputError, rows_to_table
from publisher.schema import ServiceSchema

from ..errors import bad_argument, from_input_error
from .base import DecodedRequest


class CsvCodec:
    name = "csv"
    media_types = ("text/csv", "application/csv")

    def decode(self, body: bytes, schema: ServiceSchema, max_rows: int) -> DecodedRequest:
        ports = list(schema.inputs)
        if len(ports) != 1:
            raise bad_argument("InputParseError", f"CSV carries one input, but this service takes {len(ports)}; "
                                                  "send JSON.")
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise bad_argument("InputParseError", f"The CSV body is not UTF-8 ({exc.reason} at byte {exc.start}).") from None
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader, None)
            if not header:
                raise bad_argument("InputParseError", "The CSV body has no header row.")
            rows = []
            for line in reader:
                if not line:
                    continue
                if len(line) != len(header):
                    raise bad_argument("InputParseError", f"CSV row {len(rows)} has {len(line)} cells; the header "
                                                          f"has {len(header)}.", f"{ports[0]}[{len(rows)}]")
                rows.append({k: (v if v != "" else None) for k, v in zip(header, line)})
        except csv.Error as exc:
            raise bad_argument("InputParseError", f"The CSV body is malformed: {exc}.") from None
        try:
            table = rows_to_table(ports[0], schema.inputs[ports[0]], rows, max_rows)
        except InputError as exc:
            raise from_input_error(exc) from None
        return DecodedRequest([table], {}, "csv")

    def encode(self, result, details: bool, shape: str) -> tuple[bytes, str]:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(result.output.names)
        columns = [c.to_pylist() for c in result.output.columns]
        writer.writerows(["" if v is None else v for v in row] for row in zip(*columns))
        return out.getvalue().encode(), "text/csv; charset=utf-8"

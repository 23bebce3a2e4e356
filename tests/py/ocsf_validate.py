"""Validates NDJSON OCSF Detection Findings against the published OCSF 1.5.0 schema.

Usage: python ocsf_validate.py FILE.ndjson

The models come from the `pydantic-ocsf` package (PyPI), which generates them from the OCSF
project's exported schema for each version. Its models accept unknown attributes, so this
script also walks every validated object and fails on any attribute the schema does not
define (a misspelt field would otherwise pass). Prints one line per record and exits 1 on the
first problem.
"""

import json
import sys

from pydantic import BaseModel, ValidationError

from ocsf.v1_5_0.events import DetectionFinding

OCSF_VERSION = "1.5.0"


def unknown_attributes(model, path):
    """Paths of attributes the schema does not define, anywhere below `model`."""
    found = []
    if isinstance(model, BaseModel):
        for key in (model.model_extra or {}):
            found.append(f"{path}.{key}")
        for name in type(model).model_fields:
            # `unmapped` is OCSF's place for a producer's own fields: anything goes there.
            if name == "unmapped":
                continue
            found.extend(unknown_attributes(getattr(model, name), f"{path}.{name}"))
    elif isinstance(model, list):
        for i, item in enumerate(model):
            found.extend(unknown_attributes(item, f"{path}[{i}]"))
    return found


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    path = sys.argv[1]
    count = 0
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                print(f"{path}:{n}: empty line", file=sys.stderr)
                return 1
            record = json.loads(line)
            try:
                finding = DetectionFinding.model_validate(record)
            except ValidationError as e:
                print(f"{path}:{n}: not a valid OCSF {OCSF_VERSION} Detection Finding: {e}", file=sys.stderr)
                return 1
            extra = unknown_attributes(finding, "$")
            if extra:
                print(f"{path}:{n}: attributes OCSF {OCSF_VERSION} does not define: {extra}", file=sys.stderr)
                return 1
            if record.get("class_uid") != 2004 or record["metadata"]["version"] != OCSF_VERSION:
                print(f"{path}:{n}: class_uid or metadata.version is wrong", file=sys.stderr)
                return 1
            count += 1
            print(f"ok {n}: {record['finding_info']['title']}")
    print(f"{count} records valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Validates milestone events against the JSON Schemas in schemas/events with Python's jsonschema.

    python validate_events.py SCHEMA_FOLDER EVENTS.jsonl

Each line of EVENTS.jsonl is one event as published (a CloudEvents structured event). Its `dataschema` must be the
`$id` of one of the schemas, and its `data` must validate against that schema (draft 2020-12). Prints
"N events valid against M schemas (K types)" and exits 0, or prints each problem and exits 1.
"""
import json
import os
import sys

import jsonschema


def main():
    folder, events_file = sys.argv[1], sys.argv[2]
    schemas = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json"):
            with open(os.path.join(folder, name)) as file:
                schema = json.load(file)
            jsonschema.Draft202012Validator.check_schema(schema)
            schemas[schema["$id"]] = jsonschema.Draft202012Validator(schema)
    problems = []
    count = 0
    types = set()
    with open(events_file) as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            event = json.loads(line)
            count += 1
            types.add(event.get("type"))
            validator = schemas.get(event.get("dataschema"))
            if validator is None:
                problems.append(f"line {number}: {event.get('type')}: no schema {event.get('dataschema')!r}")
                continue
            for error in validator.iter_errors(event.get("data")):
                path = "/".join(str(part) for part in error.absolute_path)
                problems.append(f"line {number}: {event.get('type')} data/{path}: {error.message}")
    if count == 0:
        problems.append("no events to check")
    for problem in problems[:50]:
        print(problem)
    if problems:
        sys.exit(1)
    print(f"{count} events valid against {len(schemas)} schemas ({len(types)} types)")


if __name__ == "__main__":
    main()

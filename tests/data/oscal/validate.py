"""Validates OSCAL JSON documents against a JSON schema (draft-07), as the
integration tests do: python validate.py SCHEMA DOCUMENT...

Prints `valid: DOCUMENT` or the errors of each one; exit 0 when every
document is valid, 1 otherwise. The OSCAL schemas' patterns use Unicode
property classes (\\p{L}, \\p{N}) that Python's `re` does not know, so
`pattern` is checked with the `regex` module; formats (date-time, uri,
uri-reference) are checked too.
"""

import json
import sys

import jsonschema
import regex


def pattern(validator, patrn, instance, schema):
    if validator.is_type(instance, "string") and not regex.search(patrn, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {patrn!r}")


def main(argv):
    with open(argv[1], encoding="utf-8") as handle:
        schema = json.load(handle)
    base = jsonschema.Draft7Validator
    checker = base.FORMAT_CHECKER
    for needed in ("date-time", "uri", "uri-reference"):
        if needed not in checker.checkers:
            print(f"format {needed} cannot be checked: a jsonschema extra is missing")
            return 2
    validator = jsonschema.validators.extend(base, {"pattern": pattern})(
        schema, format_checker=checker
    )
    failed = False
    for path in argv[2:]:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
        if errors:
            failed = True
            for error in errors[:20]:
                where = "/".join(str(part) for part in error.absolute_path)
                print(f"invalid: {path}: /{where}: {error.message[:300]}")
        else:
            print(f"valid: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

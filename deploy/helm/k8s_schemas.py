"""Kubernetes JSON schemas for kubeconform, made from the OpenAPI document Kubernetes itself ships.

The usual schemas (github.com/yannh/kubernetes-json-schema) are not on the Go module proxy; Kubernetes' own
``api/openapi-spec/swagger.json`` is (the module k8s.io/kubernetes carries it). This writes, from it, one schema per
kind in kubeconform's layout (``<kind>-<group>-<version>.json``, lower case; core kinds ``<kind>-<version>.json``),
"standalone" (every ``$ref`` inlined) and "strict" (no property the API does not know), as
openapi2jsonschema --kubernetes --stand-alone --strict does:

    python3 deploy/helm/k8s_schemas.py SWAGGER_JSON OUT_DIR

Then: kubeconform -strict -schema-location 'OUT_DIR/{{ .ResourceKind }}{{ .KindSuffix }}.json'. Standard library only.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

# Types the API accepts in two shapes (YAML `port: http` or `port: 8000`; `cpu: 1` or `cpu: 250m`).
SPECIAL = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"oneOf": [{"type": "string"}, {"type": "number"}]},
}


def _expand(node: object, definitions: dict, stack: tuple[str, ...]) -> object:
    """``node`` with every ``#/definitions/...`` reference replaced by its (expanded) definition; a definition that
    refers to itself (a CRD's JSONSchemaProps) is left open ({}) at the second level."""
    if isinstance(node, list):
        return [_expand(item, definitions, stack) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/definitions/"):
        name = ref.removeprefix("#/definitions/")
        if name in SPECIAL:
            return copy.deepcopy(SPECIAL[name])
        if name in stack:
            return {}
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return {**_expand(definitions[name], definitions, (*stack, name)), **_expand(rest, definitions, stack)}
    if node.get("format") == "int-or-string":
        return copy.deepcopy(SPECIAL["io.k8s.apimachinery.pkg.util.intstr.IntOrString"])
    out = {key: _expand(value, definitions, stack) for key, value in node.items()}
    return out


def _strict(node: object) -> object:
    """Objects with declared properties accept no other property; optional properties may be null (YAML `key:`)."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: (value if key in ("enum", "required") else _strict(value)) for key, value in node.items()}
    properties = node.get("properties")
    if isinstance(properties, dict):
        node.setdefault("additionalProperties", False)
        required = set(node.get("required", []))
        for name, prop in properties.items():
            if name not in required and isinstance(prop.get("type"), str):
                prop["type"] = [prop["type"], "null"]
    return node


def _filename(group: str, version: str, kind: str) -> str:
    group = group.split(".")[0].lower()
    return f"{kind.lower()}-{group}-{version.lower()}.json" if group else f"{kind.lower()}-{version.lower()}.json"


def write_schemas(swagger_path: Path, out_dir: Path) -> int:
    definitions = json.loads(swagger_path.read_text())["definitions"]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for name, definition in definitions.items():
        for gvk in definition.get("x-kubernetes-group-version-kind", []):
            # The group's list types and the meta kinds (DeleteOptions, WatchEvent) in every group are not objects
            # a manifest declares: keep only the definition the kind's own group owns.
            if gvk["kind"] in ("DeleteOptions", "WatchEvent", "Status", "APIGroup", "APIVersions"):
                continue
            schema = _strict(_expand(definition, definitions, (name,)))
            schema["$schema"] = "http://json-schema.org/schema#"
            (out_dir / _filename(gvk["group"], gvk["version"], gvk["kind"])).write_text(json.dumps(schema))
            written += 1
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: k8s_schemas.py SWAGGER_JSON OUT_DIR", file=sys.stderr)
        return 2
    written = write_schemas(Path(argv[1]), Path(argv[2]))
    if not written:
        print(f"k8s_schemas: no kind found in {argv[1]}", file=sys.stderr)
        return 1
    print(f"k8s_schemas: wrote {written} schemas into {argv[2]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

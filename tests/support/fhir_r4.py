"""A small structural checker for the FHIR R4 (4.0.1) resources iopbot exports: Bundle, Patient,
QuestionnaireResponse, Observation. Written from the R4 specification (hl7.org/fhir/R4: the
resource definitions, their invariants, the JSON format and the primitive types' regular
expressions); it checks structure, cardinality, value sets and invariants, not terminology.

`problems(bundle)` returns every problem as "path: what is wrong"; an empty list means valid.
Beyond base R4 (stricter, because an importer needs them), it requires a QuestionnaireResponse to
name its `questionnaire`, every answer to carry exactly one value, linkIds to be unique on each
level, an Observation's code to have a coding with system and code, a subject, and an effective
time; and every urn:uuid reference to resolve inside the Bundle.
"""

from __future__ import annotations

import re
from typing import Any

# Primitive types (R4 datatypes.html): the regular expressions of the specification.
_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_ZONE = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
DATE_TIME = re.compile(rf"^{_YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T{_TIME}{_ZONE})?)?)?$")
INSTANT = re.compile(rf"^{_YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T{_TIME}{_ZONE}$")
DATE = re.compile(rf"^{_YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?$")
TIME = re.compile(rf"^{_TIME}$")
CODE = re.compile(r"^[^\s]+( [^\s]+)*$")
ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
URI = re.compile(r"^\S+$")
UUID_URN = re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
INT_MIN, INT_MAX = -2_147_483_648, 2_147_483_647

# Value sets (required bindings).
BUNDLE_TYPES = {"document", "message", "transaction", "transaction-response", "batch", "batch-response",
                "history", "searchset", "collection"}
QR_STATUS = {"in-progress", "completed", "amended", "entered-in-error", "stopped"}
OBSERVATION_STATUS = {"registered", "preliminary", "final", "amended", "corrected", "cancelled",
                      "entered-in-error", "unknown"}
IDENTIFIER_USE = {"usual", "official", "temp", "secondary", "old"}
# The choice types value[x] may take.
QR_ANSWER_VALUES = {"valueBoolean", "valueDecimal", "valueInteger", "valueDate", "valueDateTime", "valueTime",
                    "valueString", "valueUri", "valueAttachment", "valueCoding", "valueQuantity", "valueReference"}
OBSERVATION_VALUES = {"valueQuantity", "valueCodeableConcept", "valueString", "valueBoolean", "valueInteger",
                      "valueRange", "valueRatio", "valueSampledData", "valueTime", "valueDateTime", "valuePeriod"}
OBSERVATION_EFFECTIVE = {"effectiveDateTime", "effectivePeriod", "effectiveTiming", "effectiveInstant"}

_RESOURCE_KEYS = {"resourceType", "id", "meta", "implicitRules", "language"}
_DOMAIN_KEYS = _RESOURCE_KEYS | {"text", "contained", "extension", "modifierExtension"}
KEYS = {
    "Bundle": _RESOURCE_KEYS | {"identifier", "type", "timestamp", "total", "link", "entry", "signature"},
    "Patient": _DOMAIN_KEYS | {"identifier", "active", "name", "telecom", "gender", "birthDate", "deceasedBoolean",
                               "deceasedDateTime", "address", "maritalStatus", "multipleBirthBoolean",
                               "multipleBirthInteger", "photo", "contact", "communication", "generalPractitioner",
                               "managingOrganization", "link"},
    "QuestionnaireResponse": _DOMAIN_KEYS | {"identifier", "basedOn", "partOf", "questionnaire", "status", "subject",
                                             "encounter", "authored", "author", "source", "item"},
    "Observation": _DOMAIN_KEYS | {"identifier", "basedOn", "partOf", "status", "category", "code", "subject",
                                   "focus", "encounter", "issued", "performer", "dataAbsentReason",
                                   "interpretation", "note", "bodySite", "method", "specimen", "device",
                                   "referenceRange", "hasMember", "derivedFrom", "component"}
                   | OBSERVATION_VALUES | OBSERVATION_EFFECTIVE,
}
ENTRY_KEYS = {"id", "extension", "modifierExtension", "link", "fullUrl", "resource", "search", "request", "response"}
QR_ITEM_KEYS = {"id", "extension", "modifierExtension", "linkId", "definition", "text", "answer", "item"}
QR_ANSWER_KEYS = {"id", "extension", "modifierExtension", "item"} | QR_ANSWER_VALUES


class _Check:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.references: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    # --- the JSON format (R4 json.html) ---------------------------------------------------------

    def json_rules(self, value: Any, path: str) -> None:
        """No null, no empty string, array or object anywhere (absent elements are left out)."""
        if value is None:
            self.add(path, "null is not allowed in FHIR JSON; leave the element out")
        elif isinstance(value, str):
            if not value.strip():
                self.add(path, "empty or blank string")
        elif isinstance(value, list):
            if not value:
                self.add(path, "empty array; leave the element out")
            for n, v in enumerate(value):
                if isinstance(v, list):
                    self.add(f"{path}[{n}]", "arrays of arrays are not FHIR")
                self.json_rules(v, f"{path}[{n}]")
        elif isinstance(value, dict):
            if not value:
                self.add(path, "empty object; leave the element out")
            for k, v in value.items():
                self.json_rules(v, f"{path}.{k}")

    def keys(self, obj: dict[str, Any], allowed: set[str], path: str) -> None:
        for key in sorted(set(obj) - allowed):
            self.add(f"{path}.{key}", "not an element of this type in R4")

    def array(self, obj: dict[str, Any], key: str, path: str) -> list[Any]:
        value = obj.get(key, [])
        if not isinstance(value, list):
            self.add(f"{path}.{key}", "must be an array (cardinality 0..*)")
            return []
        return value

    # --- data types ------------------------------------------------------------------------------

    def string(self, value: Any, path: str) -> bool:
        if not isinstance(value, str):
            self.add(path, f"must be a string, not {type(value).__name__}")
            return False
        return True

    def pattern(self, value: Any, regex: re.Pattern[str], what: str, path: str) -> None:
        if self.string(value, path) and not regex.match(value):
            self.add(path, f"{value!r} is not a valid {what}")

    def integer(self, value: Any, path: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not INT_MIN <= value <= INT_MAX:
            self.add(path, f"must be a 32-bit integer, not {value!r}")

    def decimal(self, value: Any, path: str) -> None:
        if not isinstance(value, int | float) or isinstance(value, bool):
            self.add(path, f"must be a JSON number, not {value!r}")

    def extensions(self, obj: dict[str, Any], path: str) -> None:
        for n, ext in enumerate(self.array(obj, "extension", path)):
            where = f"{path}.extension[{n}]"
            if not isinstance(ext, dict) or "url" not in ext:
                self.add(where, "an extension needs a url")
                continue
            self.pattern(ext["url"], URI, "uri", f"{where}.url")
            values = [k for k in ext if k.startswith("value")]
            nested = "extension" in ext
            if len(values) + int(nested) != 1:  # ext-1: extension or value[x], not both
                self.add(where, "an extension has either one value[x] or nested extensions (ext-1)")

    def coding(self, coding: Any, path: str, *, need_code: bool = False) -> None:
        if not isinstance(coding, dict):
            self.add(path, "a Coding must be an object")
            return
        self.keys(coding, {"id", "extension", "system", "version", "code", "display", "userSelected"}, path)
        self.extensions(coding, path)
        if "system" in coding:
            self.pattern(coding["system"], URI, "uri", f"{path}.system")
        if "code" in coding:
            self.pattern(coding["code"], CODE, "code", f"{path}.code")
        if "display" in coding:
            self.string(coding["display"], f"{path}.display")
        if need_code and not ("system" in coding and "code" in coding):
            self.add(path, "a coding needs a system and a code")

    def codeable_concept(self, concept: Any, path: str, *, need_coding: bool = False) -> None:
        if not isinstance(concept, dict):
            self.add(path, "a CodeableConcept must be an object")
            return
        self.keys(concept, {"id", "extension", "coding", "text"}, path)
        codings = self.array(concept, "coding", path)
        for n, coding in enumerate(codings):
            self.coding(coding, f"{path}.coding[{n}]", need_code=need_coding)
        if need_coding and not codings:
            self.add(path, "needs at least one coding with a system and a code")
        if "text" in concept:
            self.string(concept["text"], f"{path}.text")

    def quantity(self, quantity: Any, path: str) -> None:
        if not isinstance(quantity, dict):
            self.add(path, "a Quantity must be an object")
            return
        self.keys(quantity, {"id", "extension", "value", "comparator", "unit", "system", "code"}, path)
        if "value" in quantity:
            self.decimal(quantity["value"], f"{path}.value")
        if "code" in quantity and "system" not in quantity:  # qty-3
            self.add(path, "a unit code needs its system (qty-3)")
        for key in ("unit",):
            if key in quantity:
                self.string(quantity[key], f"{path}.{key}")
        if "system" in quantity:
            self.pattern(quantity["system"], URI, "uri", f"{path}.system")

    def reference(self, ref: Any, path: str, *, required: bool = False) -> None:
        if ref is None:
            if required:
                self.add(path, "required (1..1)")
            return
        if not isinstance(ref, dict):
            self.add(path, "a Reference must be an object")
            return
        self.keys(ref, {"id", "extension", "reference", "type", "identifier", "display"}, path)
        if not any(k in ref for k in ("reference", "identifier", "display", "extension")):  # ref-1 and ele-1
            self.add(path, "a Reference needs a reference, an identifier or a display")
        if "reference" in ref and self.string(ref["reference"], f"{path}.reference"):
            self.references.append((path, ref["reference"]))

    def identifier(self, ident: Any, path: str) -> None:
        if not isinstance(ident, dict):
            self.add(path, "an Identifier must be an object")
            return
        self.keys(ident, {"id", "extension", "use", "type", "system", "value", "period", "assigner"}, path)
        if "use" in ident and ident["use"] not in IDENTIFIER_USE:
            self.add(f"{path}.use", f"{ident['use']!r} is not in the identifier-use value set")
        if "system" in ident:
            self.pattern(ident["system"], URI, "uri", f"{path}.system")
        if "value" in ident:
            self.string(ident["value"], f"{path}.value")

    def value_x(self, obj: dict[str, Any], allowed: set[str], path: str) -> list[str]:
        """The value[x] elements present; any not among `allowed` is a problem. Checks each type."""
        present = [k for k in obj if k.startswith("value") and k[5:6].isupper()]
        for key in present:
            where = f"{path}.{key}"
            value = obj[key]
            if key not in allowed:
                self.add(where, f"value[x] cannot be {key[5:]} here; allowed: {', '.join(sorted(allowed))}")
            elif key == "valueInteger":
                self.integer(value, where)
            elif key == "valueDecimal":
                self.decimal(value, where)
            elif key == "valueBoolean":
                if not isinstance(value, bool):
                    self.add(where, "must be true or false")
            elif key in ("valueString",):
                self.string(value, where)
            elif key == "valueUri":
                self.pattern(value, URI, "uri", where)
            elif key == "valueDate":
                self.pattern(value, DATE, "date", where)
            elif key == "valueDateTime":
                self.pattern(value, DATE_TIME, "dateTime", where)
            elif key == "valueTime":
                self.pattern(value, TIME, "time", where)
            elif key == "valueCoding":
                self.coding(value, where, need_code=True)
            elif key == "valueCodeableConcept":
                self.codeable_concept(value, where)
            elif key == "valueQuantity":
                self.quantity(value, where)
            elif key == "valueReference":
                self.reference(value, where, required=True)
        return present

    # --- resources ---------------------------------------------------------------------------------

    def resource(self, resource: Any, path: str) -> None:
        if not isinstance(resource, dict):
            self.add(path, "a resource must be an object")
            return
        kind = resource.get("resourceType")
        if kind not in KEYS or kind == "Bundle":
            self.add(f"{path}.resourceType", f"{kind!r} is not a resource this checker knows (Patient, "
                     "QuestionnaireResponse, Observation)")
            return
        self.keys(resource, KEYS[kind], path)
        if "id" in resource:
            self.pattern(resource["id"], ID, "id", f"{path}.id")
        if "language" in resource:
            self.pattern(resource["language"], CODE, "code", f"{path}.language")
        self.extensions(resource, path)
        getattr(self, f"_{kind}")(resource, path)

    def _Patient(self, patient: dict[str, Any], path: str) -> None:
        for n, ident in enumerate(self.array(patient, "identifier", path)):
            self.identifier(ident, f"{path}.identifier[{n}]")
        if "active" in patient and not isinstance(patient["active"], bool):
            self.add(f"{path}.active", "must be true or false")

    def _QuestionnaireResponse(self, qr: dict[str, Any], path: str) -> None:
        if "identifier" in qr:  # 0..1 in R4: an object, not an array
            if isinstance(qr["identifier"], list):
                self.add(f"{path}.identifier", "is 0..1 in R4: one Identifier, not an array")
            else:
                self.identifier(qr["identifier"], f"{path}.identifier")
        if "status" not in qr:
            self.add(f"{path}.status", "required (1..1)")
        elif qr["status"] not in QR_STATUS:
            self.add(f"{path}.status", f"{qr['status']!r} is not in the questionnaire-answers-status value set")
        if "questionnaire" not in qr:
            self.add(f"{path}.questionnaire", "required by this checker: the canonical of the questionnaire answered")
        else:
            canonical = qr["questionnaire"]
            if self.string(canonical, f"{path}.questionnaire") and (
                    not URI.match(canonical) or canonical.count("|") > 1 or canonical.startswith("|")):
                self.add(f"{path}.questionnaire", f"{canonical!r} is not a canonical (uri, optionally |version)")
        self.reference(qr.get("subject"), f"{path}.subject")
        if "authored" in qr:
            self.pattern(qr["authored"], DATE_TIME, "dateTime", f"{path}.authored")
        self.items(self.array(qr, "item", path), f"{path}.item")

    def items(self, items: list[Any], path: str) -> None:
        seen: set[str] = set()
        for n, item in enumerate(items):
            where = f"{path}[{n}]"
            if not isinstance(item, dict):
                self.add(where, "an item must be an object")
                continue
            self.keys(item, QR_ITEM_KEYS, where)
            link = item.get("linkId")
            if link is None:
                self.add(f"{where}.linkId", "required (1..1)")
            elif self.string(link, f"{where}.linkId"):
                if link in seen:
                    self.add(f"{where}.linkId", f"{link!r} appears twice on this level")
                seen.add(link)
            if "text" in item:
                self.string(item["text"], f"{where}.text")
            answers = self.array(item, "answer", where)
            if answers and "item" in item:  # qrs-1
                self.add(where, "an item has answers or nested items, not both (qrs-1)")
            for m, answer in enumerate(answers):
                at = f"{where}.answer[{m}]"
                if not isinstance(answer, dict):
                    self.add(at, "an answer must be an object")
                    continue
                self.keys(answer, QR_ANSWER_KEYS, at)
                present = self.value_x(answer, QR_ANSWER_VALUES, at)
                if len(present) != 1:
                    self.add(at, f"needs exactly one value[x], found {len(present)}")
                self.items(self.array(answer, "item", at), f"{at}.item")
            self.items(self.array(item, "item", where), f"{where}.item")

    def _Observation(self, obs: dict[str, Any], path: str) -> None:
        for n, ident in enumerate(self.array(obs, "identifier", path)):
            self.identifier(ident, f"{path}.identifier[{n}]")
        if "status" not in obs:
            self.add(f"{path}.status", "required (1..1)")
        elif obs["status"] not in OBSERVATION_STATUS:
            self.add(f"{path}.status", f"{obs['status']!r} is not in the observation-status value set")
        for n, category in enumerate(self.array(obs, "category", path)):
            self.codeable_concept(category, f"{path}.category[{n}]")
        if "code" not in obs:
            self.add(f"{path}.code", "required (1..1)")
        else:
            self.codeable_concept(obs["code"], f"{path}.code", need_coding=True)
        self.reference(obs.get("subject"), f"{path}.subject", required=True)
        effective = [k for k in obs if k.startswith("effective")]
        if effective != ["effectiveDateTime"]:
            self.add(path, f"needs one effectiveDateTime (this checker), found {effective}")
        else:
            self.pattern(obs["effectiveDateTime"], DATE_TIME, "dateTime", f"{path}.effectiveDateTime")
        present = self.value_x(obs, OBSERVATION_VALUES, path)
        if len(present) > 1:
            self.add(path, f"value[x] is 0..1: found {present}")
        if present and "dataAbsentReason" in obs:  # obs-6
            self.add(path, "dataAbsentReason only when there is no value (obs-6)")
        if not present and "dataAbsentReason" not in obs and "component" not in obs and "hasMember" not in obs:
            self.add(path, "has neither a value nor a dataAbsentReason")
        for n, ref in enumerate(self.array(obs, "derivedFrom", path)):
            self.reference(ref, f"{path}.derivedFrom[{n}]", required=True)

    # --- the Bundle ----------------------------------------------------------------------------------

    def bundle(self, bundle: Any) -> None:
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            self.add("Bundle", "resourceType must be \"Bundle\"")
            return
        self.json_rules(bundle, "Bundle")
        self.keys(bundle, KEYS["Bundle"], "Bundle")
        kind = bundle.get("type")
        if kind not in BUNDLE_TYPES:
            self.add("Bundle.type", f"required, one of the bundle-type value set, not {kind!r}")
        if "total" in bundle and kind not in ("searchset", "history"):  # bdl-1
            self.add("Bundle.total", "only in a searchset or history (bdl-1)")
        if "timestamp" in bundle:
            self.pattern(bundle["timestamp"], INSTANT, "instant", "Bundle.timestamp")
        if kind == "document" and "timestamp" not in bundle:  # bdl-10
            self.add("Bundle.timestamp", "a document needs one (bdl-10)")
        full_urls: set[str] = set()
        for n, entry in enumerate(self.array(bundle, "entry", "Bundle")):
            where = f"Bundle.entry[{n}]"
            if not isinstance(entry, dict):
                self.add(where, "an entry must be an object")
                continue
            self.keys(entry, ENTRY_KEYS, where)
            if "search" in entry and kind != "searchset":  # bdl-2
                self.add(f"{where}.search", "only in a searchset (bdl-2)")
            if "request" in entry and kind not in ("batch", "transaction", "history"):  # bdl-3
                self.add(f"{where}.request", "only in a batch, transaction or history (bdl-3)")
            if "response" in entry and kind not in ("batch-response", "transaction-response", "history"):  # bdl-4
                self.add(f"{where}.response", "only in a batch-response, transaction-response or history (bdl-4)")
            if "resource" not in entry and "request" not in entry and "response" not in entry:  # bdl-5
                self.add(where, "needs a resource (bdl-5)")
            url = entry.get("fullUrl")
            if url is None:
                self.add(f"{where}.fullUrl", "required by this checker: every entry is addressable")
            elif self.string(url, f"{where}.fullUrl"):
                if url.startswith("urn:uuid:") and not UUID_URN.match(url):
                    self.add(f"{where}.fullUrl", f"{url!r} is not a urn:uuid (lower-case hex, 8-4-4-4-12)")
                elif not URI.match(url) or "/_history/" in url:  # bdl-8: not a version-specific reference
                    self.add(f"{where}.fullUrl", f"{url!r} is not a version-independent uri (bdl-8)")
                if url in full_urls:  # bdl-7
                    self.add(f"{where}.fullUrl", f"{url!r} is used twice in the Bundle (bdl-7)")
                full_urls.add(url)
            if "resource" in entry:
                self.resource(entry["resource"], f"{where}.resource")
        for path, target in self.references:
            if target.startswith("urn:uuid:") and target not in full_urls:
                self.add(path, f"{target} does not resolve to an entry of this Bundle")


def problems(bundle: Any) -> list[str]:
    """Every structural problem of a FHIR R4 Bundle (as JSON data); [] when it is valid."""
    check = _Check()
    check.bundle(bundle)
    return check.problems


def resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The Bundle's resources of one resourceType, in order."""
    return [e["resource"] for e in bundle.get("entry", []) if e.get("resource", {}).get("resourceType") == kind]

"""Prints a DistributionConfig with every member botocore's CloudFront model lists populated.

keyfront's no-field-lost test (tests/it/cloudfront/sdk_port.rs) stores it in the emulator and has
keyfront's SDK adapter change the trust of its behaviors: everything else must come back as it
was, or the write must be refused naming what the SDK would drop.

Values are chosen to be valid together: lists hold one item and a matching Quantity, IDs that
refer to an origin name the one origin, enums take their first value, and TrustedKeyGroups and
TrustedSigners are present but empty (keyfront's to change).
"""

import sys
from xml.sax.saxutils import escape

import botocore.session

ORIGIN_ID = "origin-1"
REFERENCES_TO_ORIGIN = {"Id", "TargetOriginId", "OriginId"}
EMPTY = {"TrustedKeyGroups", "TrustedSigners"}


def value(shape, member_name):
    kind = shape.type_name
    if kind == "string":
        if shape.enum:
            return shape.enum[0]
        if member_name in REFERENCES_TO_ORIGIN:
            return ORIGIN_ID
        if member_name == "DomainName":
            return "bucket.s3.amazonaws.com"
        if member_name == "CachePolicyId":
            return "658327ea-f89d-4fab-a63d-7e88639e58f6"
        if member_name == "PathPattern":
            return "/private/*"
        return f"{member_name.lower()}-value"
    if kind == "integer" or kind == "long":
        return "1"
    if kind == "float" or kind == "double":
        return "1.5"
    if kind == "boolean":
        return "true"
    if kind == "timestamp":
        return "2026-01-01T00:00:00Z"
    raise ValueError(f"unhandled shape type {kind} for {member_name}")


def element(name, shape, depth=0):
    """The XML for one member: structures by member order, lists with one item."""
    if depth > 20:
        raise ValueError(f"{name}: model nests deeper than expected")
    if shape.type_name == "structure":
        if name in EMPTY:
            return f"<{name}><Enabled>false</Enabled><Quantity>0</Quantity></{name}>"
        members = shape.members
        has_items = "Items" in members and "Quantity" in members
        parts = []
        for member_name, member in members.items():
            if member_name == "Quantity" and has_items:
                parts.append("<Quantity>1</Quantity>")
                continue
            tag = member.serialization.get("name", member_name)
            parts.append(element(tag, member, depth + 1))
        return f"<{name}>{''.join(parts)}</{name}>"
    if shape.type_name == "list":
        item = shape.member
        tag = item.serialization.get("name", item.name)
        return f"<{name}>{element(tag, item, depth + 1)}</{name}>"
    return f"<{name}>{escape(value(shape, name))}</{name}>"


def main():
    model = botocore.session.get_session().get_service_model("cloudfront")
    config = model.shape_for("DistributionConfig")
    xml = element("DistributionConfig", config)
    xml = xml.replace(
        "<DistributionConfig>",
        '<DistributionConfig xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/">',
        1,
    )
    sys.stdout.write('<?xml version="1.0" encoding="UTF-8"?>\n' + xml + "\n")


if __name__ == "__main__":
    main()

"""Contract test: one scripted sequence of the CloudFront operations moto also implements, run
against moto's server and against `keyfront emulator` with the same boto3 client code. What a
client can observe (status codes, echoed fields, error codes, list contents, trusted key groups)
must be equal. Where moto knowingly differs, the projection leaves the field out and
docs/emulator.md says so."""

from conftest import cloudfront, distribution_config, public_key


def key_config(name, fixture):
    return {"CallerReference": f"ref-{name}", "Name": name, "EncodedKey": public_key(fixture), "Comment": f"{name} comment"}


def public_key_view(config):
    # moto drops Comment (CloudFront keeps it): compared only in the emulator's own tests.
    return {"Name": config["Name"], "EncodedKey": config["EncodedKey"].strip(), "CallerReference": config.get("CallerReference")}


def distribution_view(config):
    default = config["DefaultCacheBehavior"]
    trusted = default.get("TrustedKeyGroups", {"Enabled": False, "Quantity": 0})
    return {
        "CallerReference": config["CallerReference"],
        "Comment": config["Comment"],
        "Enabled": config["Enabled"],
        "Origins": [(o["Id"], o["DomainName"]) for o in config["Origins"]["Items"]],
        "TargetOriginId": default["TargetOriginId"],
        "ViewerProtocolPolicy": default["ViewerProtocolPolicy"],
        "TrustedKeyGroups": {"Enabled": trusted["Enabled"], "Quantity": trusted["Quantity"], "Items": trusted.get("Items", [])},
    }


def script(cf):
    """Runs the sequence; returns what a client observes at each step, with IDs replaced by
    the step that created them."""
    seen = []
    ids = {}

    def record(step, value):
        seen.append((step, value))

    created = cf.create_public_key(PublicKeyConfig=key_config("kf-contract", "rsa-1.pub.pem"))
    ids["key"] = created["PublicKey"]["Id"]
    record("CreatePublicKey", {"status": created["ResponseMetadata"]["HTTPStatusCode"], "etag": bool(created["ETag"]), "config": public_key_view(created["PublicKey"]["PublicKeyConfig"])})

    got = cf.get_public_key(Id=ids["key"])
    record("GetPublicKey", {"same id": got["PublicKey"]["Id"] == ids["key"], "etag": bool(got["ETag"]), "config": public_key_view(got["PublicKey"]["PublicKeyConfig"])})

    listed = cf.list_public_keys()["PublicKeyList"]
    record("ListPublicKeys", {"quantity": listed["Quantity"], "items": [(k["Id"] == ids["key"], k["Name"], k["EncodedKey"].strip()) for k in listed["Items"]]})

    spare = cf.create_public_key(PublicKeyConfig=key_config("kf-spare", "rsa-2.pub.pem"))
    cf.delete_public_key(Id=spare["PublicKey"]["Id"], IfMatch=spare["ETag"])
    record("DeletePublicKey", {"remaining": [k["Name"] for k in cf.list_public_keys()["PublicKeyList"]["Items"]]})

    # moto answers a missing public key with 500; CloudFront (and the emulator) with 404
    # NoSuchPublicKey, which test_boto3_lifecycle checks. Not compared here.

    group = cf.create_key_group(KeyGroupConfig={"Name": "kf-contract-group", "Items": [ids["key"]], "Comment": "contract group"})
    ids["group"] = group["KeyGroup"]["Id"]
    config = group["KeyGroup"]["KeyGroupConfig"]
    record("CreateKeyGroup", {"status": group["ResponseMetadata"]["HTTPStatusCode"], "etag": bool(group["ETag"]), "name": config["Name"], "items": [i == ids["key"] for i in config["Items"]]})

    got = cf.get_key_group(Id=ids["group"])["KeyGroup"]
    record("GetKeyGroup", {"same id": got["Id"] == ids["group"], "name": got["KeyGroupConfig"]["Name"], "items": [i == ids["key"] for i in got["KeyGroupConfig"]["Items"]]})

    groups = cf.list_key_groups()["KeyGroupList"]
    record("ListKeyGroups", {"quantity": groups["Quantity"], "items": [(g["KeyGroup"]["Id"] == ids["group"], g["KeyGroup"]["KeyGroupConfig"]["Name"]) for g in groups["Items"]]})

    distribution = cf.create_distribution(DistributionConfig=distribution_config("contract-1", comment="contract"))
    ids["distribution"] = distribution["Distribution"]["Id"]
    record("CreateDistribution", {"status": distribution["ResponseMetadata"]["HTTPStatusCode"], "etag": bool(distribution["ETag"]), "config": distribution_view(distribution["Distribution"]["DistributionConfig"])})

    current = cf.get_distribution_config(Id=ids["distribution"])
    record("GetDistributionConfig", {"etag": bool(current["ETag"]), "config": distribution_view(current["DistributionConfig"])})

    updated_config = current["DistributionConfig"]
    updated_config["DefaultCacheBehavior"]["TrustedKeyGroups"] = {"Enabled": True, "Quantity": 1, "Items": [ids["group"]]}
    updated = cf.update_distribution(Id=ids["distribution"], IfMatch=current["ETag"], DistributionConfig=updated_config)
    view = distribution_view(updated["Distribution"]["DistributionConfig"])
    view["TrustedKeyGroups"]["Items"] = [i == ids["group"] for i in view["TrustedKeyGroups"]["Items"]]
    record("UpdateDistribution(TrustedKeyGroups)", {"status": updated["ResponseMetadata"]["HTTPStatusCode"], "etag": bool(updated["ETag"]), "config": view})

    again = cf.get_distribution_config(Id=ids["distribution"])["DistributionConfig"]
    view = distribution_view(again)
    view["TrustedKeyGroups"]["Items"] = [i == ids["group"] for i in view["TrustedKeyGroups"]["Items"]]
    record("GetDistributionConfig(after update)", view)

    listed = cf.list_distributions()["DistributionList"]
    record("ListDistributions", {"quantity": listed["Quantity"], "ids": [d["Id"] == ids["distribution"] for d in listed.get("Items", [])]})
    return seen


def test_emulator_and_moto_agree_on_the_shared_operations(emulator, moto_server):
    from_moto = script(cloudfront(moto_server))
    from_emulator = script(cloudfront(emulator))
    assert [s for s, _ in from_moto] == [s for s, _ in from_emulator]
    mismatches = [(step, m, e) for (step, m), (_, e) in zip(from_moto, from_emulator) if m != e]
    assert not mismatches, "\n".join(f"{step}:\n  moto:     {m}\n  emulator: {e}" for step, m, e in mismatches)
    assert len(from_moto) == 12

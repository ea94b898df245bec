"""boto3, a CloudFront client we did not write, drives `keyfront emulator` through a whole key
group lifecycle, including every CloudFront error keyfront relies on."""

import time

import pytest
from botocore.exceptions import ClientError

from conftest import cloudfront, distribution_config, public_key


def error_of(call, *args, **kwargs):
    with pytest.raises(ClientError) as raised:
        call(*args, **kwargs)
    response = raised.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def create_key(cf, name, fixture="rsa-1.pub.pem"):
    return cf.create_public_key(PublicKeyConfig={"CallerReference": name, "Name": name, "EncodedKey": public_key(fixture), "Comment": "boto3 test"})


def minimal_distribution(reference):
    return distribution_config(reference, ["/private/*"], comment="boto3 lifecycle")


def wait_deployed(cf, distribution_id, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        d = cf.get_distribution(Id=distribution_id)
        if d["Distribution"]["Status"] == "Deployed":
            return d
        time.sleep(0.2)
    raise AssertionError("distribution never reached Deployed")


def test_key_group_lifecycle_with_errors(emulator):
    cf = cloudfront(emulator)

    created = create_key(cf, "kf-one")
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    key_id = created["PublicKey"]["Id"]
    assert created["ETag"] and created["Location"].endswith(key_id)
    assert cf.get_public_key(Id=key_id)["PublicKey"]["PublicKeyConfig"]["Name"] == "kf-one"
    assert cf.get_public_key_config(Id=key_id)["PublicKeyConfig"]["Comment"] == "boto3 test"
    assert [k["Id"] for k in cf.list_public_keys()["PublicKeyList"]["Items"]] == [key_id]
    assert error_of(create_key, cf, "kf-one") == ("PublicKeyAlreadyExists", 409)
    assert error_of(cf.get_public_key, Id="KNOPE") == ("NoSuchPublicKey", 404)
    assert error_of(create_key, cf, "kf-small", "rsa1024.pub.pem") == ("InvalidArgument", 400)

    group = cf.create_key_group(KeyGroupConfig={"Name": "kf-group", "Items": [key_id], "Comment": "owned by keyfront"})
    group_id, group_etag = group["KeyGroup"]["Id"], group["ETag"]
    assert cf.get_key_group_config(Id=group_id)["KeyGroupConfig"]["Items"] == [key_id]
    assert error_of(cf.create_key_group, KeyGroupConfig={"Name": "kf-group", "Items": [key_id]}) == ("KeyGroupAlreadyExists", 409)

    second = create_key(cf, "kf-two", "rsa-2.pub.pem")["PublicKey"]["Id"]
    both = {"Name": "kf-group", "Items": [key_id, second]}
    updated = cf.update_key_group(Id=group_id, IfMatch=group_etag, KeyGroupConfig=both)
    assert updated["ETag"] != group_etag
    assert error_of(cf.update_key_group, Id=group_id, IfMatch=group_etag, KeyGroupConfig=both) == ("PreconditionFailed", 412)

    key_etag = cf.get_public_key(Id=key_id)["ETag"]
    assert error_of(cf.delete_public_key, Id=key_id) == ("InvalidIfMatchVersion", 400)
    assert error_of(cf.delete_public_key, Id=key_id, IfMatch=key_etag) == ("PublicKeyInUse", 409)

    extra = [create_key(cf, f"kf-extra-{i}", f"rsa-{i + 3}.pub.pem")["PublicKey"]["Id"] for i in range(4)]
    six = {"Name": "kf-group", "Items": [key_id, second] + extra}
    assert error_of(cf.update_key_group, Id=group_id, IfMatch=updated["ETag"], KeyGroupConfig=six) == ("TooManyPublicKeysInKeyGroup", 400)

    distribution = cf.create_distribution(DistributionConfig=minimal_distribution("boto3-lifecycle"))
    distribution_id = distribution["Distribution"]["Id"]
    assert distribution["Distribution"]["Status"] == "InProgress"
    current = cf.get_distribution_config(Id=distribution_id)
    config = current["DistributionConfig"]
    config["CacheBehaviors"]["Items"][0]["TrustedKeyGroups"] = {"Enabled": True, "Quantity": 1, "Items": [group_id]}
    stale = cf.update_distribution(Id=distribution_id, IfMatch=current["ETag"], DistributionConfig=config)
    assert error_of(cf.update_distribution, Id=distribution_id, IfMatch=current["ETag"], DistributionConfig=config) == ("PreconditionFailed", 412)
    assert stale["Distribution"]["Status"] == "InProgress"
    assert stale["Distribution"]["ActiveTrustedKeyGroups"]["Quantity"] == 0, "nothing is live before propagation"

    deployed = wait_deployed(cf, distribution_id)
    active = deployed["Distribution"]["ActiveTrustedKeyGroups"]
    assert active["Enabled"] is True
    assert active["Items"][0]["KeyGroupId"] == group_id
    assert sorted(active["Items"][0]["KeyPairIds"]["Items"]) == sorted([key_id, second])
    kept = deployed["Distribution"]["DistributionConfig"]
    assert kept["DefaultCacheBehavior"]["CachePolicyId"] == "658327ea-f89d-4fab-a63d-7e88639e58f6", "other settings survive"
    assert kept["CacheBehaviors"]["Items"][0]["PathPattern"] == "/private/*"

    unknown = dict(config)
    unknown["DefaultCacheBehavior"] = dict(config["DefaultCacheBehavior"], TrustedKeyGroups={"Enabled": True, "Quantity": 1, "Items": ["no-such-group"]})
    assert error_of(cf.update_distribution, Id=distribution_id, IfMatch=deployed["ETag"], DistributionConfig=unknown) == ("TrustedKeyGroupDoesNotExist", 400)

    group_etag = cf.get_key_group(Id=group_id)["ETag"]
    assert error_of(cf.delete_key_group, Id=group_id, IfMatch=group_etag) == ("ResourceInUse", 409)

    # Detach, then everything can go.
    detached = cf.get_distribution_config(Id=distribution_id)
    config = detached["DistributionConfig"]
    config["CacheBehaviors"]["Items"][0]["TrustedKeyGroups"] = {"Enabled": False, "Quantity": 0}
    cf.update_distribution(Id=distribution_id, IfMatch=detached["ETag"], DistributionConfig=config)
    cf.delete_key_group(Id=group_id, IfMatch=cf.get_key_group(Id=group_id)["ETag"])
    assert error_of(cf.get_key_group, Id=group_id) == ("NoSuchResource", 404)
    for k in [key_id, second] + extra:
        cf.delete_public_key(Id=k, IfMatch=cf.get_public_key(Id=k)["ETag"])
    assert cf.list_public_keys()["PublicKeyList"]["Quantity"] == 0


def test_account_quotas(emulator):
    cf = cloudfront(emulator)
    ids = [create_key(cf, f"kf-q{i}", f"rsa-{i + 1}.pub.pem")["PublicKey"]["Id"] for i in range(10)]
    assert error_of(create_key, cf, "kf-q10", "rsa-11.pub.pem") == ("TooManyPublicKeys", 400)
    for i in range(10):
        cf.create_key_group(KeyGroupConfig={"Name": f"kf-g{i}", "Items": [ids[i]]})
    assert error_of(cf.create_key_group, KeyGroupConfig={"Name": "kf-g10", "Items": [ids[0]]}) == ("TooManyKeyGroups", 400)
    groups = [g["KeyGroup"]["Id"] for g in cf.list_key_groups()["KeyGroupList"]["Items"]]
    distribution = cf.create_distribution(DistributionConfig=minimal_distribution("quota"))
    current = cf.get_distribution_config(Id=distribution["Distribution"]["Id"])
    config = current["DistributionConfig"]
    config["DefaultCacheBehavior"]["TrustedKeyGroups"] = {"Enabled": True, "Quantity": 5, "Items": groups[:5]}
    assert error_of(cf.update_distribution, Id=distribution["Distribution"]["Id"], IfMatch=current["ETag"], DistributionConfig=config) == ("TooManyKeyGroupsAssociatedToDistribution", 400)


def test_injected_throttling_reaches_the_client(emulator):
    import json
    import urllib.request

    request = urllib.request.Request(emulator + "/_emulator/faults", data=json.dumps({"operation": "ListPublicKeys", "fault": "throttle", "count": 1}).encode(), headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(request)
    assert error_of(cloudfront(emulator).list_public_keys) == ("Throttling", 400)
    assert cloudfront(emulator).list_public_keys()["PublicKeyList"]["Quantity"] == 0

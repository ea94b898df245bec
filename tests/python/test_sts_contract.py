"""Contract test for STS: the same boto3 calls against moto's STS and `keyfront emulator`'s.
AssumeRole and GetCallerIdentity must look the same to a client (shapes, the assumed-role ARN,
the account the credentials act in, error codes), and in the emulator the assumed credentials
act in the role's account: CloudFront state is partitioned by account."""

import datetime
import json
import urllib.request

import boto3
import botocore.exceptions
import pytest

from conftest import cloudfront, public_key

ROLE = "arn:aws:iam::210987654321:role/keyfront-media"


def sts(endpoint, key="testing", secret="testing", token=None):
    return boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token)


def script(endpoint):
    seen = []
    client = sts(endpoint)
    me = client.get_caller_identity()
    seen.append(("caller", me["Account"], sorted(k for k in me if k != "ResponseMetadata")))
    assumed = client.assume_role(RoleArn=ROLE, RoleSessionName="keyfront-team-a", ExternalId="prod-1", DurationSeconds=900)
    creds = assumed["Credentials"]
    seen.append(("assume", sorted(creds), assumed["AssumedRoleUser"]["Arn"], assumed["AssumedRoleUser"]["AssumedRoleId"].endswith(":keyfront-team-a")))
    assert isinstance(creds["Expiration"], datetime.datetime)
    assert creds["AccessKeyId"].startswith("ASIA")
    as_role = sts(endpoint, creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]).get_caller_identity()
    seen.append(("caller-as-role", as_role["Account"], as_role["Arn"]))
    return seen, creds


def test_emulator_sts_agrees_with_moto(emulator, moto_server):
    theirs, _ = script(moto_server)
    ours, _ = script(emulator)
    assert ours == theirs
    assert ours[2] == ("caller-as-role", "210987654321", "arn:aws:sts::210987654321:assumed-role/keyfront-media/keyfront-team-a")


@pytest.mark.parametrize("bad", [dict(RoleArn="arn:aws:iam::not-an-account:role/x", RoleSessionName="keyfront-team-a"), dict(RoleArn=ROLE, RoleSessionName="has spaces in it")])
def test_malformed_assume_role_requests_are_refused_as_sts_does(emulator, bad):
    # moto accepts these (docs/emulator.md); STS refuses them with ValidationError, as here.
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        sts(emulator).assume_role(**bad)
    assert refused.value.response["Error"]["Code"] == "ValidationError"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_assumed_credentials_act_in_the_roles_account(emulator):
    _, creds = script(emulator)
    default = cloudfront(emulator)
    other = boto3.client("cloudfront", endpoint_url=emulator, region_name="us-east-1", aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
    key = other.create_public_key(PublicKeyConfig={"CallerReference": "r", "Name": "in-media-account", "EncodedKey": public_key("ec-1.pub.pem")})
    assert [k["Name"] for k in other.list_public_keys()["PublicKeyList"].get("Items", [])] == ["in-media-account"]
    assert default.list_public_keys()["PublicKeyList"]["Quantity"] == 0
    with pytest.raises(botocore.exceptions.ClientError) as missing:
        default.get_public_key(Id=key["PublicKey"]["Id"])
    assert missing.value.response["Error"]["Code"] == "NoSuchPublicKey"
    log = json.load(urllib.request.urlopen(emulator + "/_emulator/requests"))
    created = [r for r in log if r["operation"] == "CreatePublicKey"]
    assert [{k: r[k] for k in ("account", "caller", "operation")} for r in created] == [{"account": "210987654321", "caller": "arn:aws:sts::210987654321:assumed-role/keyfront-media/keyfront-team-a", "operation": "CreatePublicKey"}]
    # The log keeps the caller's user agent, as CloudTrail's userAgent: here botocore's own.
    assert created[0]["user_agent"].startswith("Boto3/"), created[0]

"""Plays Terraform for the migration test: with boto3 (a client we did not write), creates what
`aws_cloudfront_public_key`, `aws_cloudfront_key_group` and a distribution whose default cache
behavior has `trusted_key_groups` would, then waits until it is deployed.

Usage: terraform_setup.py <emulator endpoint> <key group name> <public key fixture>
Prints one JSON line: key_id, key_group_id, distribution_id, domain_name.
"""

import json
import sys
import time

import boto3

from conftest import distribution_config, public_key


def main(endpoint, group_name, fixture):
    # Terraform's own credentials: the emulator's request log tells its calls from keyfront's.
    cf = boto3.client("cloudfront", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="AKIDTERRAFORM", aws_secret_access_key="terraform")
    key_id = cf.create_public_key(PublicKeyConfig={"CallerReference": "terraform-key", "Name": "terraform-signing-key", "EncodedKey": public_key(fixture), "Comment": "aws_cloudfront_public_key.signing"})["PublicKey"]["Id"]
    group_id = cf.create_key_group(KeyGroupConfig={"Name": group_name, "Items": [key_id], "Comment": "aws_cloudfront_key_group.signing"})["KeyGroup"]["Id"]
    config = distribution_config("terraform-distribution", comment="aws_cloudfront_distribution.media")
    config["DefaultCacheBehavior"]["TrustedKeyGroups"] = {"Enabled": True, "Quantity": 1, "Items": [group_id]}
    distribution = cf.create_distribution(DistributionConfig=config)["Distribution"]
    deadline = time.time() + 30
    while cf.get_distribution(Id=distribution["Id"])["Distribution"]["Status"] != "Deployed":
        if time.time() > deadline:
            raise SystemExit("the distribution never deployed")
        time.sleep(0.2)
    print(json.dumps({"key_id": key_id, "key_group_id": group_id, "distribution_id": distribution["Id"], "domain_name": distribution["DomainName"]}))


if __name__ == "__main__":
    main(*sys.argv[1:])

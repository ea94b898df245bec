"""Plays Terraform owning a distribution's trust: with boto3 (a client we did not write), sets
the distribution's default cache behavior to trust exactly the given key groups, the way
`trusted_key_groups = [...]` on `aws_cloudfront_distribution` does (read the config, change
it, write it back with the ETag). No group: an apply from a config that lacks keyfront's.

Usage: attach_key_group.py <emulator endpoint> <distribution id> [<key group id>...]
"""

import sys

import boto3


def main(endpoint, distribution_id, *group_ids):
    cf = boto3.client("cloudfront", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="AKIDTERRAFORM", aws_secret_access_key="terraform")
    current = cf.get_distribution_config(Id=distribution_id)
    config = current["DistributionConfig"]
    trust = {"Enabled": bool(group_ids), "Quantity": len(group_ids)}
    if group_ids:
        trust["Items"] = list(group_ids)
    config["DefaultCacheBehavior"]["TrustedKeyGroups"] = trust
    cf.update_distribution(Id=distribution_id, IfMatch=current["ETag"], DistributionConfig=config)


if __name__ == "__main__":
    main(*sys.argv[1:])

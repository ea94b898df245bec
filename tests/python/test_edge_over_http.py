"""`keyfront emulator --edge-listen` over HTTP: a distribution set up with boto3 serves its
private behavior only to URLs signed by `keyfront sign` with a key in the deployed key group."""

import os
import subprocess
import time
import urllib.error
import urllib.request

from conftest import cloudfront, public_key, KEYS
from test_boto3_lifecycle import minimal_distribution, wait_deployed


def fetch(edge, host, path_and_query):
    request = urllib.request.Request(edge + path_and_query, headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, ""
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("x-keyfront-edge-reason", "")


def test_edge_serves_signed_requests_and_refuses_others(emulator_with_edge):
    api, edge = emulator_with_edge
    cf = cloudfront(api)
    key_id = cf.create_public_key(PublicKeyConfig={"CallerReference": "edge", "Name": "kf-edge", "EncodedKey": public_key("rsa-1.pub.pem")})["PublicKey"]["Id"]
    group_id = cf.create_key_group(KeyGroupConfig={"Name": "kf-edge", "Items": [key_id]})["KeyGroup"]["Id"]
    distribution_id = cf.create_distribution(DistributionConfig=minimal_distribution("edge"))["Distribution"]["Id"]
    current = cf.get_distribution_config(Id=distribution_id)
    config = current["DistributionConfig"]
    config["CacheBehaviors"]["Items"][0]["TrustedKeyGroups"] = {"Enabled": True, "Quantity": 1, "Items": [group_id]}
    cf.update_distribution(Id=distribution_id, IfMatch=current["ETag"], DistributionConfig=config)
    host = wait_deployed(cf, distribution_id)["Distribution"]["DomainName"]

    url = f"https://{host}/private/movie.mp4"
    signed = subprocess.run(
        [os.environ["KEYFRONT_BIN"], "sign", "url", "--private-key", os.path.join(KEYS, "rsa-1.pem"), "--key-pair-id", key_id, "--url", url, "--expires", str(int(time.time()) + 300)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    path_and_query = signed[len(f"https://{host}"):]

    assert fetch(edge, host, "/public/index.html") == (200, ""), "unprotected behavior"
    assert fetch(edge, host, "/private/movie.mp4") == (403, "missing signature: the behavior is private")
    assert fetch(edge, host, path_and_query) == (200, "")
    assert fetch(edge, host, path_and_query.replace("movie", "other"))[0] == 403
    assert fetch(edge, "unknown.cloudfront.net", path_and_query)[0] == 403

"""keyfront's signer against botocore's CloudFrontSigner (with `cryptography` as its RSA
signer): for fixed RSA keys, URLs, expiries and policies, keyfront's signed URLs are equal byte
for byte. ECDSA signatures are randomized, so those are verified with `cryptography`."""

import base64
import datetime
import json
import os
import subprocess
from urllib.parse import parse_qsl, urlsplit

import pytest
from botocore.signers import CloudFrontSigner
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from conftest import KEYS

KEY_PAIR_ID = "K2JCJMDEHXQW5F"
EXPIRES = 1_900_000_000
URLS = [
    "https://d111111abcdef8.cloudfront.net/image.jpg",
    "https://d111111abcdef8.cloudfront.net/videos/2026/trailer.mp4?quality=hd&lang=en",
    "https://d111111abcdef8.cloudfront.net/a%20b/%E2%9C%93.m3u8?token=a%2Fb&x=1",
    "http://media.example.com/private/file.bin",
]


def keyfront(*args, stdin=None):
    result = subprocess.run([os.environ["KEYFRONT_BIN"], "sign", *args], input=stdin, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def key_path(name):
    return os.path.join(KEYS, name)


def rsa_signer(name):
    with open(key_path(name), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    return lambda message: key.sign(message, padding.PKCS1v15(), hashes.SHA1())


def utc(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)


def cloudfront_b64decode(text):
    return base64.b64decode(text.replace("-", "+").replace("_", "=").replace("~", "/"))


@pytest.mark.parametrize("key", ["rsa-1.pem", "rsa-2.pem", "rsa-3.pem"])
@pytest.mark.parametrize("url", URLS)
def test_canned_urls_equal_botocore(key, url):
    expected = CloudFrontSigner(KEY_PAIR_ID, rsa_signer(key)).generate_presigned_url(url, date_less_than=utc(EXPIRES))
    assert keyfront("url", "--private-key", key_path(key), "--key-pair-id", KEY_PAIR_ID, "--url", url, "--expires", str(EXPIRES)) == [expected]


@pytest.mark.parametrize("url", URLS[:2])
@pytest.mark.parametrize("not_before,ip", [(1_800_000_000, None), (None, "192.0.2.0/24"), (1_800_000_000, "198.51.100.7")])
def test_custom_policy_urls_equal_botocore(url, not_before, ip):
    signer = CloudFrontSigner(KEY_PAIR_ID, rsa_signer("rsa-1.pem"))
    policy = signer.build_policy(url, utc(EXPIRES), date_greater_than=utc(not_before) if not_before else None, ip_address=ip)
    expected = signer.generate_presigned_url(url, policy=policy)
    args = ["url", "--private-key", key_path("rsa-1.pem"), "--key-pair-id", KEY_PAIR_ID, "--url", url, "--expires", str(EXPIRES)]
    if not_before:
        args += ["--not-before", str(not_before)]
    if ip:
        args += ["--ip", ip]
    assert keyfront(*args) == [expected]


def test_policy_file_and_wildcard_resource_equal_botocore(tmp_path):
    signer = CloudFrontSigner(KEY_PAIR_ID, rsa_signer("rsa-2.pem"))
    policy = signer.build_policy("https://d111111abcdef8.cloudfront.net/private/*", utc(EXPIRES), ip_address="203.0.113.0/24")
    path = tmp_path / "policy.json"
    path.write_text(policy)
    url = "https://d111111abcdef8.cloudfront.net/private/a.mp4"
    got = keyfront("url", "--private-key", key_path("rsa-2.pem"), "--key-pair-id", KEY_PAIR_ID, "--url", url, "--policy-file", str(path))
    assert got == [signer.generate_presigned_url(url, policy=policy)]


def test_batch_signing_keeps_order_and_equals_botocore():
    signer = CloudFrontSigner(KEY_PAIR_ID, rsa_signer("rsa-1.pem"))
    urls = [f"https://d111111abcdef8.cloudfront.net/seg/{i:05d}.ts" for i in range(200)]
    got = keyfront("url", "--private-key", key_path("rsa-1.pem"), "--key-pair-id", KEY_PAIR_ID, "--urls-from", "-", "--expires", str(EXPIRES), stdin="\n".join(urls) + "\n")
    assert got == [signer.generate_presigned_url(u, date_less_than=utc(EXPIRES)) for u in urls]


def test_cookies_carry_the_same_policy_and_signature_as_the_url():
    url = "https://d111111abcdef8.cloudfront.net/private/*"
    signer = CloudFrontSigner(KEY_PAIR_ID, rsa_signer("rsa-1.pem"))
    policy = signer.build_policy(url, utc(EXPIRES), ip_address="192.0.2.0/24")
    params = dict(parse_qsl(urlsplit(signer.generate_presigned_url(url, policy=policy)).query))
    cookies = dict(line.split("=", 1) for line in keyfront("cookies", "--private-key", key_path("rsa-1.pem"), "--key-pair-id", KEY_PAIR_ID, "--url", url, "--expires", str(EXPIRES), "--ip", "192.0.2.0/24"))
    assert cookies == {"CloudFront-Policy": params["Policy"], "CloudFront-Signature": params["Signature"], "CloudFront-Key-Pair-Id": KEY_PAIR_ID}
    canned = dict(line.split("=", 1) for line in keyfront("cookies", "--private-key", key_path("rsa-1.pem"), "--key-pair-id", KEY_PAIR_ID, "--url", URLS[0], "--expires", str(EXPIRES)))
    expected = dict(parse_qsl(urlsplit(signer.generate_presigned_url(URLS[0], date_less_than=utc(EXPIRES))).query))
    assert canned == {"CloudFront-Expires": str(EXPIRES), "CloudFront-Signature": expected["Signature"], "CloudFront-Key-Pair-Id": KEY_PAIR_ID}


def policy_and_signature(signed_url):
    params = dict(parse_qsl(urlsplit(signed_url).query))
    return params, cloudfront_b64decode(params["Signature"])


def test_rsa_sha256_signatures_verify_with_cryptography():
    url = URLS[1]
    [signed] = keyfront("url", "--private-key", key_path("rsa-1.pem"), "--key-pair-id", KEY_PAIR_ID, "--url", url, "--expires", str(EXPIRES), "--hash", "sha256")
    params, signature = policy_and_signature(signed)
    assert params["Hash-Algorithm"] == "SHA256"
    assert list(parse_qsl(urlsplit(signed).query))[-4:][-1] == ("Hash-Algorithm", "SHA256")
    policy = json.dumps({"Statement": [{"Resource": url, "Condition": {"DateLessThan": {"AWS:EpochTime": EXPIRES}}}]}, separators=(",", ":")).encode()
    with open(key_path("rsa-1.pub.pem"), "rb") as f:
        public = serialization.load_pem_public_key(f.read())
    public.verify(signature, policy, padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize("key", ["ec-1", "ec-2"])
def test_ecdsa_signatures_verify_with_cryptography(key):
    url = URLS[2]
    [signed] = keyfront("url", "--private-key", key_path(f"{key}.pem"), "--key-pair-id", KEY_PAIR_ID, "--url", url, "--expires", str(EXPIRES), "--ip", "192.0.2.1")
    params, signature = policy_and_signature(signed)
    assert params["Hash-Algorithm"] == "SHA256"
    policy = cloudfront_b64decode(params["Policy"])
    assert json.loads(policy)["Statement"][0]["Condition"]["IpAddress"]["AWS:SourceIp"] == "192.0.2.1/32"
    with open(key_path(f"{key}.pub.pem"), "rb") as f:
        public = serialization.load_pem_public_key(f.read())
    public.verify(signature, policy, ec.ECDSA(hashes.SHA256()))
    with open(key_path("ec-2.pub.pem" if key == "ec-1" else "ec-1.pub.pem"), "rb") as f:
        other = serialization.load_pem_public_key(f.read())
    with pytest.raises(Exception):
        other.verify(signature, policy, ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("hash_name", ["sha1", "sha256"])
def test_ecdsa_signatures_verify_under_the_hash_they_say_and_fail_under_the_other(hash_name):
    url = "https://d111111abcdef8.cloudfront.net/ecdsa.mp4"
    signed = keyfront("url", "--private-key", key_path("ec-1.pem"), "--key-pair-id", "K2JCJMDEHXQW5F", "--url", url, "--expires", "1900000000", "--hash", hash_name)[0]
    params = dict(p.split("=", 1) for p in signed.split("?", 1)[1].split("&"))
    assert params.get("Hash-Algorithm") == ("SHA256" if hash_name == "sha256" else None)
    policy = ('{"Statement":[{"Resource":"%s","Condition":{"DateLessThan":{"AWS:EpochTime":1900000000}}}]}' % url).encode()
    signature = cloudfront_b64decode(params["Signature"])
    with open(key_path("ec-1.pub.pem"), "rb") as f:
        public = serialization.load_pem_public_key(f.read())
    matching, other = (hashes.SHA1(), hashes.SHA256()) if hash_name == "sha1" else (hashes.SHA256(), hashes.SHA1())
    public.verify(signature, policy, ec.ECDSA(matching))
    with pytest.raises(InvalidSignature):
        public.verify(signature, policy, ec.ECDSA(other))

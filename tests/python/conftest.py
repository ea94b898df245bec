"""Fixtures: `keyfront emulator` and moto's server on loopback ports, and boto3 clients for them.

The keyfront binary comes from $KEYFRONT_BIN (the Rust test that runs pytest sets it).
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request

import boto3
import pytest
from botocore.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))
KEYS = os.path.join(HERE, "..", "fixtures", "keys")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(url, process, what):
    deadline = time.time() + 30
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited early with code {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not start serving {url}")


def start(cmd, health_url, what):
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until_serving(health_url, process, what)
    except Exception:
        process.kill()
        raise
    return process


def public_key(name):
    with open(os.path.join(KEYS, name)) as f:
        return f.read()


def distribution_config(reference, path_patterns=(), comment="keyfront test"):
    """A minimal valid DistributionConfig: one S3 origin, a default behavior, and one behavior
    per path pattern, none trusting a key group."""
    behavior = {"TargetOriginId": "origin-1", "ViewerProtocolPolicy": "redirect-to-https", "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6"}
    config = {
        "CallerReference": reference,
        "Origins": {"Quantity": 1, "Items": [{"Id": "origin-1", "DomainName": "bucket.s3.amazonaws.com", "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
        "DefaultCacheBehavior": dict(behavior),
        "Comment": comment,
        "Enabled": True,
    }
    if path_patterns:
        config["CacheBehaviors"] = {"Quantity": len(path_patterns), "Items": [dict(behavior, PathPattern=p) for p in path_patterns]}
    return config


def cloudfront(endpoint):
    return boto3.client(
        "cloudfront",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def keyfront_binary():
    binary = os.environ.get("KEYFRONT_BIN")
    if not binary:
        pytest.fail("KEYFRONT_BIN must name the keyfront binary (cargo test sets it)")
    return binary


@pytest.fixture
def emulator():
    """A fresh `keyfront emulator` with a 1 s propagation delay; yields its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start([keyfront_binary(), "emulator", "--listen", f"127.0.0.1:{port}", "--propagation-delay", "1"], url + "/_emulator/health", "keyfront emulator")
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def emulator_with_edge():
    """`keyfront emulator --edge-listen`; yields (API base URL, edge base URL)."""
    api_port, edge_port = free_port(), free_port()
    url = f"http://127.0.0.1:{api_port}"
    command = [keyfront_binary(), "emulator", "--listen", f"127.0.0.1:{api_port}", "--edge-listen", f"127.0.0.1:{edge_port}", "--propagation-delay", "1"]
    process = start(command, url + "/_emulator/health", "keyfront emulator")
    yield url, f"http://127.0.0.1:{edge_port}"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def moto_server():
    """A fresh moto server; yields its base URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], url + "/moto-api/", "moto server")
    yield url
    process.terminate()
    process.wait(timeout=10)

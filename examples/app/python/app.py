"""A tiny app that hands out CloudFront signed URLs, signing with the key keyfront mounts.

GET /signed-url?path=/videos/intro.mp4  ->  {"url": "https://DOMAIN/videos/intro.mp4?Expires=...", "keyPairId": "K..."}
GET /healthz                            ->  ok (once a key is mounted)

Configuration (environment): KEY_DIR (the mounted Secret), CLOUDFRONT_DOMAIN,
URL_LIFETIME_SECONDS (at most the SigningKeyGroup's maxSignedUrlLifetime), PORT.

Signs with botocore's CloudFrontSigner. The key is read from the mount on every request (two
small files), so a rotated key is used as soon as the kubelet has swapped it in.
"""

import datetime
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

KEY_DIR = os.environ.get("KEY_DIR", "/etc/cloudfront-key")
DOMAIN = os.environ["CLOUDFRONT_DOMAIN"]
LIFETIME = int(os.environ.get("URL_LIFETIME_SECONDS", "300"))


def current_key():
    """The key ID and private key of one version of the Secret.

    The kubelet publishes each version in a fresh directory and switches the `..data` link to
    it in one step. Reading both files through `..data`, resolved once, never mixes the key ID
    of one version with the private key of another, as two reads through the top-level links
    could while a rotation is swapped in. (Without `..data`, e.g. plain files, read them as is.)
    """
    data = os.path.join(KEY_DIR, "..data")
    base = os.path.realpath(data) if os.path.exists(data) else KEY_DIR
    with open(os.path.join(base, "key_pair_id")) as f:
        key_pair_id = f.read().strip()
    with open(os.path.join(base, "private_key.pem"), "rb") as f:
        private_key = serialization.load_pem_private_key(f.read(), password=None)
    return key_pair_id, private_key


def signed_url(path):
    key_pair_id, private_key = current_key()
    # CloudFront verifies RSA signatures made with SHA-1 (its signed URL format).
    signer = CloudFrontSigner(key_pair_id, lambda message: private_key.sign(message, padding.PKCS1v15(), hashes.SHA1()))
    expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=LIFETIME)
    return signer.generate_presigned_url(f"https://{DOMAIN}{path}", date_less_than=expires), key_pair_id


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            self.route(urlsplit(self.path))
        except OSError as error:
            self.reply(503, "text/plain", f"no usable key in {KEY_DIR}: {error}".encode())

    def route(self, request):
        if request.path == "/healthz":
            current_key()
            return self.reply(200, "text/plain", b"ok")
        if request.path != "/signed-url":
            return self.reply(404, "text/plain", b"not found")
        path = parse_qs(request.query).get("path", [""])[0]
        if not path.startswith("/"):
            return self.reply(400, "text/plain", b"path must start with /")
        url, key_pair_id = signed_url(path)
        self.reply(200, "application/json", json.dumps({"url": url, "keyPairId": key_pair_id}).encode())

    def reply(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
